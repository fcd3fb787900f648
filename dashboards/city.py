"""City overview: what the city's lights are doing now, today and this month, and where."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, gauge, geomap, stat, testdata
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import (
    influxql,
    new_dashboard,
    number_panels,
    thresholds,
    window_variable,
    zone_variable,
)
from dashboards.inventory import Inventory
from dashboards.sdk import INFLUX, INVENTORY, InfluxQL

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
MAP_LAMP = influxql(
    'SELECT last("lamp_on") AS "on" FROM "telemetry" WHERE @now AND @zone GROUP BY "device_id"'
)
MAP_ALARMS = influxql(
    'SELECT count("s") AS "alarms" FROM (SELECT last("state") AS "s" FROM "alerts" '
    'WHERE @active AND @zone GROUP BY "device_id", "rule") '
    'WHERE "s" = \'firing\' GROUP BY "device_id"'
)


def inventory_csv(inventory: Inventory) -> str:
    """The luminaires' places as CSV for the map (a TestData query holds it inline)."""
    rows = ["device_id,zone,circuit,lat,lon"]
    rows += [
        f"{p.device_id},{p.zone},{p.circuit},{p.lat:.6f},{p.lon:.6f}" for p in inventory.places
    ]
    return "\n".join(rows)


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


def _state_mapping() -> list[model.ValueMapping]:
    def special(
        match: model.SpecialValueMatch, text: str, colour: str, index: int
    ) -> model.SpecialValueMap:
        return model.SpecialValueMap(
            options=model.DashboardSpecialValueMapOptions(
                match=match,
                result=model.ValueMappingResult(text=text, color=colour, index=index),
            )
        )

    return [
        special(model.SpecialValueMatch.TRUE, "on", "green", 0),
        special(model.SpecialValueMatch.FALSE, "off", "blue", 1),
        special(model.SpecialValueMatch.NULL, "silent", "gray", 2),
    ]


def _map(inventory: Inventory) -> geomap.Panel:
    """Every luminaire of the inventory, coloured on / off / silent, its firing alerts in the
    tooltip. The places come from the inventory baked in at build time (InfluxDB has none)."""
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
                    "color": {"field": "on", "fixed": "gray"},
                    "size": {"fixed": 5},
                    "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                },
            }
        )
        .tooltip(True)
    )
    return (
        geomap.Panel()
        .title("Luminaires by state")
        .description(
            "on / off from each luminaire's last reading within the window, silent when it has "
            "none; the tooltip gives its firing alerts. Places from the inventory the dashboards "
            "were built from."
        )
        .datasource(model.DataSourceRef(type_val="datasource", uid="-- Mixed --"))
        .with_target(InfluxQL(MAP_LAMP).table().ref_id("A"))
        .with_target(InfluxQL(MAP_ALARMS).table().ref_id("B"))
        .with_target(
            testdata.Dataquery()
            .datasource(INVENTORY)
            .ref_id("C")
            .scenario_id("csv_content")
            .csv_content(inventory_csv(inventory))
        )
        .with_transformation(
            model.DataTransformerConfig(
                id_val="joinByField", options={"byField": "device_id", "mode": "outer"}
            )
        )
        .mappings(_state_mapping())
        .view(geomap.MapViewConfig().id("fit"))
        .basemap(common_builder.MapLayerOptions().type("osm-standard").name("OpenStreetMap"))
        .layers([layer])
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
        .with_panel(_map(inventory))
    )
    return number_panels(dash)
