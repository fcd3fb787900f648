"""What the integration tests share: settings for a test's own servers, the pipeline running in a
thread of its own, a QoS 1 publisher that waits for the broker's acknowledgements, and InfluxDB
look-ups."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from luxtel.pipeline import Pipeline
from luxtel.settings import (
    InfluxSettings,
    IngestSettings,
    MetricsSettings,
    MqttSettings,
    Settings,
)
from servers import query, quote_ident


def make_settings(
    state_dir: Path,
    mqtt_url: str,
    influx_url: str,
    database: str,
    topic_root: str,
    *,
    client_id: str | None = None,
    batch_size: int = 500,
    flush_interval_s: float = 0.2,
    device_rate_per_s: float = 0,
    device_burst: int = 2000,
    idle_flush_s: float = 0.02,
) -> Settings:
    """Settings for a test. The per-device rate limit is off unless asked for: the tests
    publish thousands of readings per device in seconds."""
    return Settings(
        state_dir=state_dir,
        mqtt=MqttSettings(
            url=mqtt_url,
            topic_root=topic_root,
            client_id=client_id or f"luxtel-{uuid.uuid4().hex[:8]}",
            reconnect_max_s=2.0,
        ),
        influx=InfluxSettings(url=influx_url, database=database, timeout_s=3.0),
        ingest=IngestSettings(
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            idle_flush_s=idle_flush_s,
            device_rate_per_s=device_rate_per_s,
            device_burst=device_burst,
        ),
        metrics=MetricsSettings(enabled=False),
    )


def settings_toml(settings: Settings) -> str:
    """The settings as a luxtel.toml, for tests that run the `luxtel` command."""
    return (
        f'state_dir = "{settings.state_dir}"\n'
        f'[mqtt]\nurl = "{settings.mqtt.url}"\ntopic_root = "{settings.mqtt.topic_root}"\n'
        f'client_id = "{settings.mqtt.client_id}"\nreconnect_max_s = 2.0\n'
        f'[influx]\nurl = "{settings.influx.url}"\ndatabase = "{settings.influx.database}"\n'
        "timeout_s = 3.0\n"
        f"[ingest]\nbatch_size = {settings.ingest.batch_size}\n"
        f"flush_interval_s = {settings.ingest.flush_interval_s}\n"
        f"idle_flush_s = {settings.ingest.idle_flush_s}\n"
        f"device_rate_per_s = {settings.ingest.device_rate_per_s}\n"
        f"device_burst = {settings.ingest.device_burst}\n"
        "[metrics]\nenabled = false\n"
    )


class RunningPipeline:
    """`Pipeline.run()` on an event loop in a thread of its own, for synchronous tests."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pipeline: Pipeline | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="pipeline", daemon=True)

    def _main(self) -> None:
        async def body() -> None:
            self._loop = asyncio.get_running_loop()
            self.pipeline = Pipeline(self.settings)
            self._started.set()
            await self.pipeline.run()

        try:
            asyncio.run(body())
        except BaseException as error:  # surfaced to the test by stop()/alive
            self.error = error
            self._started.set()

    def __enter__(self) -> RunningPipeline:
        self._thread.start()
        self._started.wait(10)
        self.wait_connected()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def wait_connected(self, timeout: float = 30) -> None:
        assert self.pipeline is not None, self.error
        assert self._loop is not None, self.error
        future = asyncio.run_coroutine_threadsafe(self.pipeline.wait_connected(), self._loop)
        future.result(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 60) -> None:
        if self._loop is not None and self.pipeline is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.pipeline.stop.set)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the pipeline did not stop"
        if self.error is not None:
            raise self.error

    def metric(self, name: str, **labels: str) -> float:
        assert self.pipeline is not None
        value = self.pipeline.metrics.registry.get_sample_value(name, labels or None)
        return value or 0.0


class Publisher:
    """A QoS 1 publisher: `publish()` returns once the broker has acknowledged everything."""

    def __init__(self, broker_url: str, client_id: str | None = None, **will: Any) -> None:
        host, port = broker_url.removeprefix("mqtt://").split(":")
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"pub-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        if will:
            self.client.will_set(**will)
        self.client.connect(host, int(port), keepalive=30)
        self.client.loop_start()

    def publish(
        self, messages: Iterable[tuple[str, bytes | str]], qos: int = 1, timeout: float = 120
    ) -> int:
        infos = [self.client.publish(topic, payload, qos=qos) for topic, payload in messages]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            assert info.is_published(), "the broker did not acknowledge a publish"
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def reading(
    ts_ms: int, *, power: float = 40.0, energy: float = 1000.0, seq: int = 0, **extra: Any
) -> bytes:
    body = {
        "ts": ts_ms / 1000,
        "lamp_on": True,
        "power_w": power,
        "energy_wh": energy,
        "seq": seq,
        "dim_pct": 100,
        **extra,
    }
    return json.dumps(body).encode()


def count(influx_url: str, database: str, measurement: str) -> int:
    """Points in `measurement` (telemetry counts power_w, always present; others any field)."""
    field = "power_w" if measurement == "telemetry" else "*"
    statement = f"SELECT COUNT({field}) FROM {quote_ident(measurement)}"  # noqa: S608 (test data)
    answer = query(influx_url, statement, db=database)
    series = answer["results"][0].get("series")
    if not series:
        return 0
    return int(max(v for v in series[0]["values"][0][1:] if v is not None))


def rows(influx_url: str, database: str, statement: str) -> list[dict[str, Any]]:
    answer = query(influx_url, statement, db=database, epoch="ms")
    out: list[dict[str, Any]] = []
    for series in answer["results"][0].get("series", []):
        for values in series["values"]:
            out.append(dict(zip(series["columns"], values, strict=True)))
    return out


def wait_until(predicate: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


LUXTEL = [sys.executable, "-m", "luxtel"]
"""The `luxtel` command of this venv, as an argv prefix."""


def start_luxtel(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`luxtel run -c config` as its own process, its output in `log`."""
    handle = log.open("ab")
    return subprocess.Popen(
        [*LUXTEL, "run", "-c", str(config)],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def process_gone(pid: int) -> bool:
    """True once process `pid` has exited (no longer there, or a zombie not reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def descendants(pid: int) -> list[int]:
    """The live descendants of process `pid` (children of any of its threads, theirs, …)."""
    found: list[int] = []
    parents = [pid]
    while parents:
        parent = parents.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:  # the thread or the process ended meanwhile
                continue
            found.extend(children)
            parents.extend(children)
    return found
