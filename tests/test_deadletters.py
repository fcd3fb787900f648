"""The dead letter's bounds, as pure file work in a temporary directory: a large payload kept as
its first part with its length and SHA-256; rotation under a byte cap that deletes the oldest
segments and counts them; a torn last line (a crash mid-write) cut at start-up. The flood and
the full disk against real servers are in test_ingest_bounds.py and test_disk_full.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.deadletters import DeadLetterBounds, DeadLetterLog
from ingest.metrics import IngestMetrics
from luxtel.settings import ConfigError, load_settings
from models import DeadLetter, Reason

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def record(payload: bytes | str, keep: int = 1024) -> DeadLetter:
    return DeadLetter.of(
        received_at=NOW,
        topic="lighting/z1/lum-1/telemetry",
        payload=payload,
        reason=Reason.PAYLOAD_NOT_JSON,
        detail="not JSON",
        keep_bytes=keep,
    )


def test_a_short_payload_is_kept_whole() -> None:
    kept = record(b'{"lamp_on": tr')
    assert kept.payload == '{"lamp_on": tr'
    assert kept.payload_bytes is None
    assert kept.payload_sha256 is None
    assert "payload_bytes" not in json.loads(kept.to_json())


def test_a_long_text_payload_is_cut_at_a_whole_character() -> None:
    payload = ("é" * 1000).encode()  # two bytes each: a cut at 1023 splits the 512th
    kept = record(payload + b"z", keep=1023)
    assert kept.payload == "é" * 511  # 1022 bytes: the 512th character would pass the cut
    assert kept.payload_bytes == 2001
    assert kept.payload_sha256 == hashlib.sha256(payload + b"z").hexdigest()


def test_a_long_binary_payload_keeps_its_first_bytes_in_base64() -> None:
    payload = bytes(range(256)) * 400
    kept = record(payload)
    assert kept.payload is None
    assert kept.payload_b64 is not None
    assert base64.b64decode(kept.payload_b64) == payload[:1024]
    assert kept.payload_bytes == len(payload)
    assert kept.payload_sha256 == hashlib.sha256(payload).hexdigest()


@given(
    payload=st.binary(max_size=3000) | st.text(max_size=1500).map(str.encode),
    keep=st.integers(1, 2000),
)
def test_what_is_kept_is_the_payload_s_beginning_and_says_so(payload: bytes, keep: int) -> None:
    kept = record(payload, keep)
    first = kept.payload.encode() if kept.payload is not None else None
    if first is None:
        assert kept.payload_b64 is not None
        first = base64.b64decode(kept.payload_b64)
    assert payload.startswith(first)
    assert len(first) <= keep
    if len(payload) <= keep:
        assert first == payload
        assert kept.payload_bytes is None
    else:
        assert len(first) > keep - 4  # at most a split character is lost
        assert kept.payload_bytes == len(payload)
        assert kept.payload_sha256 == hashlib.sha256(payload).hexdigest()


def lines(directory: Path) -> list[dict[str, object]]:
    """Every record on disk, oldest first."""
    rotated = sorted(directory.glob("deadletter.jsonl.*"))
    current = [directory / "deadletter.jsonl"] if (directory / "deadletter.jsonl").exists() else []
    return [
        json.loads(line) for path in [*rotated, *current] for line in path.read_bytes().splitlines()
    ]


def on_disk(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.glob("deadletter.jsonl*"))


def numbered(i: int) -> DeadLetter:
    return record(f"{i:06d}" + "x" * 200)


def test_rotation_keeps_the_newest_records_under_the_cap_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    metrics = IngestMetrics()
    log = DeadLetterLog(
        tmp_path / "deadletter.jsonl", metrics, bounds=DeadLetterBounds(20_000, 4_000)
    )

    async def flood() -> None:
        for start in range(0, 500, 7):  # batches of 7, as the sink hands them over
            await log.keep([numbered(i) for i in range(start, min(start + 7, 500))])

    asyncio.run(flood())
    kept = lines(tmp_path)
    assert on_disk(tmp_path) <= 20_000
    assert on_disk(tmp_path) == log.total_bytes
    assert metrics.registry.get_sample_value("luxtel_deadletter_bytes") == log.total_bytes
    discarded = metrics.registry.get_sample_value("luxtel_deadletter_discarded_records_total")
    assert discarded is not None
    assert len(kept) + discarded == 500
    assert [str(r["payload"])[:6] for r in kept] == [
        f"{i:06d}" for i in range(500 - len(kept), 500)
    ]
    assert all(path.stat().st_size <= 4_000 for path in tmp_path.glob("deadletter.jsonl*"))
    discarded_bytes = metrics.registry.get_sample_value("luxtel_deadletter_discarded_bytes_total")
    assert discarded_bytes == 500 * len(numbered(0).to_json() + b"\n") - on_disk(tmp_path)


def test_a_restart_carries_on_the_numbering_and_the_cap(tmp_path: Path) -> None:
    bounds = DeadLetterBounds(20_000, 4_000)
    first = DeadLetterLog(tmp_path / "deadletter.jsonl", IngestMetrics(), bounds=bounds)
    asyncio.run(first.keep([numbered(i) for i in range(50)]))
    again = DeadLetterLog(tmp_path / "deadletter.jsonl", IngestMetrics(), bounds=bounds)
    assert again.total_bytes == first.total_bytes
    asyncio.run(again.keep([numbered(i) for i in range(50, 200)]))
    kept = lines(tmp_path)
    assert [str(r["payload"])[:6] for r in kept] == [
        f"{i:06d}" for i in range(200 - len(kept), 200)
    ]
    assert on_disk(tmp_path) <= 20_000


def test_a_torn_last_line_is_cut_at_start(tmp_path: Path) -> None:
    path = tmp_path / "deadletter.jsonl"
    whole = numbered(1).to_json() + b"\n"
    path.write_bytes(whole + numbered(2).to_json()[:50])
    log = DeadLetterLog(path, IngestMetrics())
    assert path.read_bytes() == whole
    asyncio.run(log.keep([numbered(3)]))
    assert [str(r["payload"])[:6] for r in lines(tmp_path)] == ["000001", "000003"]


def test_a_segment_must_be_at_most_half_the_cap() -> None:
    with pytest.raises(ValueError, match="half"):
        DeadLetterBounds(10_000, 6_000)


def test_a_segment_larger_than_half_the_cap_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "luxtel.toml"
    config.write_text("[deadletter]\nmax_bytes = 1048576\nsegment_bytes = 1048576\n")
    with pytest.raises(ConfigError, match=r"^deadletter: segment_bytes \(1048576\) must be"):
        load_settings(config)
