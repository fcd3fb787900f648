"""luxtel health: the pipeline's own metrics, scraped by Prometheus from each /metrics.

Every PromQL expression is in the tables below (`STATES`, `GRAPHS`, `INSTANCE_VARIABLE_QUERY`);
`tests/test_dashboards_prometheus.py` runs each of them against a real Prometheus scraping a
running luxtel.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import new_dashboard, number_panels, thresholds, value_map
from dashboards.sdk import PROMETHEUS

UID = "luxtel-health"

INSTANCE = 'job="luxtel", instance=~"$instance"'

INSTANCE_VARIABLE_QUERY = 'label_values(luxtel_messages_received_total{job="luxtel"}, instance)'
"""Grafana's `label_values(metric, label)`: the `instance` variable's values."""


def _rate(metric: str, by: str | None = "instance") -> str:
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}(rate({metric}{{{INSTANCE}}}[$__rate_interval]))"


@dataclass(frozen=True, slots=True)
class Series:
    expr: str
    legend: str


@dataclass(frozen=True, slots=True)
class State:
    """A stat panel over all instances: the worst of them."""

    title: str
    expr: str
    good: tuple[str, str]
    """(value, text) of the good state; the other value of 0/1 is the bad one."""
    bad: tuple[str, str]
    description: str


@dataclass(frozen=True, slots=True)
class Graph:
    title: str
    unit: str
    series: tuple[Series, ...]
    description: str = ""


STATES: tuple[State, ...] = (
    State(
        "InfluxDB up",
        f"min(luxtel_influx_up{{{INSTANCE}}})",
        ("1", "up"),
        ("0", "down"),
        "The worst of all instances: 0 when any one is down.",
    ),
    State(
        "Broker connected",
        f"min(luxtel_mqtt_connected{{{INSTANCE}}})",
        ("1", "up"),
        ("0", "down"),
        "The worst of all instances: 0 when any one is down.",
    ),
    State(
        "Disk full",
        f"max(luxtel_disk_full{{{INSTANCE}}})",
        ("0", "no"),
        ("1", "full"),
        "1 while any instance waits for disk space to write its spool or dead letter "
        "(the messages stay unacknowledged meanwhile).",
    ),
    State(
        "Rules journal full",
        f"max(luxtel_rules_journal_full{{{INSTANCE}}})",
        ("0", "no"),
        ("1", "full"),
        "1 while any instance's rules journal is at rules.journal_max_bytes: ingest waits for "
        "the rules (back-pressure, nothing dropped). Only with the rules on.",
    ),
)

GRAPHS: tuple[Graph, ...] = (
    Graph(
        "Readings received /s",
        "reqps",
        (Series(_rate("luxtel_messages_received_total"), "{{instance}}"),),
    ),
    Graph(
        "Points written /s",
        "reqps",
        (Series(_rate("luxtel_points_written_total"), "{{instance}}"),),
    ),
    Graph(
        "Rejected by reason /s",
        "reqps",
        (Series(_rate("luxtel_rejected_total", "reason"), "{{reason}}"),),
    ),
    Graph(
        "Write latency (p50, p99)",
        "s",
        tuple(
            Series(
                f"histogram_quantile({q}, sum by (le) "
                f"(rate(luxtel_write_seconds_bucket{{{INSTANCE}}}[$__rate_interval])))",
                legend,
            )
            for q, legend in (("0.99", "p99"), ("0.5", "p50"))
        ),
    ),
    Graph(
        "Spool size",
        "bytes",
        (Series(f"sum by (instance) (luxtel_spool_bytes{{{INSTANCE}}})", "{{instance}}"),),
    ),
    Graph(
        "Queue depth",
        "none",
        (Series(f"sum by (queue) (luxtel_queue_depth{{{INSTANCE}}})", "{{queue}}"),),
    ),
    Graph(
        "Unacknowledged messages",
        "none",
        (Series(f"sum by (instance) (luxtel_unacked_messages{{{INSTANCE}}})", "{{instance}}"),),
    ),
    Graph(
        "Write retries and spooled points /s",
        "reqps",
        (
            Series(_rate("luxtel_write_retries_total", None), "retries"),
            Series(_rate("luxtel_points_spooled_total", None), "spooled points"),
        ),
    ),
    Graph(
        "Rules lag (observations behind)",
        "none",
        (
            Series(
                f"sum by (instance) (luxtel_rules_lag_observations{{{INSTANCE}}})", "{{instance}}"
            ),
        ),
        "Observations journaled and not yet evaluated by the rules: they lag, never drop.",
    ),
    Graph(
        "Rules lag (seconds behind)",
        "s",
        (Series(f"max by (instance) (luxtel_rules_lag_seconds{{{INSTANCE}}})", "{{instance}}"),),
        "Age of the oldest observation the rules have not evaluated (its append time, wall "
        "clock); 0 when they are caught up.",
    ),
    Graph(
        "Rules evaluated /s",
        "reqps",
        (
            Series(_rate("luxtel_rules_evaluated_total"), "{{instance}} evaluated"),
            Series(_rate("luxtel_rules_journal_observations_total"), "{{instance}} journaled"),
        ),
        "Evaluated below journaled for long means the rules fall behind.",
    ),
    Graph(
        "Rules journal",
        "bytes",
        (
            Series(
                f"sum by (instance) (luxtel_rules_journal_bytes{{{INSTANCE}}})",
                "{{instance}} held",
            ),
            Series(
                f"sum by (instance) (luxtel_rules_lag_bytes{{{INSTANCE}}})",
                "{{instance}} not evaluated",
            ),
        ),
        "Held: not yet committed by the rules, against rules.journal_max_bytes.",
    ),
    Graph(
        "Dead letter on disk",
        "bytes",
        (Series(f"sum by (instance) (luxtel_deadletter_bytes{{{INSTANCE}}})", "{{instance}}"),),
        "deadletter.jsonl and its rotated segments, under deadletter.max_bytes.",
    ),
    Graph(
        "Discarded /s",
        "reqps",
        (
            Series(
                _rate("luxtel_deadletter_discarded_records_total"),
                "{{instance}} dead-letter records rotated out",
            ),
            Series(
                _rate("luxtel_mqtt_output_dropped_total"),
                "{{instance}} own MQTT publications dropped",
            ),
        ),
        "Dead-letter records deleted to keep the dead letter under its cap, and luxtel's own "
        "MQTT publications (dead-letter copies, alerts) dropped from a full outgoing queue.",
    ),
)


def expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of the dashboard's panels, in panel order."""
    return [(s.title, s.expr) for s in STATES] + [
        (g.title, series.expr) for g in GRAPHS for series in g.series
    ]


def _query(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).range().ref_id(ref_id)


def _state(state: State) -> stat.Panel:
    good_value, good_text = state.good
    bad_value, bad_text = state.bad
    mapping = {good_value: (good_text, "green"), bad_value: (bad_text, "red")}
    steps = [(None, "green"), (1, "red")] if good_value == "0" else [(None, "red"), (1, "green")]
    return (
        stat.Panel()
        .title(state.title)
        .description(state.description)
        .datasource(PROMETHEUS)
        .with_target(_query(state.expr, state.title))
        .mappings([value_map(dict(sorted(mapping.items())))])
        .thresholds(thresholds(*steps))
        .height(4)
        .span(6)
    )


def _graph(graph: Graph) -> timeseries.Panel:
    panel = timeseries.Panel().title(graph.title).datasource(PROMETHEUS)
    if graph.description:
        panel = panel.description(graph.description)
    for ref_id, series in zip("ABCDEFGH", graph.series, strict=False):
        panel = panel.with_target(_query(series.expr, series.legend, ref_id))
    return panel.unit(graph.unit).height(8).span(12)


def health_dashboard() -> builder.Dashboard:
    dash = (
        new_dashboard(UID, "luxtel: health", "luxtel's own metrics, per instance.")
        .time("now-6h", "now")
        .refresh("30s")
        .with_variable(
            builder.QueryVariable("instance")
            .label("Instance")
            .datasource(PROMETHEUS)
            .query(INSTANCE_VARIABLE_QUERY)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    )
    for state in STATES:
        dash = dash.with_panel(_state(state))
    for graph in GRAPHS:
        dash = dash.with_panel(_graph(graph))
    return number_panels(dash)
