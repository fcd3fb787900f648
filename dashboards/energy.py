"""Energy: kWh per zone per day, burning hours, and savings against the replaced lamps.

A glance for the city, not the audit: `luxtel energy report` gives the auditor's figures (per
device baselines, completeness). Here the baseline is one fleet-wide wattage — the inventory's
mean `baseline_power_w`, editable on the dashboard — times the burning hours, and burning hours
are readings with the lamp on × the fleet's reporting interval.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import influxql, new_dashboard, number_panels, zone_variable
from dashboards.inventory import Inventory
from dashboards.sdk import INFLUX, InfluxQL

UID = "luxtel-energy"

KWH_PER_ZONE_DAY = influxql(
    'SELECT sum("d") / 1000 FROM (SELECT non_negative_difference("energy_wh") AS "d" '
    'FROM "telemetry" WHERE $timeFilter AND @zone GROUP BY "device_id", "zone") '
    'GROUP BY time(1d), "zone"'
)
BURNING_HOURS_PER_ZONE_DAY = influxql(
    'SELECT count("lamp_on") * $report_interval_s / 3600 FROM "telemetry" '
    'WHERE "lamp_on" = true AND $timeFilter AND @zone GROUP BY time(1d), "zone"'
)
BASELINE_KWH_PER_DAY = influxql(
    'SELECT count("lamp_on") * $report_interval_s / 3600 * $baseline_w / 1000 '
    'FROM "telemetry" WHERE "lamp_on" = true AND $timeFilter AND @zone GROUP BY time(1d)'
)
METERED_KWH_PER_DAY = influxql(
    'SELECT sum("d") / 1000 FROM (SELECT non_negative_difference("energy_wh") AS "d" '
    'FROM "telemetry" WHERE $timeFilter AND @zone GROUP BY "device_id") GROUP BY time(1d)'
)


def _bars(title: str, unit: str, description: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(INFLUX)
        .unit(unit)
        .draw_style(common_model.GraphDrawStyle.BARS)
        .fill_opacity(60)
        .height(9)
        .span(12)
    )


def energy_dashboard(inventory: Inventory) -> builder.Dashboard:
    baseline = inventory.mean_baseline_w
    dash = (
        new_dashboard(
            UID,
            "luxtel: energy",
            "Metered kWh per zone and day, burning hours, savings against the baseline lamps.",
        )
        .time("now-30d", "now")
        .refresh("1h")
        .with_variable(zone_variable())
        .with_variable(
            builder.TextBoxVariable("baseline_w")
            .label("Baseline W")
            .description(
                "Wattage of the lamps the LEDs replaced (fleet mean of the inventory's "
                "baseline_power_w when built with one); set it when it says 0."
            )
            .default_value(f"{baseline:g}" if baseline is not None else "0")
        )
        .with_variable(
            builder.ConstantVariable("report_interval_s")
            .label("Reporting interval (s)")
            .value(str(inventory.report_interval_s))
        )
        .with_panel(
            _bars("Energy per zone per day", "kwatth", "Metered kWh (UTC days).").with_target(
                InfluxQL(KWH_PER_ZONE_DAY).alias("$tag_zone")
            )
        )
        .with_panel(
            _bars(
                "Burning hours per zone per day",
                "h",
                "Luminaire-hours lit: readings with the lamp on × the reporting interval.",
            ).with_target(InfluxQL(BURNING_HOURS_PER_ZONE_DAY).alias("$tag_zone"))
        )
        .with_panel(
            _bars(
                "Savings against the baseline",
                "kwatth",
                "Baseline kWh (burning hours × baseline W) against metered kWh; saved is the "
                "difference.",
            )
            .with_target(InfluxQL(BASELINE_KWH_PER_DAY).alias("baseline").ref_id("A"))
            .with_target(InfluxQL(METERED_KWH_PER_DAY).alias("metered").ref_id("B"))
            .with_transformation(
                model.DataTransformerConfig(
                    id_val="calculateField",
                    options={
                        "alias": "saved",
                        "mode": "binary",
                        "binary": {"left": "baseline", "operator": "-", "right": "metered"},
                    },
                )
            )
            .span(24)
        )
    )
    return number_panels(dash)
