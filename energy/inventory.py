"""The luminaire inventory as the energy reports read it: the rows of `models.inventory`, the
one parser of the contract's CSV, keyed by device id."""

from models.inventory import (
    INVENTORY_COLUMNS,
    InventoryError,
    Luminaire,
    parse_inventory,
    read_inventory,
)

COLUMNS = INVENTORY_COLUMNS

__all__ = ["COLUMNS", "InventoryError", "Luminaire", "parse_inventory", "read_inventory"]
