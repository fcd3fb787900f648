"""Every PromQL expression of the health dashboard runs against a real Prometheus scraping a
running luxtel (real Mosquitto and InfluxDB, the rules on): each parses, every metric it names is
one luxtel exposes, and each returns series, instant and over a range, as Grafana would ask.

The Grafana variables are replaced as Grafana does for this data source: `$__rate_interval` by
4 × the scrape interval (its minimum), `$instance` by the "All" value `.*` and by the one
instance, regex-escaped."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dashboards.build import build_dashboards
from dashboards.health import INSTANCE_VARIABLE_QUERY, expressions
from luxtel.settings import InventorySettings, MetricsSettings, RulesSettings
from rules.evaluation.inventory import COLUMNS
from servers import InfluxDBServer, MosquittoServer
from servers.prometheus import PrometheusServer, instant_query, label_values, range_query
from tests.rules_fixtures import HOT_RULES
from tests.support import Publisher, RunningPipeline, make_settings, reading, wait_until

pytestmark = pytest.mark.integration

SCRAPE_S = 1
RATE_INTERVAL = f"{4 * SCRAPE_S}s"
DEVICES = [f"p{i:02d}x" for i in range(5)]


def promql(expr: str, instance: str) -> str:
    """`expr` with Grafana's variables replaced (`instance`: a regex, as Grafana formats a
    Prometheus regex variable, its backslashes doubled inside the PromQL string)."""
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$instance", instance)


def escaped(instance: str) -> str:
    return re.escape(instance).replace("\\", "\\\\")


def values(series: list[dict[str, object]]) -> list[float]:
    """Every sample value of an instant or range query's result."""
    found: list[float] = []
    for one in series:
        samples = one.get("values") or [one["value"]]
        assert isinstance(samples, list)
        found.extend(float(sample[1]) for sample in samples)
    return found


def scalar(url: str, expr: str) -> float:
    result = instant_query(url, expr)
    return max(values(result)) if result else float("nan")


def readings(topic_root: str, first_seq: int, per_device: int) -> list[tuple[str, bytes]]:
    now_ms = int(time.time() * 1000)
    return [
        (
            f"{topic_root}/north/{device}/telemetry",
            reading(now_ms - (per_device - k) * 100, driver_temp_c=95.0, seq=first_seq + k),
        )
        for k in range(per_device)
        for device in DEVICES
    ]


def test_the_dashboard_queries_are_the_ones_tested() -> None:
    model = build_dashboards()["luxtel-health.json"]
    built = sorted(target["expr"] for panel in model["panels"] for target in panel["targets"])
    assert built == sorted(expr for _, expr in expressions())
    (variable,) = model["templating"]["list"]
    assert variable["query"] == INSTANCE_VARIABLE_QUERY


def test_every_health_query_runs_on_prometheus_scraping_luxtel(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(HOT_RULES)
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(
        ",".join(COLUMNS)
        + "\n"
        + "".join(f"{d},north,C01,31.2,121.4,60,100,900,LX-M60,2024-01-01\n" for d in DEVICES)
    )
    base = make_settings(tmp_path / "state", mosquitto.url, influxdb.url, influx_db, topic_root)
    settings = base.model_copy(
        update={
            "rules": RulesSettings(path=rules, tick_s=0.2),
            "inventory": InventorySettings(path=inventory),
            "metrics": MetricsSettings(enabled=True, port=0),
        }
    )
    publisher = Publisher(mosquitto.url)
    try:
        with RunningPipeline(settings) as running:
            assert running.pipeline is not None
            assert running.pipeline.rules is not None
            instance = f"127.0.0.1:{running.pipeline.metrics_port}"
            prom = prometheus_factory(targets=[instance], scrape_interval_s=SCRAPE_S)
            start = time.time()
            url = prom.url

            # Readings evaluated live, and one rejected (so `luxtel_rejected_total{reason}`
            # has a series; a second one below gives it a rate).
            rejected = [(f"{topic_root}/north/{DEVICES[0]}/telemetry", b"not json")]
            publisher.publish(readings(topic_root, 0, 20))
            publisher.publish(rejected)
            live = 20 * len(DEVICES)
            wait_until(
                lambda: scalar(url, 'luxtel_rules_evaluated_total{job="luxtel"}') == live,
                60,
                "Prometheus to see every reading evaluated",
            )

            # The rules process stopped: readings are journaled, the rules lag, Prometheus
            # sees it; then they catch up.
            pid = running.pipeline.rules.pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            try:
                publisher.publish(readings(topic_root, 100, 10))
                publisher.publish(rejected)
                wait_until(
                    lambda: (
                        scalar(url, 'luxtel_rules_lag_observations{job="luxtel"}') > 0
                        and scalar(url, 'luxtel_rules_lag_seconds{job="luxtel"}') > 0
                    ),
                    60,
                    "Prometheus to see the rules lag",
                )
            finally:
                os.kill(pid, signal.SIGCONT)
            total = live + 10 * len(DEVICES)
            wait_until(
                lambda: scalar(url, 'luxtel_rules_evaluated_total{job="luxtel"}') == total,
                60,
                "Prometheus to see the rules caught up",
            )
            wait_until(
                lambda: scalar(url, 'count_over_time(up{job="luxtel"}[10m])') >= 8,
                60,
                "eight scrapes of luxtel",
            )
            assert scalar(url, 'min_over_time(up{job="luxtel"}[10m])') == 1
            end = time.time()

            names = set(label_values(url, "__name__"))
            assert "luxtel_observations_dropped_total" not in names, "nothing is dropped"
            variable = re.fullmatch(r"label_values\((.+), (\w+)\)", INSTANCE_VARIABLE_QUERY)
            assert variable is not None
            assert label_values(url, variable[2], variable[1]) == [instance]

            peaks: dict[str, float] = {}
            for title, expr in expressions():
                for chosen in (".*", escaped(instance)):
                    query = promql(expr, chosen)
                    for name in re.findall(r"\bluxtel_\w+", query):
                        assert name in names, f"{title}: {name} is not on luxtel's /metrics"
                    instant = instant_query(url, query)
                    assert instant, f"{title}: no series now for {query}"
                    ranged = range_query(url, query, start, end, SCRAPE_S)
                    assert ranged, f"{title}: no series from start to end for {query}"
                    peaks[expr] = max(values(ranged))

            def peak(title: str) -> float:
                return max(peaks[expr] for t, expr in expressions() if t == title)

            # What the run did shows on the panels.
            assert peak("Readings received /s") > 0
            assert peak("Points written /s") > 0
            assert peak("Rejected by reason /s") > 0
            assert peak("Rules evaluated /s") > 0
            assert peak("Rules lag (observations behind)") > 0
            assert peak("Rules lag (seconds behind)") > 0
            assert peak("Rules journal") > 0
            assert peak("Dead letter on disk") > 0
            assert peak("InfluxDB up") == 1
            assert peak("Broker connected") == 1
            assert peak("Disk full") == 0
            assert peak("Rules journal full") == 0
    finally:
        publisher.close()
