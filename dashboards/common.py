"""What every dashboard shares: template variables, the InfluxQL filters they feed, panel helpers.

Variables and how the queries use them (Grafana's InfluxQL interpolation; `interpolate.py`
reproduces it for the tests):

- `zone` — multi-value, with "All"; from `SHOW TAG VALUES`. Used as `"zone" =~ /^$zone$/`: Grafana
  regex-escapes each value and joins several as `(a|b)`. "All" is `.*` (`ZONE_ALL`), not Grafana's
  default of every zone joined: a city's 1,000 zones made that a 6 KB regex in every panel's
  request (8 KB URL-encoded in a GET: common proxies' request-line limit), for no gain —
  InfluxDB 1.6 spent the same on either (`bench/README.md`, "Energy for a whole city").
- `circuit` — not an InfluxDB tag. A custom variable whose *value* is the circuit's device ids as
  one regex alternation, built from the inventory at `dashboards build` time, used as
  `"device_id" =~ /^(${circuit:raw})$/` (`:raw` so Grafana does not escape the `|`). "All" is
  `.*`; without an inventory "All" is the only option (zone-level dashboards).
- `device` — one luminaire, from `SHOW TAG VALUES`, narrowed by zone and circuit.
- `window` — how recent a device's last reading must be to count as reporting (and "now").
"""

from __future__ import annotations

import re

from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.models import dashboard as model

from dashboards.inventory import Inventory, circuit_regex
from dashboards.sdk import INFLUX

ZONE = '"zone" =~ /^$zone$/'
ZONE_ALL = ".*"
"""The zone variable's value for "All" (Grafana's custom all value, inserted unescaped)."""
CIRCUIT = '"device_id" =~ /^(${circuit:raw})$/'
DEVICE = '"device_id" =~ /^$device$/'
NOW = "time > now() - $window"
"""The readings that say what a device is doing now: its latest within the window."""
ACTIVE_LOOKBACK = "time > now() - 30d"
"""How far back an alert's last transition is looked for when asking which alerts are firing."""

LAMP_FAILURE_RULE = "lamp_failure"
DAY_BURNING_RULE = "day_burning"
"""Rule names of the shipped rules file (`deploy/rules/streetlight.yaml`) the panels count."""

_FRAGMENT = re.compile(r"@(\w+)")


def influxql(text: str, **extra: str) -> str:
    """`text` with the shared fragments written as `@zone`, `@circuit`, `@device`, `@now` and
    `@active` (and any of `extra`, e.g. `@rule`) filled in: one spelling of each filter."""
    fragments = {
        "zone": ZONE,
        "circuit": CIRCUIT,
        "device": DEVICE,
        "now": NOW,
        "active": ACTIVE_LOOKBACK,
        **extra,
    }
    return _FRAGMENT.sub(lambda match: fragments[match.group(1)], text)


WINDOWS = ("1h", "30m", "2h", "6h", "24h")


def zone_variable() -> builder.QueryVariable:
    return (
        builder.QueryVariable("zone")
        .label("Zone")
        .datasource(INFLUX)
        .query('SHOW TAG VALUES FROM "telemetry" WITH KEY = "zone"')
        .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ZONE_ALL)
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )


def circuit_variable(inventory: Inventory) -> builder.CustomVariable:
    """Circuits from the inventory; the value of each is its devices' regex."""
    options = [model.VariableOption(selected=True, text="All", value="$__all")]
    options += [
        model.VariableOption(selected=False, text=name, value=circuit_regex(ids))
        for name, ids in inventory.circuits.items()
    ]
    return (
        builder.CustomVariable("circuit")
        .label("Circuit")
        .description(
            "Circuits of the inventory the dashboards were built from (luxtel dashboards build "
            "--inventory); only All without one."
        )
        .values(",".join(f"{o.text} : {o.value}" for o in options[1:]))
        .options(options)
        .current(options[0])
        .include_all(True)
        .all_value(".*")
    )


def device_variable() -> builder.QueryVariable:
    return (
        builder.QueryVariable("device")
        .label("Luminaire")
        .datasource(INFLUX)
        .query(
            f'SHOW TAG VALUES FROM "telemetry" WITH KEY = "device_id" WHERE {ZONE} AND {CIRCUIT}'
        )
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )


def window_variable() -> builder.CustomVariable:
    options = [
        model.VariableOption(selected=index == 0, text=value, value=value)
        for index, value in enumerate(WINDOWS)
    ]
    return (
        builder.CustomVariable("window")
        .label("Reporting within")
        .description("A luminaire with no reading this recent counts as silent.")
        .values(",".join(WINDOWS))
        .options(options)
        .current(options[0])
    )


def new_dashboard(uid: str, title: str, description: str) -> builder.Dashboard:
    return (
        builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["luxtel"])
        .timezone("browser")
        .time("now-24h", "now")
        .refresh("1m")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )


def value_map(mapping: dict[str, tuple[str, str]]) -> model.ValueMap:
    """A value mapping: raw value → (text, colour)."""
    return model.ValueMap(
        options={
            raw: model.ValueMappingResult(text=text, color=colour, index=index)
            for index, (raw, (text, colour)) in enumerate(mapping.items())
        }
    )


def thresholds(*steps: tuple[float | None, str]) -> builder.ThresholdsConfig:
    return (
        builder.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=colour) for value, colour in steps])
    )


def number_panels(dash: builder.Dashboard) -> builder.Dashboard:
    """Give the panels ids 1, 2, … in layout order, so the JSON never depends on Grafana."""
    built = dash.build()
    for index, panel in enumerate(built.panels or [], start=1):
        panel.id_val = index
    return dash
