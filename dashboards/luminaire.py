"""Luminaire: one device's electrical readings, status and firmware, its alerts as annotations."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.builders import table, timeseries

from dashboards.common import (
    circuit_variable,
    device_variable,
    influxql,
    new_dashboard,
    number_panels,
    zone_variable,
)
from dashboards.inventory import Inventory
from dashboards.sdk import INFLUX, InfluxAnnotation, InfluxQL

UID = "luxtel-luminaire"

SERIES = (
    ("power_w", "Power", "watt"),
    ("voltage_v", "Voltage", "volt"),
    ("current_a", "Current", "amp"),
    ("power_factor", "Power factor", "none"),
    ("dim_pct", "Dim level", "percent"),
    ("driver_temp_c", "Driver temperature", "celsius"),
)


def reading_query(field: str) -> str:
    return influxql(
        'SELECT mean("@field") FROM "telemetry" WHERE @device AND $timeFilter '
        "GROUP BY time($__interval) fill(none)",
        field=field,
    )


STATUS = influxql(
    'SELECT last("online") AS "online", last("firmware") AS "firmware", last("faults") AS '
    '"faults" FROM "status" WHERE @device AND $timeFilter'
)
LAMP = influxql('SELECT "lamp_on" FROM "telemetry" WHERE @device AND $timeFilter')
ANNOTATIONS = influxql(
    'SELECT "summary", "state", "rule", "severity" FROM "alerts" WHERE @device AND $timeFilter'
)


def _series(field: str, title: str, unit: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .datasource(INFLUX)
        .with_target(InfluxQL(reading_query(field)).alias(title))
        .unit(unit)
        .height(7)
        .span(8)
    )


def luminaire_dashboard(inventory: Inventory) -> builder.Dashboard:
    dash = (
        new_dashboard(
            UID,
            "luxtel: luminaire",
            "One luminaire's readings, status and firmware, with its alert transitions.",
        )
        .with_variable(zone_variable())
        .with_variable(circuit_variable(inventory))
        .with_variable(device_variable())
        .annotation(
            builder.AnnotationQuery()
            .name("Alerts")
            .datasource(INFLUX)
            .enable(True)
            .icon_color("red")
            .target(InfluxAnnotation(ANNOTATIONS, text_column="summary", tags_column="rule,state"))
        )
    )
    for field, title, unit in SERIES:
        dash = dash.with_panel(_series(field, title, unit))
    dash = dash.with_panel(
        table.Panel()
        .title("Status and firmware")
        .description("The last status in the time range (online, firmware, reported faults).")
        .datasource(INFLUX)
        .with_target(InfluxQL(STATUS).table())
        .height(5)
        .span(12)
    ).with_panel(
        timeseries.Panel()
        .title("Lamp on")
        .datasource(INFLUX)
        .with_target(InfluxQL(LAMP).alias("lamp on"))
        .height(5)
        .span(12)
    )
    return number_panels(dash)
