"""The journal: the durable, bounded hand-over of observations from ingest to the rules.

    journal = JournalWriter(state_dir / "journal", max_bytes, registry)   # `luxtel run`
    await journal.append(batch.observations)   # the sink, before it acknowledges the batch
    ...
    reader = JournalReader(state_dir / "journal", committed)               # the rules process
    for record in reader.read(until=durable_end): ...

An append-only log of segment files (`{offset:020d}-{seq:020d}.journal`, named by the offset
of their first byte and the sequence number of their first observation). `luxtel run`'s sink
appends one record per batch — the batch's observations, encoded as
`rules.channel.encode_observations` does — and fsyncs it before the batch's messages are
acknowledged to the broker, so an acknowledged observation is on disk. The rules process
reads the records at its own pace, up to the end the parent last reported as durable, and
commits its read `Position` in the same SQLite transaction as the alert state and the outbox
(`rules.store`): after a `kill -9` it goes on from the committed position, re-evaluating at most
what it had not committed (whose effects were not committed either), so nothing is evaluated
twice in effect and nothing acknowledged is skipped. Segments wholly before the committed
position are deleted by the rules process.

Bounded in bytes: when the records not yet committed by the rules and the next one would exceed
`max_bytes`, `append` waits (and says so once in the log) until the rules commit further — the
sink then holds its acknowledgements, the ingest queues fill and the MQTT source pauses: the
broker keeps the rest. Disk use is at most `max_bytes` plus one segment.

A record: a header `<IIdQI>` — body length, CRC-32 of the body and the rest of the header, the
append time (wall clock, Unix seconds: it survives restarts, so the rules' lag in seconds is
comparable across them), the sequence number of its first observation (observations appended
before it, since the journal began) and its observation count — then the body. A record cut
short or failing its CRC at the end of the last segment (a crash during an append, before the
fsync, so before any acknowledgement) is cut off when the writer opens the journal.
"""

import asyncio
import contextlib
import itertools
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from models import Observation
from rules.channel import decode_observations, encode_observations

log = structlog.get_logger("luxtel.rules")

SUFFIX = ".journal"
UNREADABLE_SUFFIX = ".unreadable"
HEADER = struct.Struct("<IIdQI")
"""Body length, CRC-32 (of the body and the rest of the header), appended at, first seq, count."""
MIN_SEGMENT_BYTES = 1 << 20
MAX_SEGMENT_BYTES = 64 << 20
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
"""Backoff between attempts at an append that failed (a full disk, say)."""
MAX_RECORD_BYTES = 1 << 30
"""Far above any real record (a batch of 100,000 observations is ~50 MB): a larger length is
a corrupt header."""


class JournalError(Exception):
    """A journal record that cannot be read (the segment is set aside, never deleted)."""


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the journal: `offset`, bytes since its beginning (the end of the last record
    consumed), and `seq`, observations before it."""

    offset: int = 0
    seq: int = 0

    def encode(self) -> str:
        return f"{self.offset}:{self.seq}"

    @classmethod
    def parse(cls, text: str) -> "Position":
        offset, _, seq = text.partition(":")
        return cls(int(offset), int(seq))


START = Position()


class Chunk(list[Observation]):
    """Observations of one journal record, with the position after it: what the rules process
    puts in the engine's inbox (`rules.engine` commits `position` with the state)."""

    __slots__ = ("position",)

    def __init__(self, observations: list[Observation], position: Position) -> None:
        super().__init__(observations)
        self.position = position


@dataclass(frozen=True, slots=True)
class Record:
    start: int
    end: Position
    appended_at: float
    count: int
    body: bytes

    def observations(self) -> Chunk:
        return Chunk(decode_observations(self.body), self.end)


@dataclass(frozen=True, slots=True)
class Body:
    """A record's encoded observations and their CRC-32, before the record is framed."""

    data: bytes
    crc: int
    count: int

    @classmethod
    def of(cls, observations: list[Observation]) -> "Body":
        data = encode_observations(observations)
        return cls(data, zlib.crc32(data), len(observations))

    def record(self, seq: int, appended_at: float) -> bytes:
        """The record: the header, then the body. Its CRC is the body's followed by the rest
        of the header's, so the header is framed when the record is written."""
        rest = HEADER.pack(len(self.data), 0, appended_at, seq, self.count)[8:]
        return struct.pack("<II", len(self.data), zlib.crc32(rest, self.crc)) + rest + self.data


def encode_record(observations: list[Observation], seq: int, appended_at: float) -> bytes:
    return Body.of(observations).record(seq, appended_at)


def segment_name(start: Position) -> str:
    return f"{start.offset:020d}-{start.seq:020d}{SUFFIX}"


def segment_paths(directory: Path) -> list[tuple[Position, Path]]:
    """The segments, oldest first, as (position of their first byte, path)."""
    found = []
    for path in directory.glob(f"*{SUFFIX}"):
        offset, _, seq = path.stem.partition("-")
        if offset.isdigit() and seq.isdigit():
            found.append((Position(int(offset), int(seq)), path))
    return sorted(found)


def _read_record(handle: BinaryIO, start: int) -> Record | None:
    """The record at the handle's position (`start` in the journal), None when the segment ends
    there or holds only part of one; JournalError when it is complete but corrupt."""
    header = handle.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    length, crc, appended_at, seq, count = HEADER.unpack(header)
    if length > MAX_RECORD_BYTES:
        raise JournalError(f"record at offset {start} claims {length} bytes")
    body = handle.read(length)
    if len(body) < length:
        return None
    if zlib.crc32(header[8:], zlib.crc32(body)) != crc:
        raise JournalError(f"record at offset {start} fails its CRC")
    end = start + HEADER.size + length
    return Record(start, Position(end, seq + count), appended_at, count, body)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass(frozen=True, slots=True)
class _Pending:
    end: int
    appended_at: float


class JournalMetrics:
    """The rules' lag and the journal on the parent's /metrics (the parent knows the end of
    the journal, and learns the rules' position from their process)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry
        self.lag_observations = Gauge(
            "luxtel_rules_lag_observations",
            "Observations in the journal the rules have not evaluated yet.",
            registry=r,
        )
        self.lag_bytes = Gauge(
            "luxtel_rules_lag_bytes",
            "Journal bytes the rules have not evaluated yet.",
            registry=r,
        )
        self.lag_seconds = Gauge(
            "luxtel_rules_lag_seconds",
            "Age of the oldest journal record the rules have not evaluated (its append time, "
            "wall clock); 0 when they are caught up.",
            registry=r,
        )
        self.evaluated = Counter(
            "luxtel_rules_evaluated",
            "Journaled observations the rules have evaluated (each once, across restarts).",
            registry=r,
        )
        self.appended = Counter(
            "luxtel_rules_journal_observations",
            "Observations appended to the journal for the rules.",
            registry=r,
        )
        self.held = Gauge(
            "luxtel_rules_journal_bytes",
            "Journal bytes the rules have not committed yet (bounded by rules.journal_max_bytes).",
            registry=r,
        )
        self.full = Gauge(
            "luxtel_rules_journal_full",
            "1 while the journal is at its bound and ingest waits for the rules.",
            registry=r,
        )


class JournalWriter:
    """The parent's side: appends (one writer), and the rules' position as last reported."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        registry: CollectorRegistry | None = None,
        *,
        segment_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock`: the wall clock, for records' append times and the lag in seconds."""
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(
            MIN_SEGMENT_BYTES, min(MAX_SEGMENT_BYTES, max_bytes // 8)
        )
        self.clock = clock
        self.metrics = JournalMetrics(registry)
        self._lock = asyncio.Lock()
        self._room = asyncio.Event()
        self._appended = asyncio.Event()
        self._full_logged = False
        self._pending: deque[_Pending] = deque()
        directory.mkdir(parents=True, exist_ok=True)
        self.end, first = self._open()
        self.evaluated = first
        self.committed = first
        self._handle = self._segment.open("ab", buffering=0)
        self._size = self._segment.stat().st_size
        self.metrics.lag_seconds.set_function(self._lag_seconds)
        self._update_metrics()

    def _open(self) -> tuple[Position, Position]:
        """Scan the segments: the end (a torn last record cut off), the position of the first
        record (the rules have committed at least that far), the records' append times."""
        segments = segment_paths(self.directory)
        if not segments:
            self._segment = self.directory / segment_name(START)
            self._segment.touch()
            _fsync_directory(self.directory)
            return START, START
        first: Position | None = None
        end = START
        for index, (start, path) in enumerate(segments):
            last = index == len(segments) - 1
            end = start
            with path.open("rb") as handle:
                while True:
                    try:
                        record = _read_record(handle, end.offset)
                    except JournalError as error:
                        if not last:  # the rules process sets it aside when it gets there
                            log.error("rules_journal_unreadable", path=str(path), error=str(error))
                        record = None
                    if record is None:
                        break
                    if first is None:
                        first = Position(record.start, record.end.seq - record.count)
                    self._pending.append(_Pending(record.end.offset, record.appended_at))
                    end = record.end
            if last:
                kept = end.offset - start.offset
                size = path.stat().st_size
                if size > kept:
                    log.warning(
                        "rules_journal_torn_record",
                        path=str(path),
                        bytes=size - kept,
                        action="cut off (it was never acknowledged)",
                    )
                with path.open("r+b") as handle:
                    # Cut off a torn record; fsync what a killed writer may have left unsynced
                    # (its messages were not acknowledged, but the rules may now read it).
                    handle.truncate(kept)
                    os.fsync(handle.fileno())
                self._segment = path
        return end, first or end

    def close(self) -> None:
        self._handle.close()

    @property
    def lag_bytes(self) -> int:
        """Bytes the rules have not committed."""
        return self.end.offset - self.committed.offset

    async def append(self, observations: list[Observation]) -> None:
        """Append a batch's observations durably (written and fsynced); waits while the
        journal is at its bound. Appends keep the order of their calls."""
        if not observations:
            return
        async with self._lock:
            await self._append(await asyncio.to_thread(Body.of, observations))

    async def append_encoded(self, body: Body) -> None:
        """`append` of observations encoded already."""
        async with self._lock:
            await self._append(body)

    async def _append(self, body: Body) -> None:
        size = HEADER.size + len(body.data)
        while self.lag_bytes > 0 and self.lag_bytes + size > self.max_bytes:
            self._room.clear()
            self.metrics.full.set(1)
            if not self._full_logged:
                self._full_logged = True
                log.warning(
                    "rules_journal_full",
                    bytes=self.lag_bytes,
                    limit=self.max_bytes,
                    action="ingest waits for the rules (no acknowledgements meanwhile)",
                )
            await self._room.wait()
        if self._full_logged:
            self._full_logged = False
            log.info("rules_journal_room", bytes=self.lag_bytes, action="ingest goes on")
        self.metrics.full.set(0)
        appended_at = self.clock()
        await self._write_until_done(body.record(self.end.seq, appended_at))
        start = self.end.offset
        self.end = Position(start + size, self.end.seq + body.count)
        self._pending.append(_Pending(self.end.offset, appended_at))
        self.metrics.appended.inc(body.count)
        self._update_metrics()
        self._appended.set()

    async def _write_until_done(self, record: bytes) -> None:
        """`_write`, again after a capped backoff while it fails (a full disk, say): the batch
        is not acknowledged meanwhile, so ingest waits instead of losing anything."""
        failures = 0
        while True:
            try:
                await asyncio.to_thread(self._write, record)
            except OSError as error:
                if not failures:
                    log.error(
                        "rules_journal_write_failed",
                        path=str(self._segment),
                        error=str(error),
                        action="ingest waits (no acknowledgements); retrying",
                    )
                await asyncio.sleep(min(RETRY_MAX_S, RETRY_MIN_S * 2**failures))
                failures += 1
                continue
            if failures:
                log.info("rules_journal_write_recovered", attempts=failures + 1)
            return

    def _write(self, record: bytes) -> None:
        """Blocking: in a thread. Starts a new segment when the current one is full; a write
        that fails is cut off again, so the segment holds only whole records."""
        if self._size >= self.segment_bytes:
            path = self.directory / segment_name(self.end)
            handle = path.open("ab", buffering=0)
            self._handle.close()
            self._handle, self._segment, self._size = handle, path, 0
            _fsync_directory(self.directory)
        descriptor = self._handle.fileno()
        try:
            view = memoryview(record)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, self._size)
            raise
        self._size += len(record)

    async def appended(self) -> Position:
        """Wait for the next append; the durable end then."""
        await self._appended.wait()
        self._appended.clear()
        return self.end

    def consumed(self, evaluated: Position, committed: Position) -> None:
        """What the rules process reports: the position it has evaluated up to, and the one it
        has committed (positions beyond this journal's end, from a journal since removed, are
        ignored; positions only go forward)."""
        if evaluated.offset <= self.end.offset and evaluated > self.evaluated:
            self.metrics.evaluated.inc(evaluated.seq - self.evaluated.seq)
            self.evaluated = evaluated
            while self._pending and self._pending[0].end <= evaluated.offset:
                self._pending.popleft()
        if committed.offset <= self.end.offset and committed > self.committed:
            self.committed = committed
            self._room.set()
        self._update_metrics()

    def _update_metrics(self) -> None:
        self.metrics.lag_observations.set(self.end.seq - self.evaluated.seq)
        self.metrics.lag_bytes.set(self.end.offset - self.evaluated.offset)
        self.metrics.held.set(self.lag_bytes)

    def _lag_seconds(self) -> float:
        """At a scrape, in the /metrics server's thread (the event loop may empty the deque
        meanwhile)."""
        try:
            oldest = self._pending[0]
        except IndexError:
            return 0.0
        return max(0.0, self.clock() - oldest.appended_at)


class JournalReader:
    """The rules process's side: records from a position on, and the removal of segments the
    rules have committed past. Reads run in the rules process's event loop (the records are in
    the page cache, just written)."""

    def __init__(self, directory: Path, position: Position) -> None:
        self.directory = directory
        self.position = position
        self._checked = False

    def read(self, until: int, max_bytes: int = 8 << 20) -> list[Record]:
        """Complete records from `position` up to `until` (the end the writer has fsynced),
        about `max_bytes` of them at most; advances `position`. A record that cannot be read
        sets its segment aside (renamed `.corrupt`, logged) and reading goes on at the next."""
        records: list[Record] = []
        taken = 0
        while self.has_more(until) and taken < max_bytes:
            segments = segment_paths(self.directory)
            index = self._segment_of(segments)
            if index is None:
                break
            start, path = segments[index]
            following = segments[index + 1][0] if index + 1 < len(segments) else None
            try:
                got = self._read_segment(path, start, until, max_bytes - taken)
            except (JournalError, OSError) as error:
                self._set_aside(path, following, error)
                continue
            if not got:
                if following is not None and following.offset <= until:
                    self.position = following  # the rest of this one is not a record
                    continue
                break
            records += got
            taken += sum(r.end.offset - r.start for r in got)
        return records

    def _read_segment(self, path: Path, start: Position, until: int, budget: int) -> list[Record]:
        records: list[Record] = []
        with path.open("rb") as handle:
            handle.seek(self.position.offset - start.offset)
            taken = 0
            while self.position.offset < until and taken < budget:
                record = _read_record(handle, self.position.offset)
                if record is None or record.end.offset > until:
                    break
                records.append(record)
                taken += record.end.offset - record.start
                self.position = record.end
        return records

    def has_more(self, until: int) -> bool:
        """Whether records lie between `position` and `until`, the durable end (the first call
        also checks the position against the journal: see `_check`)."""
        if not self._checked:
            self._check(segment_paths(self.directory), until)
        return self.position.offset < until

    def _check(self, segments: list[tuple[Position, Path]], until: int) -> None:
        """A position outside the journal (it was removed while the rules' state was kept):
        start again at its beginning."""
        self._checked = True
        if not segments:
            return
        first = segments[0][0]
        if first.offset <= self.position.offset <= until:
            return
        log.warning(
            "rules_journal_position_reset",
            committed=self.position.encode(),
            journal_start=first.encode(),
            journal_end=until,
            action="reading from the start of the journal",
        )
        self.position = first

    def _segment_of(self, segments: list[tuple[Position, Path]]) -> int | None:
        found = None
        for index, (start, _) in enumerate(segments):
            if start.offset <= self.position.offset:
                found = index
        return found

    def _set_aside(self, path: Path, following: Position | None, error: Exception) -> None:
        target = path.with_suffix(".corrupt")
        with contextlib.suppress(OSError):
            path.rename(target)
        log.error(
            "rules_journal_unreadable",
            path=str(target),
            error=str(error),
            action="set aside; reading goes on at the next segment",
        )
        if following is None:
            raise JournalError(f"{path}: {error} (the last segment)") from error
        self.position = following

    def decode(self, record: Record) -> Chunk:
        """The record's observations; a record whose CRC holds but whose body this version
        cannot decode (written by another version, say) is set aside in a file of its own
        (`{offset}.unreadable`, logged) and stands for no observations, so it is not tried
        again forever."""
        try:
            return record.observations()
        except Exception as error:  # whatever the body holds
            path = self.directory / f"{record.start:020d}{UNREADABLE_SUFFIX}"
            with contextlib.suppress(OSError):
                path.write_bytes(record.body)
            log.error(
                "rules_journal_record_unreadable",
                path=str(path),
                observations=record.count,
                error=f"{type(error).__name__}: {error}",
                action="set aside; the rules go on after it",
            )
            return Chunk([], record.end)

    def forget_before(self, committed: Position) -> int:
        """Delete the segments that end at or before `committed` (never the last one);
        returns how many."""
        segments = segment_paths(self.directory)
        removed = 0
        for (_, path), (following, _) in itertools.pairwise(segments):
            if following.offset > committed.offset:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed += 1
        return removed
