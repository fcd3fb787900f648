"""The spool: durable, ordered, bounded, and tolerant of a crash mid-write."""

from pathlib import Path

import pytest

from ingest.decode import Point
from ingest.spool import Spool, SpoolFullError


def points(n: int, tag: str) -> list[Point]:
    return [
        Point(line=f"m,t={tag} v={i}i {i}", topic=f"lighting/z/{tag}/telemetry") for i in range(n)
    ]


def test_segments_replay_in_order_and_survive_reopening(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**6)
    spool.append(points(3, "a"))
    spool.append(points(2, "b"))
    reopened = Spool(tmp_path, max_bytes=10**6)
    assert len(reopened) == 2
    assert reopened.bytes == spool.bytes
    first = reopened.oldest()
    assert first is not None
    assert Spool.read(first) == points(3, "a")
    reopened.remove(first)
    second = reopened.oldest()
    assert second is not None
    assert Spool.read(second) == points(2, "b")
    reopened.remove(second)
    assert reopened.oldest() is None
    assert reopened.bytes == 0
    reopened.append(points(1, "c"))
    assert Spool(tmp_path, max_bytes=10**6).oldest() is not None


def test_numbering_continues_after_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**6)
    spool.append(points(1, "a"))
    later = Spool(tmp_path, max_bytes=10**6).append(points(1, "b"))
    assert later.number == 1


def test_a_half_written_segment_is_discarded(tmp_path: Path) -> None:
    (tmp_path / "000000000000.tmp").write_bytes(b'[["t", "m v=1')
    spool = Spool(tmp_path, max_bytes=10**6)
    assert len(spool) == 0
    assert not (tmp_path / "000000000000.tmp").exists()


def test_the_spool_refuses_past_its_limit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=200)
    spool.append(points(1, "a"))
    with pytest.raises(SpoolFullError):
        spool.append(points(10, "b"))
    assert len(spool) == 1
