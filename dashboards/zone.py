"""Zone / circuit: a crew's view of one zone, circuit by circuit."""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.models import common as common_model

from dashboards.common import (
    DAY_BURNING_RULE,
    LAMP_FAILURE_RULE,
    circuit_variable,
    influxql,
    new_dashboard,
    number_panels,
    thresholds,
    window_variable,
    zone_variable,
)
from dashboards.inventory import Inventory
from dashboards.sdk import INFLUX, InfluxQL

UID = "luxtel-zone"

CIRCUIT_POWER_KW = influxql(
    'SELECT sum("p") / 1000 FROM (SELECT mean("power_w") AS "p" FROM "telemetry" '
    'WHERE $timeFilter AND @zone AND @circuit GROUP BY time($__interval), "device_id" '
    "fill(previous)) GROUP BY time($__interval)"
)
"""Each luminaire's mean power per interval (its last value carried over intervals without a
reading), summed: the circuit's load."""
CIRCUIT_ENERGY_KWH = influxql(
    'SELECT sum("d") / 1000 FROM (SELECT non_negative_difference("energy_wh") AS "d" '
    'FROM "telemetry" WHERE $timeFilter AND @zone AND @circuit GROUP BY "device_id") '
    "GROUP BY time(1h)"
)


def _firing(rule: str) -> str:
    """Luminaires whose last `rule` transition is firing: one row each, with its summary."""
    return influxql(
        'SELECT "state", "summary" FROM (SELECT last("state") AS "state", last("summary") AS '
        '"summary" FROM "alerts" WHERE @active AND "rule" = \'@rule\' AND @zone AND @circuit '
        'GROUP BY "device_id") WHERE "state" = \'firing\' GROUP BY "device_id"',
        rule=rule,
    )


def _count_firing(rule: str) -> str:
    return influxql(
        'SELECT count("state") FROM (SELECT last("state") AS "state" FROM "alerts" '
        'WHERE @active AND "rule" = \'@rule\' AND @zone AND @circuit GROUP BY "device_id") '
        "WHERE \"state\" = 'firing'",
        rule=rule,
    )


LAMPS_OUT = _firing(LAMP_FAILURE_RULE)
LAMPS_OUT_COUNT = _count_firing(LAMP_FAILURE_RULE)
DAY_BURNERS = _firing(DAY_BURNING_RULE)
DAY_BURNERS_COUNT = _count_firing(DAY_BURNING_RULE)
ALERTS = influxql(
    'SELECT "device_id", "rule", "severity", "state", "value", "summary" FROM "alerts" '
    "WHERE $timeFilter AND @zone AND @circuit ORDER BY time DESC LIMIT 500"
)


def _count(title: str, query: str, description: str) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(INFLUX)
        .with_target(InfluxQL(query))
        .unit("none")
        .no_value("0")
        .height(4)
        .span(6)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]))
        .thresholds(thresholds((None, "green"), (1, "red")))
        .color_mode(common_model.BigValueColorMode.BACKGROUND)
    )


def _table(title: str, query: str, description: str) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(INFLUX)
        .with_target(InfluxQL(query).table())
        .height(8)
        .span(12)
    )


def zone_dashboard(inventory: Inventory) -> builder.Dashboard:
    dash = (
        new_dashboard(
            UID,
            "luxtel: zone / circuit",
            "Power and energy per circuit, lamps out, day burners and the alerts of a zone.",
        )
        .with_variable(zone_variable())
        .with_variable(circuit_variable(inventory))
        .with_variable(window_variable())
        .with_panel(
            _count("Lamps out", LAMPS_OUT_COUNT, f"Luminaires with {LAMP_FAILURE_RULE} firing.")
        )
        .with_panel(
            _count("Day burners", DAY_BURNERS_COUNT, f"Luminaires with {DAY_BURNING_RULE} firing.")
        )
        .with_panel(
            timeseries.Panel()
            .title("Power, circuit ${circuit:text}")
            .description("One panel per circuit when All is chosen (circuits need an inventory).")
            .datasource(INFLUX)
            .with_target(InfluxQL(CIRCUIT_POWER_KW).alias("${circuit:text} kW"))
            .unit("kwatt")
            .interval("15m")
            .repeat("circuit")
            .repeat_direction("h")
            .max_per_row(2)
            .height(8)
            .span(12)
        )
        .with_panel(
            barchart.Panel()
            .title("Energy per hour, circuit ${circuit:text}")
            .datasource(INFLUX)
            .with_target(InfluxQL(CIRCUIT_ENERGY_KWH).alias("${circuit:text} kWh"))
            .unit("kwatth")
            .repeat("circuit")
            .repeat_direction("h")
            .max_per_row(2)
            .height(8)
            .span(12)
        )
        .with_panel(
            _table("Lamps out", LAMPS_OUT, "On at night but drawing too little (rules engine).")
        )
        .with_panel(_table("Day burners", DAY_BURNERS, "Drawing power in daylight."))
        .with_panel(
            _table("Alerts", ALERTS, "Alert transitions in the time range, newest first.").span(24)
        )
    )
    return number_panels(dash)
