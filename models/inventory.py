"""The luminaire inventory CSV's columns, in the contract's order (a city's GIS export)."""

INVENTORY_COLUMNS = (
    "device_id",
    "zone",
    "circuit",
    "lat",
    "lon",
    "rated_power_w",
    "baseline_power_w",
    "report_interval_s",
    "model",
    "installed_on",
)
