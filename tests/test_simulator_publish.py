"""The simulator against a real Mosquitto: every message arrives, every message is contract-valid,
Last Wills fire, and the energy truth matches what the readings show."""

from __future__ import annotations

import csv
import itertools
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.decode import Limits, decode
from servers import MosquittoServer
from simulator import SimulationConfig, run_simulation

pytestmark = pytest.mark.integration


@dataclass
class _Subscriber:
    """A QoS 1 subscriber to ``{root}/#`` that keeps every message."""

    client: paho.Client
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.05)
        time.sleep(0.3)  # anything beyond the expected count would show now
        with self.lock:
            assert len(self.messages) == count


@pytest.fixture
def subscriber(mosquitto: MosquittoServer, topic_root: str) -> Iterator[_Subscriber]:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}")
    sub = _Subscriber(client)
    subscribed = threading.Event()

    def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        with sub.lock:
            sub.messages.append((msg.topic, bytes(msg.payload), msg.retain))

    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    client.subscribe(f"{topic_root}/#", qos=1)
    assert subscribed.wait(10)
    yield sub
    client.disconnect()
    client.loop_stop()


def _config(
    mosquitto: MosquittoServer, topic_root: str, tmp_path: Path, **kw: Any
) -> SimulationConfig:
    base: dict[str, Any] = {
        "devices": 30,
        "zones": 2,
        "circuits_per_zone": 3,
        "start": datetime(2026, 6, 20, tzinfo=UTC),
        "end": datetime(2026, 6, 21, tzinfo=UTC),
        "mqtt_url": mosquitto.url,
        "topic_root": topic_root,
        "client_id": f"sim-{uuid.uuid4().hex[:8]}",
        "inventory_path": tmp_path / "inventory.csv",
        "ground_truth_path": tmp_path / "faults.csv",
        "energy_truth_path": tmp_path / "energy.csv",
    }
    base.update(kw)
    return SimulationConfig(**base)


def _decode_all(sub: _Subscriber, topic_root: str) -> dict[str, list[dict[str, Any]]]:
    """Every message through luxtel's own decoder: none may be rejected."""
    limits = Limits(topic_root=topic_root)
    now = datetime.now(UTC)
    readings: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for topic, payload, _ in sub.messages:
        decoded = decode(topic, payload, now, limits)
        assert decoded.dead_letters == [], (topic, payload, decoded.dead_letters)
        assert decoded.unknown_fields == 0
        kind = topic.rsplit("/", 1)[1]
        body = orjson.loads(payload)
        if kind == "telemetry":
            assert len(decoded.points) == 1
            readings[body["device_id"]].append(body)
        elif kind == "batch":
            assert len(decoded.points) == len(body)
            for r in body:
                readings[r["device_id"]].append(r)
    return readings


def _energy_truth(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as fh:
        return {row["device_id"]: row for row in csv.DictReader(fh)}


def _counter_energy(readings: list[dict[str, Any]]) -> float:
    total = 0.0
    ordered = sorted(readings, key=lambda r: r["ts"])
    for before, after in itertools.pairwise(ordered):
        step = after["energy_wh"] - before["energy_wh"]
        total += step if step >= 0 else after["energy_wh"]
    return total


def test_backfill_with_per_device_connections(
    mosquitto: MosquittoServer, topic_root: str, subscriber: _Subscriber, tmp_path: Path
) -> None:
    config = _config(
        mosquitto,
        topic_root,
        tmp_path,
        faults="offline=0.1,counter_reset=0.1,driver_overtemp=0.1,circuit_outage=0.2",
    )
    summary = run_simulation(config)
    assert summary.connections == "per-device"
    assert summary.mode == "backfill"
    assert summary.unacknowledged == 0
    assert not summary.stopped
    assert summary.drops == 3
    assert summary.telemetry == summary.readings > 30 * 80
    assert summary.messages == summary.telemetry + summary.statuses
    subscriber.wait_for(summary.messages + summary.drops)  # + the Last Wills the broker sent

    wills = [(t, p) for t, p, _ in subscriber.messages if p == b'{"online":false}']
    assert len(wills) == summary.drops
    assert all(t.endswith("/status") for t, _ in wills)
    readings = _decode_all(subscriber, topic_root)
    assert sum(map(len, readings.values())) == summary.readings

    truth = _energy_truth(tmp_path / "energy.csv")
    assert set(truth) == set(readings)
    resets = 0
    for device, rows in readings.items():
        row = truth[device]
        assert int(row["readings"]) == len(rows)
        seen = _counter_energy(rows)
        assert seen == pytest.approx(float(row["counter_energy_wh"]), abs=1e-6)
        if int(row["counter_resets"]):
            resets += 1
            continue
        true = float(row["energy_wh"])
        assert seen == pytest.approx(true, rel=1e-3, abs=2e-3)
        assert float(row["last_energy_wh"]) - float(row["first_energy_wh"]) == pytest.approx(
            true, abs=2e-3
        )
    assert resets == 3
    with (tmp_path / "faults.csv").open(newline="") as fh:
        faults = list(csv.DictReader(fh))
    assert len(faults) == summary.episodes_applied == summary.episodes_planned > 9


def test_gateway_batches_over_a_shared_connection(
    mosquitto: MosquittoServer, topic_root: str, subscriber: _Subscriber, tmp_path: Path
) -> None:
    config = _config(
        mosquitto, topic_root, tmp_path, devices=40, gateway_batch=8, faults="offline=0.05"
    )
    summary = run_simulation(config)
    assert summary.connections == "shared"
    assert summary.batches > 0
    assert summary.telemetry == 0
    assert summary.drops == 0
    subscriber.wait_for(summary.messages)
    readings = _decode_all(subscriber, topic_root)
    assert sum(map(len, readings.values())) == summary.readings
    batches = [t for t, _, _ in subscriber.messages if t.endswith("/batch")]
    assert len(batches) == summary.batches
    assert {t.split("/")[-2] for t in batches} <= {f"gw-c{i:02d}" for i in range(1, 7)}
    offline = [p for t, p, _ in subscriber.messages if b'"online":false' in p]
    assert len(offline) == 2  # shared mode publishes the offline status itself


def test_stop_event_ends_a_real_time_run(
    mosquitto: MosquittoServer, topic_root: str, subscriber: _Subscriber, tmp_path: Path
) -> None:
    config = _config(
        mosquitto, topic_root, tmp_path, devices=5, interval_s=1, start=None, end=None, qos=1
    )
    stop = threading.Event()
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(run_simulation(config, stop)))
    started = time.monotonic()
    thread.start()
    time.sleep(2.5)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 6
    summary = result[0]
    assert summary.stopped
    assert summary.mode == "realtime"
    assert 5 * 1 <= summary.readings <= 5 * 4
    subscriber.wait_for(summary.messages)
    readings = _decode_all(subscriber, topic_root)
    truth = _energy_truth(tmp_path / "energy.csv")
    assert {d: int(row["readings"]) for d, row in truth.items()} == {
        d: len(rows) for d, rows in readings.items()
    }


def test_rate_caps_messages_per_second(
    mosquitto: MosquittoServer, topic_root: str, subscriber: _Subscriber, tmp_path: Path
) -> None:
    config = _config(
        mosquitto,
        topic_root,
        tmp_path,
        devices=10,
        interval_s=1800,
        end=datetime(2026, 6, 20, 12, tzinfo=UTC),
        rate=400.0,
    )
    summary = run_simulation(config)
    assert 200 < summary.messages < 300
    assert summary.messages / 400.0 - 0.1 <= summary.wall_s
    assert summary.rate <= 440
    subscriber.wait_for(summary.messages)
