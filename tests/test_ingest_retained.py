"""Retain-flagged deliveries, end to end on the session's real Mosquitto and InfluxDB (issue 13,
case 7): a reading or status that carries its own `ts` is written however it is flagged (the same
point again on a replay, so a broker that wrongly flags queued messages as retained loses
nothing); only one without `ts` is "not written again", counted and still observed."""

from __future__ import annotations

import json
import time
from pathlib import Path

from luxtel.settings import Settings
from servers import InfluxDBServer, MosquittoServer
from tests.support import Publisher, RunningPipeline, count, make_settings, rows, wait_until

TS_MS = int(time.time() * 1000) - 600_000
PLAIN = {"lamp_on": True, "power_w": 40.0, "energy_wh": 1000.0}


def retained_messages(root: str) -> list[tuple[str, bytes]]:
    """Three retained readings with `ts` (two of them batch elements), three without, a
    status of each kind, and one retained reading that is invalid: 4 points, 4 skipped."""
    batch = [
        {**PLAIN, "device_id": "lum-3", "ts": (TS_MS + 3) / 1000},
        {**PLAIN, "device_id": "lum-4"},
        {**PLAIN, "device_id": "lum-5", "ts": (TS_MS + 5) / 1000},
        {**PLAIN, "device_id": "lum-6"},
    ]
    return [
        (f"{root}/north/lum-1/telemetry", json.dumps({**PLAIN, "ts": (TS_MS + 1) / 1000}).encode()),
        (f"{root}/north/lum-2/telemetry", json.dumps(PLAIN).encode()),
        (f"{root}/north/gw-1/batch", json.dumps(batch).encode()),
        (f"{root}/north/lum-7/status", json.dumps({"online": True, "ts": TS_MS / 1000}).encode()),
        (f"{root}/north/lum-8/status", b'{"online": true}'),
        (f"{root}/north/lum-9/telemetry", b'{"lamp_on": 1, "power_w": 1, "energy_wh": 1}'),
    ]


def run_until_replayed(settings: Settings, dead_letters: int) -> None:
    """luxtel (a new subscription) until the retained messages are written, counted and
    dead-lettered: `dead_letters` records in the dead letter by then."""
    deadletter = settings.state_dir / "deadletter.jsonl"
    with RunningPipeline(settings) as running:
        wait_until(
            lambda: (
                running.metric("luxtel_retained_skipped_total") == 4
                and running.metric("luxtel_points_written_total") == 4
            ),
            what="the retained messages",
            timeout=20,
        )
        wait_until(
            lambda: (
                deadletter.exists() and len(deadletter.read_text().splitlines()) == dead_letters
            ),
            what="the invalid retained reading in the dead letter",
            timeout=10,
        )


def test_retained_readings_with_ts_are_written_and_those_without_are_counted(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    publisher = Publisher(mosquitto.url)
    messages = retained_messages(topic_root)
    for topic, payload in messages:
        publisher.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    try:
        for replay in (1, 2):  # a second luxtel (a new subscription): the same replay again
            settings = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
            run_until_replayed(settings, dead_letters=replay)
            got = rows(influxdb.url, influx_db, "SELECT power_w, device_id FROM telemetry")
            assert [(r["device_id"], r["time"]) for r in got] == [
                ("lum-1", TS_MS + 1),
                ("lum-3", TS_MS + 3),
                ("lum-5", TS_MS + 5),
            ]
            status = rows(influxdb.url, influx_db, "SELECT online, device_id FROM status")
            assert [(r["device_id"], r["time"], r["online"]) for r in status] == [
                ("lum-7", TS_MS, True)
            ]
        lines = (tmp_path / "deadletter.jsonl").read_text().splitlines()
        record = json.loads(lines[-1])
        assert (record["topic"], record["reason"]) == (messages[-1][0], "wrong_type")
    finally:
        for topic, _ in messages:
            publisher.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
        publisher.close()
    assert count(influxdb.url, influx_db, "telemetry") == 3
