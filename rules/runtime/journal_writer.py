"""The parent's side of the journal (`rules.runtime.journal`): `luxtel run`'s sink appends a batch's
observations and fsyncs them before it acknowledges the batch; the rules process reports the
positions it has evaluated and committed, which give the rules' lag on /metrics and make room
under the journal's bound (`append` waits while there is none: back-pressure).
"""

import asyncio
import contextlib
import itertools
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from models import Handed
from rules.runtime.channel import handed_count
from rules.runtime.journal import (
    HEADER,
    MAX_SEGMENT_BYTES,
    MIN_SEGMENT_BYTES,
    START,
    Body,
    JournalError,
    Position,
    fsync_directory,
    read_record,
    segment_name,
    segment_paths,
)

log = structlog.get_logger("luxtel.rules")

IOV_MAX = 1024
"""Pieces written by one writev (Linux's limit)."""
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
"""Backoff between attempts at an append that failed (a full disk, say)."""


@dataclass(frozen=True, slots=True)
class Told:
    """What `JournalWriter.appended` gives the rules to read up to. `held_at`: while records past
    `end` are held back (ingest is backlogged), the append time (wall clock) of the newest
    record up to `end` — everything luxtel received before it is in what the rules were told,
    so they judge silences at that time, not at the wall clock (their being held is nobody's
    silence); None when nothing is held."""

    end: Position
    held_at: float | None = None


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
        defer_max_s: float = 0.0,
    ) -> None:
        """`clock`: the wall clock, for records' append times and the lag in seconds.
        `defer_max_s`: how long `appended` may hold the end back while ingest is backlogged
        (`backlogged`); 0: never."""
        self.directory = directory
        self.defer_max_s = defer_max_s
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(
            MIN_SEGMENT_BYTES, min(MAX_SEGMENT_BYTES, max_bytes // 8)
        )
        self.clock = clock
        self.metrics = JournalMetrics(registry)
        self._admission = asyncio.Lock()
        """Held while a record waits for room (records are admitted one at a time, in order)."""
        self._lock = asyncio.Lock()
        """Held while a record is written (one at a time, in the order of admission)."""
        self._admitted_bytes = 0
        self._room = asyncio.Event()
        self._appended = asyncio.Event()
        self._backlogged = False
        self._nudged = asyncio.Event()
        """Set by an append and by the end of a backlog: `appended` looks again."""
        self._hold_until: float | None = None
        """While `appended` holds the end back: until when (the event loop's monotonic clock)."""
        started = clock()
        self._appended_at = started
        """The append time of the newest record (of `end`); the writer's start before any,
        since luxtel's own downtime is nobody's silence."""
        self._told = Told(START, started)
        """What a hold tells the rules (`appended`): the end last told them (`tell`) and the
        append time of its newest record."""
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
            fsync_directory(self.directory)
            return START, START
        first: Position | None = None
        end = START
        for index, (start, path) in enumerate(segments):
            last = index == len(segments) - 1
            end = start
            with path.open("rb") as handle:
                while True:
                    try:
                        record = read_record(handle, end.offset)
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

    async def append(self, observations: Sequence[Handed]) -> None:
        """Append a batch's observations durably (written and fsynced); waits while the
        journal is at its bound. Appends keep the order of their calls."""
        await (await self.admit(observations))

    async def append_encoded(self, body: Body) -> None:
        """`append` of observations encoded already."""
        await (await self._admit(body))

    async def admit(self, observations: Sequence[Handed]) -> "asyncio.Future[None]":
        """Wait until the journal has room for a batch's observations, then start appending
        them: the future returned is done once they are durable (written and fsynced).
        Records are admitted and written in the order of the calls. With room at once, this
        returns without giving the event loop a turn, so the sink starts the batch's write to
        InfluxDB right away (`ingest.sink`: waiting for the append before to be written and
        fsynced, then for the event loop's turns, had held it back 8–87 ms on a busy machine,
        `python bench/ingest.py`)."""
        count = handed_count(observations)
        if not count:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return await self._admit(Body.of(observations, count))

    async def _admit(self, body: Body) -> "asyncio.Future[None]":
        size = HEADER.size + body.size
        async with self._admission:
            await self._wait_for_room(size)
        # Counted against the bound until written (or never, if cancelled before it starts).
        self._admitted_bytes += size
        task = asyncio.ensure_future(self._write_admitted(body))
        task.add_done_callback(lambda _: self._written(size))
        return task

    def _written(self, size: int) -> None:
        self._admitted_bytes -= size

    async def _write_admitted(self, body: Body) -> None:
        """The admitted record, written after those admitted before it (the tasks start in the
        order of admission, and the lock serves them first come, first served)."""
        async with self._lock:
            appended_at = self.clock()
            await self._write_until_done(body.header(self.end.seq, appended_at), body.pieces)
            start = self.end.offset
            self.end = Position(start + HEADER.size + body.size, self.end.seq + body.count)
            self._appended_at = appended_at
            self._pending.append(_Pending(self.end.offset, appended_at))
            self.metrics.appended.inc(body.count)
            self._update_metrics()
            self._appended.set()
            self._nudged.set()

    async def _wait_for_room(self, size: int) -> None:
        """Until the bytes the rules have not committed, those admitted and `size` fit under
        the bound (a record alone in the journal always fits: it could never be written
        otherwise)."""
        while (held := self.lag_bytes + self._admitted_bytes) > 0 and held + size > self.max_bytes:
            self._room.clear()
            self.metrics.full.set(1)
            if not self._full_logged:
                self._full_logged = True
                log.warning(
                    "rules_journal_full",
                    bytes=held,
                    limit=self.max_bytes,
                    action="ingest waits for the rules (no acknowledgements meanwhile)",
                )
            await self._room.wait()
        if self._full_logged:
            self._full_logged = False
            log.info("rules_journal_room", bytes=self.lag_bytes, action="ingest goes on")
        self.metrics.full.set(0)

    async def _write_until_done(self, header: bytes, pieces: Sequence[bytes | bytearray]) -> None:
        """`_write`, again after a capped backoff while it fails (a full disk, say): the batch
        is not acknowledged meanwhile, so ingest waits instead of losing anything."""
        failures = 0
        while True:
            try:
                await asyncio.to_thread(self._write, header, pieces)
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

    def _write(self, header: bytes, pieces: Sequence[bytes | bytearray]) -> None:
        """Blocking: in a thread. Writes the record (its header, then its body's pieces, with
        writev: no copy made to join them) and fsyncs it. Starts a new segment when the
        current one is full; a write that fails is cut off again, so the segment holds only
        whole records."""
        if self._size >= self.segment_bytes:
            path = self.directory / segment_name(self.end)
            handle = path.open("ab", buffering=0)
            self._handle.close()
            self._handle, self._segment, self._size = handle, path, 0
            fsync_directory(self.directory)
        descriptor = self._handle.fileno()
        views = deque(memoryview(piece) for piece in (header, *pieces))
        size = sum(len(view) for view in views)
        try:
            while views:
                written = os.writev(descriptor, list(itertools.islice(views, IOV_MAX)))
                while views and written >= len(views[0]):
                    written -= len(views.popleft())
                if views:
                    views[0] = views[0][written:]
            os.fsync(descriptor)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, self._size)
            raise
        self._size += size

    def backlogged(self, backlogged: bool) -> None:
        """Whether ingest is backlogged: its batches wait for InfluxDB (the sink's write slots),
        as in a burst or while the broker replays a backlog (`ingest.sink`)."""
        self._backlogged = backlogged
        if not backlogged:
            self._nudged.set()

    def tell(self) -> Told:
        """The durable end, as told to the rules (a rules process that starts reads up to it)."""
        self._told = Told(self.end, self._appended_at)
        return Told(self.end)

    async def appended(self) -> Told:
        """Wait for the next append; the durable end then. While ingest is backlogged, the end
        is held back until it is not, for at most `defer_max_s` after the append (the event
        loop's monotonic clock), and never once the records not committed reach half the
        journal's bound: the rules lag through a burst and evaluate it right after, instead of
        taking CPU from ingest during it. When a hold begins this gives the end told before,
        with `held_at` (`Told`), and the next call the end once the hold is over. Why: on a
        busy machine the rules process, even at SCHED_IDLE (`rules.runtime.worker`), took a
        share of the cores from InfluxDB and `luxtel run` while they ingested a burst:
        luxtel-rules stored x0.74-x0.89 luxtel's readings a second, and x0.95-x1.02 with the
        rules process stopped through the burst (`python bench/ingest.py --only
        luxtel,luxtel-rules --mode batch --readings 300000`, bench/README.md, session 8). In
        steady state no batch waits: told at once."""
        loop = asyncio.get_running_loop()
        if self._hold_until is None:
            await self._appended.wait()
            self._appended.clear()
            if not (self.defer_max_s > 0 and self._holding()):
                return self.tell()
            self._hold_until = loop.time() + self.defer_max_s
            return self._told
        while self._holding() and (left := self._hold_until - loop.time()) > 0:
            self._nudged.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), left)
        self._hold_until = None
        self._appended.clear()  # the end returned covers the appends meanwhile
        return self.tell()

    def _holding(self) -> bool:
        return self._backlogged and 2 * self.lag_bytes < self.max_bytes

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
