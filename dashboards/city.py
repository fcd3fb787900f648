"""City overview: what the city's lights are doing now, today and this month, and where."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, gauge, geomap, stat
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import geomap as geomap_model

from dashboards.common import (
    influxql,
    new_dashboard,
    number_panels,
    thresholds,
    value_map,
    window_variable,
    zone_variable,
)
from dashboards.inventory import Inventory
from dashboards.sdk import INFLUX, InfluxQL

UID = "luxtel-city"

REPORTING = influxql(
    'SELECT count("p") FROM (SELECT last("power_w") AS "p" FROM "telemetry" '
    'WHERE @now AND @zone GROUP BY "device_id")'
)
LAMPS_ON = influxql(
    'SELECT count("on") FROM (SELECT last("lamp_on") AS "on" FROM "telemetry" '
    'WHERE @now AND @zone GROUP BY "device_id") WHERE "on" = true'
)
POWER_NOW_KW = influxql(
    'SELECT sum("p") / 1000 FROM (SELECT last("power_w") AS "p" FROM "telemetry" '
    'WHERE @now AND @zone GROUP BY "device_id")'
)
ENERGY_KWH = influxql(
    'SELECT sum("d") / 1000 FROM (SELECT non_negative_difference("energy_wh") AS "d" '
    'FROM "telemetry" WHERE $timeFilter AND @zone GROUP BY "device_id")'
)
"""Metered energy: the non-negative differences of each counter (a fall is a reset)."""
ACTIVE_ALERTS = influxql(
    'SELECT count("s") FROM (SELECT last("state") AS "s" FROM "alerts" '
    'WHERE @active AND @zone GROUP BY "device_id", "rule", "severity") '
    'WHERE "s" = \'firing\' GROUP BY "severity"'
)
STATE_WINDOW = "time > now() - 5m"
"""How old a `luminaire_state` snapshot may be and still show: a little longer than the rules
engine's `state_interval_s` (60 s by default, at most 240), so one lost snapshot leaves no hole
and a stopped engine empties the map within minutes rather than showing stale states."""
MAP_STATES = influxql(
    'SELECT last("state_code") AS "state_code", "state", "firing", "lat", "lon" '
    'FROM "luminaire_state" WHERE @state AND @zone GROUP BY "device_id", "zone", "circuit"',
    state=STATE_WINDOW,
)
"""Each luminaire's last snapshot: a selector with other fields takes them from its point."""
STATES = {
    "0": ("silent", "gray"),
    "1": ("off", "blue"),
    "2": ("on", "green"),
    "3": ("alarm", "red"),
}
"""`state_code` → what the map shows (`rules.runtime.state_points.STATE_CODES`)."""


def _stat(title: str, query: str, unit: str, description: str) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(INFLUX)
        .with_target(InfluxQL(query))
        .unit(unit)
        .decimals(0 if unit == "none" else 1)
        .height(5)
        .span(4)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]))
        .graph_mode(common_model.BigValueGraphMode.NONE)
        .no_value("0")
    )


def _reporting(inventory: Inventory) -> gauge.Panel:
    panel = (
        gauge.Panel()
        .title("Luminaires reporting")
        .description(
            "Luminaires with a reading within the window, against the inventory's "
            f"{inventory.size or 'unknown'} (all zones)."
        )
        .datasource(INFLUX)
        .with_target(InfluxQL(REPORTING))
        .unit("none")
        .min(0)
        .height(5)
        .span(4)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]))
        .no_value("0")
    )
    if inventory.size:
        panel = panel.max(inventory.size).thresholds(
            thresholds(
                (None, "red"), (0.9 * inventory.size, "orange"), (0.98 * inventory.size, "green")
            )
        )
    return panel


def _alerts_by_severity() -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title("Active alerts by severity")
        .description("Rule × luminaire pairs whose last transition (30 days back) is firing.")
        .datasource(INFLUX)
        .with_target(InfluxQL(ACTIVE_ALERTS).alias("$tag_severity"))
        .unit("none")
        .height(5)
        .span(4)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]))
        .thresholds(thresholds((None, "orange")))
    )


def _state_colours() -> list[model.DynamicConfigValue]:
    """`state_code`'s text and colour, as value mappings and the same as thresholds (which
    Grafana falls back on), on that field only: `firing` counts would read as states."""
    steps = [(None if code == "0" else float(code), colour) for code, (_, colour) in STATES.items()]
    return [
        model.DynamicConfigValue(id_val="mappings", value=[value_map(STATES)]),
        model.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
        model.DynamicConfigValue(id_val="thresholds", value=thresholds(*steps).build()),
    ]


def _map() -> geomap.Panel:
    """Every luminaire of the rules engine's inventory where it stands, coloured by its state
    (`luminaire_state`, places included, so no inventory is needed at build time)."""
    layer = (
        common_builder.MapLayerOptions()
        .type("markers")
        .name("Luminaires")
        .location(
            common_builder.FrameGeometrySource()
            .mode(common_model.FrameGeometrySourceMode.COORDS)
            .latitude("lat")
            .longitude("lon")
        )
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"field": "state_code", "fixed": "gray"},
                    "size": {"fixed": 5},
                    "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                },
            }
        )
        .tooltip(True)
    )
    order = ("device_id", "zone", "circuit", "state", "firing", "Time", "state_code", "lat", "lon")
    return (
        geomap.Panel()
        .title("Luminaires by state")
        .description(
            "Each luminaire's state as the rules engine saw it in the last 5 minutes: alarm (an "
            "alert firing), silent (nothing heard for its deadman's k report intervals), on, "
            "off. Written by `luxtel run` with the rules on ([rules] path, and [inventory] path "
            "for the places); empty without them."
        )
        .datasource(INFLUX)
        .with_target(InfluxQL(MAP_STATES).table())
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "indexByName": {name: index for index, name in enumerate(order)},
                    "renameByName": {"Time": "as of"},
                },
            )
        )
        .override_by_name("state_code", _state_colours())
        .view(geomap.MapViewConfig().id("fit"))
        .basemap(common_builder.MapLayerOptions().type("osm-standard").name("OpenStreetMap"))
        .layers([layer])
        .tooltip(geomap.TooltipOptions().mode(geomap_model.TooltipMode.DETAILS))
        .height(14)
        .span(24)
    )


def city_dashboard(inventory: Inventory) -> builder.Dashboard:
    dash = (
        new_dashboard(
            UID,
            "luxtel: city overview",
            "What the city's street lights are doing now, today and this month, and where.",
        )
        .with_variable(zone_variable())
        .with_variable(window_variable())
        .with_panel(_reporting(inventory))
        .with_panel(
            _stat("Lamps on now", LAMPS_ON, "none", "Luminaires whose last reading has lamp_on.")
        )
        .with_panel(
            _stat("Power now", POWER_NOW_KW, "kwatt", "Sum of each luminaire's last power reading.")
        )
        .with_panel(
            _stat("Energy today", ENERGY_KWH, "kwatth", "Metered kWh since midnight.").time_from(
                "now/d"
            )
        )
        .with_panel(
            _stat("Energy this month", ENERGY_KWH, "kwatth", "Metered kWh this month.").time_from(
                "now/M"
            )
        )
        .with_panel(_alerts_by_severity())
        .with_panel(_map())
    )
    return number_panels(dash)
