"""Energy: kWh per zone per day, burning hours, completeness, and savings against the baseline.

Every panel reads the per-zone daily rollups (`energy_zone_daily` in the `rollups` retention
policy, `energy.rollup_groups`: kept by `luxtel run` and `luxtel energy rollup`, computed by
InfluxDB from the per-luminaire rollups), never raw telemetry nor per-luminaire points: a year of
a city is one point per zone per civil day (36,500 for 100 zones) instead of a
`non_negative_difference` over 35 billion raw readings. The rollups hold the report's own
arithmetic (resets, onboarding, intervals shared between hours), so these are the auditor's
figures for whole civil days of `energy.tz` (each point at its day's local midnight), and the
baseline is each luminaire's own (`baseline_power_w` of the inventory, over its verified burning
hours, summed into the zone's `baseline_mwh` + `baseline_rest`). Every figure is an integer
field (mWh, ms; the baseline as whole mWh and a rest in mW·ms), so InfluxDB's sums are exact and
the panels show the report's own figures. The per-day sums over zones group by 15 minutes
with `fill(none)`: each civil day's points share their local midnight, so each bar is one civil
day, at its start, in any time zone.
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
ROLLUPS = '"rollups"."energy_zone_daily"'
"""The rollups' retention policy and the per-zone daily level (`influx.rollup_retention_policy`)."""

KWH_PER_ZONE_DAY = influxql(
    'SELECT "metered_mwh" / 1000000 FROM @rollups WHERE $timeFilter AND @zone GROUP BY "zone"',
    rollups=ROLLUPS,
)
BURNING_HOURS_PER_ZONE_DAY = influxql(
    'SELECT "burning_ms" / 3600000 FROM @rollups WHERE $timeFilter AND @zone GROUP BY "zone"',
    rollups=ROLLUPS,
)
COMPLETENESS_PER_ZONE_DAY = influxql(
    'SELECT "readings" / "expected" * 100 FROM @rollups WHERE $timeFilter AND @zone '
    'GROUP BY "zone"',
    rollups=ROLLUPS,
)
BASELINE_KWH_PER_DAY = influxql(
    'SELECT (sum("baseline_mwh") + sum("baseline_rest") / 3600000) / 1000000 FROM @rollups '
    "WHERE $timeFilter AND @zone GROUP BY time(15m) fill(none)",
    rollups=ROLLUPS,
)
VERIFIED_KWH_PER_DAY = influxql(
    'SELECT sum("verified_mwh") / 1000000 FROM @rollups WHERE $timeFilter AND @zone '
    "GROUP BY time(15m) fill(none)",
    rollups=ROLLUPS,
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
    """The energy dashboard (the inventory is in the rollups already: each point carries its
    luminaire's baseline)."""
    del inventory
    dash = (
        new_dashboard(
            UID,
            "luxtel: energy",
            "Metered kWh per zone and day, burning hours, completeness, savings against each "
            "luminaire's baseline; from the per-zone daily rollups.",
        )
        .time("now-30d", "now")
        .refresh("1h")
        .with_variable(zone_variable())
        .with_panel(
            _bars(
                "Energy per zone per day", "kwatth", "Metered kWh (civil days of energy.tz)."
            ).with_target(InfluxQL(KWH_PER_ZONE_DAY).alias("$tag_zone"))
        )
        .with_panel(
            _bars(
                "Burning hours per zone per day",
                "h",
                "Luminaire-hours lit, from the readings' lamp state and energy (verified "
                "intervals only).",
            ).with_target(InfluxQL(BURNING_HOURS_PER_ZONE_DAY).alias("$tag_zone"))
        )
        .with_panel(
            _bars(
                "Data completeness per zone per day",
                "percent",
                "Readings received over readings expected: a gap is never a saving.",
            ).with_target(InfluxQL(COMPLETENESS_PER_ZONE_DAY).alias("$tag_zone"))
        )
        .with_panel(
            _bars(
                "Savings against the baseline",
                "kwatth",
                "Baseline kWh (each luminaire's baseline W over its verified burning hours) "
                "against the verified metered kWh; saved is the difference.",
            )
            .with_target(InfluxQL(BASELINE_KWH_PER_DAY).alias("baseline").ref_id("A"))
            .with_target(InfluxQL(VERIFIED_KWH_PER_DAY).alias("metered").ref_id("B"))
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
            .span(12)
        )
    )
    return number_panels(dash)
