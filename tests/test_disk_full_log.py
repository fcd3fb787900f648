"""`DiskFull`: the gauge follows every change; the log says `disk_full` once however the state
flaps near the edge, and again only after `LOG_INTERVAL_S` (a fake monotonic clock here)."""

from __future__ import annotations

import errno

import pytest
from structlog.testing import capture_logs

from ingest.disk_full import LOG_INTERVAL_S, DiskFull, DiskFullError
from ingest.metrics import IngestMetrics

NO_SPACE = OSError(errno.ENOSPC, "No space left on device")


def test_flapping_is_said_once_per_interval_and_the_gauge_follows() -> None:
    metrics = IngestMetrics()
    now = [100.0]
    disk = DiskFull("spool", metrics.disk_full, clock=lambda: now[0])

    def gauge() -> float | None:
        return metrics.registry.get_sample_value("luxtel_disk_full", {"what": "spool"})

    assert gauge() == 0
    with capture_logs() as logs:
        for _ in range(5):
            disk.hit(NO_SPACE, "/state/spool")
            disk.hit(NO_SPACE, "/state/spool")
            assert gauge() == 1
            now[0] += 1
            disk.cleared()
            assert gauge() == 0
        now[0] += LOG_INTERVAL_S
        disk.hit(NO_SPACE, "/state/spool")
    events = [entry["event"] for entry in logs]
    assert events == ["disk_full", "disk_space_returned", "disk_full"]
    assert logs[-1]["recurred_unlogged"] == 4


def test_stopping_turns_the_next_full_write_into_an_error() -> None:
    disk = DiskFull("deadletter", IngestMetrics().disk_full)
    disk.hit(NO_SPACE, "/state/deadletter.jsonl")
    disk.give_up()
    with pytest.raises(DiskFullError, match="no space left to write the deadletter"):
        disk.hit(NO_SPACE, "/state/deadletter.jsonl")
