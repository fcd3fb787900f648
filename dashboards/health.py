"""luxtel health: the pipeline's own metrics, scraped by Prometheus from each /metrics."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import new_dashboard, number_panels, thresholds
from dashboards.sdk import PROMETHEUS

UID = "luxtel-health"

INSTANCE = 'job="luxtel", instance=~"$instance"'

PANELS: tuple[tuple[str, str, str, str], ...] = (
    # title, PromQL, legend, unit
    (
        "Readings received /s",
        f"sum by (instance) (rate(luxtel_messages_received_total{{{INSTANCE}}}[$__rate_interval]))",
        "{{instance}}",
        "reqps",
    ),
    (
        "Points written /s",
        f"sum by (instance) (rate(luxtel_points_written_total{{{INSTANCE}}}[$__rate_interval]))",
        "{{instance}}",
        "reqps",
    ),
    (
        "Rejected by reason /s",
        f"sum by (reason) (rate(luxtel_rejected_total{{{INSTANCE}}}[$__rate_interval]))",
        "{{reason}}",
        "reqps",
    ),
    (
        "Write latency (p50, p99)",
        "histogram_quantile(0.99, sum by (le) "
        f"(rate(luxtel_write_seconds_bucket{{{INSTANCE}}}[$__rate_interval])))",
        "p99",
        "s",
    ),
    (
        "Spool size",
        f"sum by (instance) (luxtel_spool_bytes{{{INSTANCE}}})",
        "{{instance}}",
        "bytes",
    ),
    (
        "Queue depth",
        f"sum by (queue) (luxtel_queue_depth{{{INSTANCE}}})",
        "{{queue}}",
        "none",
    ),
    (
        "Unacknowledged messages",
        f"sum by (instance) (luxtel_unacked_messages{{{INSTANCE}}})",
        "{{instance}}",
        "none",
    ),
    (
        "Write retries and spooled points /s",
        f"sum(rate(luxtel_write_retries_total{{{INSTANCE}}}[$__rate_interval]))",
        "retries",
        "reqps",
    ),
)
P50 = (
    "histogram_quantile(0.5, sum by (le) "
    f"(rate(luxtel_write_seconds_bucket{{{INSTANCE}}}[$__rate_interval])))"
)
SPOOLED = f"sum(rate(luxtel_points_spooled_total{{{INSTANCE}}}[$__rate_interval]))"
UP = (
    ("InfluxDB up", f"min(luxtel_influx_up{{{INSTANCE}}})"),
    ("Broker connected", f"min(luxtel_mqtt_connected{{{INSTANCE}}})"),
)


def _query(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).range().ref_id(ref_id)


def _up(title: str, expr: str) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description("The worst of all instances: 0 when any one is down.")
        .datasource(PROMETHEUS)
        .with_target(_query(expr, title))
        .mappings(
            [
                model.ValueMap(
                    options={
                        "0": model.ValueMappingResult(text="down", color="red", index=0),
                        "1": model.ValueMappingResult(text="up", color="green", index=1),
                    }
                )
            ]
        )
        .thresholds(thresholds((None, "red"), (1, "green")))
        .height(4)
        .span(12)
    )


def health_dashboard() -> builder.Dashboard:
    dash = (
        new_dashboard(UID, "luxtel: health", "luxtel's own metrics, per instance.")
        .time("now-6h", "now")
        .refresh("30s")
        .with_variable(
            builder.QueryVariable("instance")
            .label("Instance")
            .datasource(PROMETHEUS)
            .query('label_values(luxtel_messages_received_total{job="luxtel"}, instance)')
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    )
    for title, expr in UP:
        dash = dash.with_panel(_up(title, expr))
    for title, expr, legend, unit in PANELS:
        panel = (
            timeseries.Panel()
            .title(title)
            .datasource(PROMETHEUS)
            .with_target(_query(expr, legend))
            .unit(unit)
            .height(8)
            .span(12)
        )
        if title.startswith("Write latency"):
            panel = panel.with_target(_query(P50, "p50", "B"))
        if title.startswith("Write retries"):
            panel = panel.with_target(_query(SPOOLED, "spooled points", "B"))
        dash = dash.with_panel(panel)
    return number_panels(dash)
