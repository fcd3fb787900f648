"""Keeping rejected messages: appended to a JSONL file (fsynced before the message is
acknowledged) and published to `luxtel/deadletter` for whoever watches the stream.

Bounded in bytes (`DeadLetterBounds`): records go to `deadletter.jsonl` until it would pass
`segment_bytes`; it is then renamed `deadletter.jsonl.000001` (`.000002`, … — a higher number is
newer) and a new `deadletter.jsonl` begun. Before each write the oldest segments are deleted
while the whole would pass `max_bytes`, and what they held is counted on /metrics
(`luxtel_deadletter_discarded_records_total`, `…_bytes_total`) and logged once per segment. So a
flood from one device can fill neither the disk nor memory: each record keeps at most
`payload_kept_bytes` of its payload (`models.deadletter`).

A full disk is back-pressure (`ingest.disk_full`): a write that fails for lack of space is cut
back to where it began (no torn line) and retried with backoff; the batch is not acknowledged
meanwhile.
"""

import asyncio
import contextlib
import os
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from common.backoff import backoff_delay
from ingest.disk_full import RETRY_MAX_S, RETRY_MIN_S, DiskFull, is_disk_full
from ingest.metrics import IngestMetrics
from models import DeadLetter
from models.deadletter import PAYLOAD_KEPT_BYTES

DEADLETTER_TOPIC = "luxtel/deadletter"

log = structlog.get_logger("luxtel.deadletter")


@dataclass(frozen=True, slots=True)
class DeadLetterBounds:
    """How much dead letter luxtel keeps on disk (`[deadletter]` in the settings)."""

    max_bytes: int = 256 * 1024 * 1024
    segment_bytes: int = 16 * 1024 * 1024
    payload_kept_bytes: int = PAYLOAD_KEPT_BYTES
    """For the records made downstream of the decoder (`influx_rejected`); the decoder's own
    take the same setting through `ingest.decode.Limits`."""

    def __post_init__(self) -> None:
        if not 0 < self.segment_bytes <= self.max_bytes // 2:
            raise ValueError("segment_bytes must be at most half of max_bytes")


@dataclass(slots=True)
class _Segment:
    path: Path
    size: int


class DeadLetterLog:
    """The dead letter: the files are the record; the MQTT copy is a convenience."""

    def __init__(
        self,
        path: Path,
        metrics: IngestMetrics,
        publish: Callable[[str, bytes], None] | None = None,
        bounds: DeadLetterBounds | None = None,
    ) -> None:
        self.path = path
        self.bounds = bounds or DeadLetterBounds()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._metrics = metrics
        self._publish = publish
        self._lock = asyncio.Lock()
        self._disk = DiskFull("deadletter", metrics.disk_full)
        self._rng = random.Random()
        numbered = []
        for candidate in path.parent.glob(f"{path.name}.*"):
            suffix = candidate.name.removeprefix(path.name + ".")
            if suffix.isdigit():
                numbered.append((int(suffix), _Segment(candidate, candidate.stat().st_size)))
        numbered.sort(key=lambda pair: pair[0])
        self._rotated = deque(segment for _, segment in numbered)
        self._next = numbered[-1][0] + 1 if numbered else 1
        self._current = self._drop_torn_tail(path)
        self._metrics.deadletter_bytes.set(self.total_bytes)

    @property
    def total_bytes(self) -> int:
        """Dead letter on disk: the current file and the rotated segments."""
        return self._current + sum(segment.size for segment in self._rotated)

    def give_up_when_full(self) -> None:
        """Stopping: a write held by a full disk raises `DiskFullError` instead of waiting."""
        self._disk.give_up()

    async def keep(self, records: list[DeadLetter]) -> None:
        """Append `records` durably, count them, and publish them. On a full disk this waits,
        retrying, until they are written."""
        if not records:
            return
        lines = [record.to_json() for record in records]
        async with self._lock:  # batches are written concurrently: one append at a time
            attempt = 0
            while True:
                try:
                    await asyncio.to_thread(self._append, lines)
                    break
                except OSError as error:
                    if not is_disk_full(error):
                        raise
                    self._disk.hit(error, self.path)
                    await asyncio.sleep(backoff_delay(attempt, RETRY_MIN_S, RETRY_MAX_S, self._rng))
                    attempt += 1
            self._disk.cleared()
        self._metrics.deadletter_bytes.set(self.total_bytes)
        for record, line in zip(records, lines, strict=True):
            self._metrics.rejected.labels(record.reason.value).inc()
            if self._publish is not None:
                self._publish(DEADLETTER_TOPIC, line)
        log.debug("dead_lettered", count=len(records))

    # ---- blocking: run in a thread ---------------------------------------------------------

    def _append(self, lines: list[bytes]) -> None:
        """Write `lines` into the current file, rotating whenever it would pass a segment."""
        segment_bytes = self.bounds.segment_bytes
        start = 0
        while start < len(lines):
            room = segment_bytes - self._current
            end = start
            while end < len(lines) and len(lines[end]) + 1 <= room:
                room -= len(lines[end]) + 1
                end += 1
            if end == start:
                if self._current > 0:
                    self._rotate()
                    continue
                end = start + 1  # one record larger than a segment: a segment of its own
            data = b"".join(line + b"\n" for line in lines[start:end])
            self._make_room(len(data))
            self._write(data)
            start = end

    def _write(self, data: bytes) -> None:
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            begin = os.fstat(descriptor).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
                os.fsync(descriptor)
            except OSError:
                with contextlib.suppress(OSError):  # no torn line: the retry writes it whole
                    os.ftruncate(descriptor, begin)
                raise
        finally:
            os.close(descriptor)
        if begin == 0:
            self._fsync_directory()  # a new file: its name must survive a power cut too
        self._current = begin + len(data)

    def _rotate(self) -> None:
        target = self.path.with_name(f"{self.path.name}.{self._next:06d}")
        os.rename(self.path, target)
        self._fsync_directory()
        self._next += 1
        self._rotated.append(_Segment(target, self._current))
        self._current = 0

    def _make_room(self, incoming: int) -> None:
        """Delete the oldest rotated segments while the whole would pass `max_bytes`."""
        while self._rotated and self.total_bytes + incoming > self.bounds.max_bytes:
            oldest = self._rotated[0]
            records = _count_lines(oldest.path)
            with contextlib.suppress(FileNotFoundError):
                oldest.path.unlink()
            self._rotated.popleft()
            self._metrics.deadletter_discarded_records.inc(records)
            self._metrics.deadletter_discarded_bytes.inc(oldest.size)
            log.warning(
                "deadletter_discarded",
                path=str(oldest.path),
                records=records,
                bytes=oldest.size,
                reason=f"the dead letter is capped at {self.bounds.max_bytes} bytes "
                "(deadletter.max_bytes)",
            )

    def _fsync_directory(self) -> None:
        descriptor = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    @staticmethod
    def _drop_torn_tail(path: Path) -> int:
        """The current file's size, after cutting a last line that a crash left unfinished
        (never fsynced, so never acknowledged: the broker redelivers its message)."""
        try:
            with path.open("rb+") as handle:
                size = handle.seek(0, os.SEEK_END)
                if size == 0:
                    return 0
                handle.seek(size - 1)
                if handle.read(1) == b"\n":
                    return size
                keep = max(0, size - 65536)
                handle.seek(keep)
                tail = handle.read()
                cut = tail.rfind(b"\n")
                end = keep + cut + 1 if cut >= 0 else (0 if keep == 0 else size)
                if end != size:
                    handle.truncate(end)
                    log.warning("deadletter_torn_line_dropped", path=str(path), bytes=size - end)
                return end
        except FileNotFoundError:
            return 0


def _count_lines(path: Path) -> int:
    lines = 0
    with contextlib.suppress(FileNotFoundError), path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines
