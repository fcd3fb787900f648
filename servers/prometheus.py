"""A Prometheus server of our own for the tests: scrapes given targets every second, its TSDB in
its data directory, its HTTP API on a free loopback port; and the two query calls of that API.

Test-only (luxtel never starts Prometheus), so it lives here rather than in
`luxtel.local_servers`::

    with PrometheusServer(tmp / "prometheus", targets=["127.0.0.1:9108"]) as prom:
        answer = instant_query(prom.url, "up")
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, ClassVar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import ProxyHandler, Request, build_opener

from luxtel.local_servers import ServerError, ServerProcess, free_port

__all__ = ["PrometheusError", "PrometheusServer", "instant_query", "label_values", "range_query"]

_PROBE_TIMEOUT = 1.0
_REQUEST_TIMEOUT = 30.0
_OPENER = build_opener(ProxyHandler({}))
"""Ignores http_proxy and the like: our servers are on loopback, never behind a proxy."""


class PrometheusError(ServerError):
    """Prometheus answered a query with `status: error` (a PromQL parse error, say)."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(f"Prometheus answered {status} ({error_type}): {message}")
        self.status = status
        self.error_type = error_type
        self.message = message


class PrometheusServer(ServerProcess):
    """`/usr/bin/prometheus` scraping `targets` (host:port, `/metrics`) as job `job`.

    Scrapes and evaluates every `scrape_interval_s` (1 s by default, so a test sees a few
    scrapes within seconds). Ready once `GET /-/ready` answers 200 (the TSDB is open).
    """

    name: ClassVar[str] = "prometheus"
    binary: ClassVar[Path] = Path("/usr/bin/prometheus")
    package: ClassVar[str] = "prometheus"

    def __init__(
        self,
        data_dir: Path,
        targets: list[str],
        job: str = "luxtel",
        scrape_interval_s: int = 1,
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(data_dir, "prometheus.log")
        self.targets = list(targets)
        self.job = job
        self.scrape_interval_s = scrape_interval_s
        self.host = host
        self.conf_path = self.data_dir / "prometheus.yml"
        self._auto_port = port is None
        self._port = free_port(host) if port is None else port

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config_text(self) -> str:
        """The configuration file's text (YAML; JSON strings are valid YAML scalars)."""
        interval = f"{self.scrape_interval_s}s"
        targets = ", ".join(json.dumps(t) for t in self.targets)
        return f"""\
# Written by luxtel's servers.PrometheusServer; rewritten on every start.
global:
  scrape_interval: {interval}
  scrape_timeout: {interval}
  evaluation_interval: {interval}

scrape_configs:
  - job_name: {json.dumps(self.job)}
    static_configs:
      - targets: [{targets}]
"""

    def _write_config(self) -> None:
        self.conf_path.write_text(self.config_text())

    def _command(self) -> list[str]:
        return [
            str(self.binary),
            f"--config.file={self.conf_path}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--storage.tsdb.retention.time=1d",
        ]

    def _is_ready(self) -> bool:
        with _OPENER.open(f"{self.url}/-/ready", timeout=_PROBE_TIMEOUT) as response:
            return bool(response.status == 200)

    def _choose_new_ports(self) -> bool:
        if not self._auto_port:
            return False
        self._port = free_port(self.host)
        return True


def instant_query(url: str, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """`/api/v1/query`: the result (a vector's series) of `promql` at `at` (now if None, Unix
    seconds); raises PrometheusError unless the status is success."""
    params = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    return _result(url, "/api/v1/query", params)


def range_query(
    url: str, promql: str, start: float, end: float, step_s: float
) -> list[dict[str, Any]]:
    """`/api/v1/query_range`: the result (a matrix's series) of `promql` from `start` to `end`
    (Unix seconds) every `step_s`; raises PrometheusError unless the status is success."""
    params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"}
    return _result(url, "/api/v1/query_range", params)


def label_values(url: str, label: str, match: str | None = None) -> list[str]:
    """`/api/v1/label/<label>/values`, optionally only of the series `match` selects (what
    Grafana's `label_values(metric, label)` asks)."""
    params = {"match[]": match} if match is not None else {}
    data = _call(url, f"/api/v1/label/{label}/values", params)
    values: list[str] = data
    return values


def _result(url: str, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    data = _call(url, path, params)
    result: list[dict[str, Any]] = data["result"]
    return result


def _call(url: str, path: str, params: dict[str, str]) -> Any:
    query = f"?{urlencode(params)}" if params else ""
    request = Request(url.rstrip("/") + path + query)  # noqa: S310 (our own loopback server)
    try:
        with _OPENER.open(request, timeout=_REQUEST_TIMEOUT) as response:
            status, body = response.status, response.read()
    except HTTPError as error:
        status, body = error.code, error.read()
    answer: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        answer = json.loads(body)
    if answer.get("status") != "success":
        raise PrometheusError(
            status,
            str(answer.get("errorType", "?")),
            str(answer.get("error", body.decode("utf-8", "replace")[:500])),
        )
    return answer["data"]
