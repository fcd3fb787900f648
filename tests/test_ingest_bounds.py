"""A flood of bad payloads from one device, against real Mosquitto and InfluxDB: the dead letter
stays under its byte cap (rotating, and counting what rotation discards), each large payload is
kept as its first part with its length and SHA-256, and the neighbours' readings all land."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path

from luxtel.settings import DeadLetterSettings, Settings
from servers import InfluxDBServer, MosquittoServer
from tests.support import Publisher, RunningPipeline, count, make_settings, reading, wait_until

BASE_MS = int(time.time() * 1000) - 3_600_000
FLOOD = 300
FLOOD_BYTES = 20 * 1024
NEIGHBOURS = 300
CAP = 1024 * 1024
KEPT = 8 * 1024


def dead_letter_files(state_dir: Path) -> list[Path]:
    """`deadletter.jsonl` and its rotated segments."""
    return sorted(state_dir.glob("deadletter.jsonl*"))


def garbage(i: int) -> bytes:
    """`FLOOD_BYTES` of non-UTF-8 bytes, different for each message."""
    return (bytes([0xFF, i % 251]) + os.urandom(16)) * (FLOOD_BYTES // 18) + b"\xfe" * (
        FLOOD_BYTES % 18
    )


def test_a_flood_of_bad_payloads_stays_under_the_dead_letter_cap(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    base = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
    settings = Settings(
        **{
            **base.model_dump(),
            "deadletter": DeadLetterSettings(
                max_bytes=CAP, segment_bytes=128 * 1024, payload_kept_bytes=KEPT
            ),
        }
    )
    flood = [garbage(i) for i in range(FLOOD)]
    messages: list[tuple[str, bytes]] = []
    for i in range(max(FLOOD, NEIGHBOURS)):
        if i < FLOOD:
            messages.append((f"{topic_root}/z1/flooder/telemetry", flood[i]))
        if i < NEIGHBOURS:
            messages.append(
                (f"{topic_root}/z1/lum-{i % 10}/telemetry", reading(BASE_MS + i * 1000, seq=i))
            )
    publisher = Publisher(mosquitto.url)
    with RunningPipeline(settings) as running:
        publisher.publish(messages)
        wait_until(
            lambda: count(influxdb.url, influx_db, "telemetry") == NEIGHBOURS,
            what="every neighbour's reading",
        )
        wait_until(
            lambda: running.metric("luxtel_rejected_total", reason="payload_not_utf8") == FLOOD,
            what="the whole flood dead-lettered",
        )
        discarded = running.metric("luxtel_deadletter_discarded_records_total")
        discarded_bytes = running.metric("luxtel_deadletter_discarded_bytes_total")
        on_disk = running.metric("luxtel_deadletter_bytes")
    publisher.close()
    files = dead_letter_files(tmp_path)
    assert (tmp_path / "deadletter.jsonl") in files
    total = sum(path.stat().st_size for path in files)
    assert total <= CAP, f"{total} bytes of dead letter on disk, cap {CAP}"
    assert on_disk == total
    records = [json.loads(line) for path in files for line in path.read_bytes().splitlines()]
    assert discarded > 0, "rotation discarded nothing"
    assert discarded_bytes > 0
    assert len(records) + discarded == FLOOD
    by_hash = {hashlib.sha256(payload).hexdigest(): payload for payload in flood}
    for record in records:
        assert record["payload_bytes"] == FLOOD_BYTES
        assert base64.b64decode(record["payload_b64"]) == by_hash[record["payload_sha256"]][:KEPT]
