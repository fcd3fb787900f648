"""The InfluxDB sink: the last stage, and the one that makes a message safe to acknowledge.

For each batch: dead letters are fsynced, points are written to InfluxDB — or, when it cannot
take them, to the fsynced spool — and only then are the batch's messages acknowledged. A point
InfluxDB refuses (4xx) is found by splitting the batch and dead-lettered; the rest is written.
While the spool holds anything a replayer writes it back, oldest first, probing with backoff.
A full disk under the spool is back-pressure (`ingest.disk_full`): the batch is held, not
acknowledged, and retried with backoff until space returns or InfluxDB takes it.
"""

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from common.backoff import backoff_delay
from influx.client import InfluxWriter
from influx.errors import (
    InfluxDatabaseMissingError,
    InfluxRejectedError,
    InfluxUnavailableError,
)
from ingest.deadletters import DeadLetterLog
from ingest.decode import Point
from ingest.disk_full import RETRY_MAX_S, RETRY_MIN_S, DiskFull, is_disk_full
from ingest.messages import Batch
from ingest.metrics import IngestMetrics
from ingest.spool import Segment, Spool, SpoolFullError
from models import DeadLetter, Handed, Reason
from mqtt.acks import Delivery

log = structlog.get_logger("luxtel.sink")


WRITES_IN_FLIGHT = 2
"""Batches written to InfluxDB at once: while one is in InfluxDB the next is on the wire
(InfluxDB 1.6 here takes ~116k points/s from one writer, ~165k from two). Acknowledgements
stay in arrival order whatever order the writes finish in (`mqtt.acks`)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try InfluxDB before spooling, and how often to probe it while spooling."""

    attempts: int = 3
    min_delay_s: float = 0.2
    max_delay_s: float = 30.0


class Sink:
    """Writes batches; calls `acknowledge` with each batch's deliveries once it is safe."""

    def __init__(
        self,
        writer: InfluxWriter,
        spool: Spool,
        dead_letters: DeadLetterLog,
        metrics: IngestMetrics,
        acknowledge: Callable[[list[Delivery]], None],
        *,
        create_database: bool = True,
        retry: RetryPolicy | None = None,
        writes_in_flight: int = WRITES_IN_FLIGHT,
        journal: Callable[[Sequence[Handed]], Awaitable["asyncio.Future[None]"]] | None = None,
        written: Callable[[list[str], bool], None] | None = None,
        backlogged: Callable[[bool], None] | None = None,
    ) -> None:
        """`journal`: the rules' journal's admission (`rules.runtime.journal_writer`), when the
        rules are on: it waits until the journal has room for a batch's observations (at its
        bound: back-pressure), then starts appending them, in the order the batches came, and
        gives the future of their append (written and fsynced), which the batch's
        acknowledgement waits for."""
        self._journal = journal
        self._backlogged = backlogged
        """Told True when batches start waiting for a write slot (InfluxDB is what holds ingest
        back: a burst, a backlog), False once none waits (the rules' journal tells its reader
        less often meanwhile: `rules.runtime.journal_writer`)."""
        self._writer = writer
        self._written = written
        """Told the lines of every write InfluxDB accepted, and whether they were replayed from
        the spool (the rollups' dirty hours and tally): a batch's lines once it is done, in the
        order the batches came, whatever order their writes finished in (a device's readings
        stay in order); the spool's as they are replayed."""
        self._batches_sent = 0
        self._batches_told = 0
        self._done: dict[int, list[str]] = {}
        """Lines of batches done before an earlier one (at most `writes_in_flight` − 1)."""
        self._writes_in_flight = writes_in_flight
        self._spool_lock = asyncio.Lock()
        self._spool = spool
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._acknowledge = acknowledge
        self._create_database = create_database
        self._retry = retry or RetryPolicy()
        self._rng = random.Random()
        self._influx_up = True
        self._up = asyncio.Event()
        self._up.set()
        self._replayer: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._spool_disk = DiskFull("spool", metrics.disk_full)
        self._update_spool_metrics()
        metrics.influx_up.set(1)

    async def run(self, inbox: "asyncio.Queue[Batch | None]") -> None:
        """Deliver batches until the end marker; the spool is left for the next run. A fatal
        error in the replayer (bad credentials) ends this too."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            if len(self._spool):
                log.info("spool_found", segments=len(self._spool), bytes=self._spool.bytes)
                self._start_replay()
            slots = asyncio.Semaphore(self._writes_in_flight)
            in_flight: set[asyncio.Task[None]] = set()
            backlogged = False
            while True:
                if backlogged and inbox.empty():
                    backlogged = self._backlog(False)
                if (batch := await inbox.get()) is None:
                    break
                if not backlogged and slots.locked():
                    backlogged = self._backlog(True)
                await slots.acquire()
                number = self._batches_sent
                self._batches_sent += 1
                task = group.create_task(
                    self._deliver_then_free(batch, slots, number), name="sink-write"
                )
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if backlogged:
                self._backlog(False)
            if in_flight:
                await asyncio.wait(in_flight)
            if self._replayer is not None:
                self._replayer.cancel()
        self._group = None

    def _backlog(self, backlogged: bool) -> bool:
        if self._backlogged is not None:
            self._backlogged(backlogged)
        return backlogged

    async def _deliver_then_free(self, batch: Batch, slots: asyncio.Semaphore, number: int) -> None:
        written: list[str] = []
        try:
            await self.deliver(batch, written)
        finally:
            slots.release()
            self._tell_in_order(number, written)

    def _tell_in_order(self, number: int, lines: list[str]) -> None:
        self._done[number] = lines
        while self._batches_told in self._done:
            told = self._done.pop(self._batches_told)
            self._batches_told += 1
            if told and self._written is not None:
                self._written(told, False)

    async def deliver(self, batch: Batch, written: list[str] | None = None) -> None:
        """Make one batch safe, then acknowledge its messages. `written`: collects the lines
        InfluxDB accepted (else they are told to `written` at once).

        With the rules on, the batch's observations are journaled while its points are
        written: acknowledged once both are durable. The batch is admitted to the journal first
        (in the order the batches came: the appends keep it), which waits only while the
        journal is at its bound (then ingest stops writing as well as acknowledging); the write
        to InfluxDB starts as soon as it is admitted, and the append's write and fsync (3–7 ms
        a batch of 5,000 here, `python bench/journal.py`) overlap it."""
        journaled: asyncio.Future[None] | None = None
        try:
            if self._journal is not None:
                journaled = await self._journal(batch.handed or batch.observations)
            await self._dead_letters.keep(batch.dead_letters)
            if batch.points:
                await self._store(batch.points, written)
        finally:
            if journaled is not None:
                # Even when the write failed or this was cancelled: an append is never cut
                # off halfway (the journal would lose track of its end).
                await asyncio.shield(journaled)
        self._acknowledge(batch.deliveries)

    def stopping(self) -> None:
        """The source has stopped: drain what can be drained, but a batch held by a full disk
        ends the run (`DiskFullError`, unacknowledged) instead of waiting for space."""
        self._spool_disk.give_up()
        self._dead_letters.give_up_when_full()

    async def wait_replayed(self) -> None:
        """Until the spool is empty (for tests and `luxtel up`)."""
        while self._replayer is not None and not self._replayer.done():
            await asyncio.wait({self._replayer})

    # ---- storing a batch ---------------------------------------------------------------

    async def _store(self, points: list[Point], written: list[str] | None = None) -> None:
        no_space = 0
        while True:
            if not self._influx_up:
                try:
                    async with self._spool_lock:  # one writer of segment files at a time
                        await asyncio.to_thread(self._spool.append, points)
                except SpoolFullError as error:
                    log.error("spool_full", detail=str(error), action="holding the batch")
                    self._start_replay()
                    await self._up.wait()
                    continue
                except OSError as error:
                    if not is_disk_full(error):
                        raise
                    self._spool_disk.hit(error, self._spool.directory)
                    self._start_replay()
                    await self._wait_for_space(no_space)
                    no_space += 1
                    continue
                self._spool_disk.cleared()
                self._metrics.points_spooled.inc(len(points))
                self._update_spool_metrics()
                self._start_replay()
                return
            try:
                await self._write_with_retries(points, written=written)
                return
            except InfluxUnavailableError as error:
                self._mark_down(error)

    async def _wait_for_space(self, attempt: int) -> None:
        """Backoff before the next try at a full disk, cut short when InfluxDB is back (the
        batch then goes there, and the replay frees the spool's space)."""
        delay = backoff_delay(attempt, RETRY_MIN_S, RETRY_MAX_S, self._rng)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), delay)

    async def _write_with_retries(
        self, points: list[Point], replayed: bool = False, written: list[str] | None = None
    ) -> None:
        attempt = 0
        created = False
        while True:
            try:
                await self._write_or_split(points, replayed, written)
                return
            except InfluxDatabaseMissingError:
                if not self._create_database or created:
                    raise
                await self._writer.create_database()
                log.info("database_created", database=self._writer.target.database)
                created = True
            except InfluxUnavailableError:
                attempt += 1
                if attempt >= self._retry.attempts:
                    raise
                self._metrics.write_retries.inc()
                await asyncio.sleep(
                    backoff_delay(attempt - 1, self._retry.min_delay_s, 2.0, self._rng)
                )

    async def _write_or_split(
        self, points: list[Point], replayed: bool = False, written: list[str] | None = None
    ) -> None:
        """Write `points`; when InfluxDB refuses the batch, halve it until the refused points
        stand alone, dead-letter those and write the rest (rewriting a point that a partial
        write already stored is harmless: it is the same point)."""
        started = time.perf_counter()
        lines = [point.line for point in points]
        try:
            await self._writer.write(lines)
        except InfluxRejectedError as error:
            if len(points) == 1:
                await self._reject(points[0], error)
                return
            middle = len(points) // 2
            await self._write_or_split(points[:middle], replayed, written)
            await self._write_or_split(points[middle:], replayed, written)
            return
        self._metrics.write_seconds.observe(time.perf_counter() - started)
        self._metrics.points_written.inc(len(points))
        if written is not None:
            written.extend(lines)
        elif self._written is not None:
            self._written(lines, replayed)
        self._mark_up()

    async def _reject(self, point: Point, error: InfluxRejectedError) -> None:
        record = DeadLetter.of(
            received_at=datetime.now(UTC),
            topic=point.topic,
            payload=point.line,
            reason=Reason.INFLUX_REJECTED,
            detail=f"InfluxDB refused this point ({error.status}): {error.message}",
            keep_bytes=self._dead_letters.bounds.payload_kept_bytes,
        )
        await self._dead_letters.keep([record])

    # ---- InfluxDB away: spool and replay -------------------------------------------------

    def _mark_down(self, error: Exception) -> None:
        if self._influx_up:
            log.warning("influx_unavailable", error=str(error), action="spooling")
        self._influx_up = False
        self._up.clear()
        self._metrics.influx_up.set(0)

    def _mark_up(self) -> None:
        if not self._influx_up:
            log.info("influx_available", spooled_segments=len(self._spool))
        self._influx_up = True
        self._up.set()
        self._metrics.influx_up.set(1)

    def _start_replay(self) -> None:
        if self._replayer is None or self._replayer.done():
            spawn = self._group.create_task if self._group is not None else asyncio.create_task
            self._replayer = spawn(self._replay(), name="spool-replay")

    async def _replay(self) -> None:
        attempt = 0
        while (segment := self._spool.oldest()) is not None:
            try:
                points = await asyncio.to_thread(Spool.read, segment)
            except (OSError, ValueError) as error:
                self._quarantine(segment, error)
                continue
            try:
                await self._write_with_retries(points, replayed=True)
            except InfluxUnavailableError as error:
                self._mark_down(error)
                delay = backoff_delay(
                    attempt, self._retry.min_delay_s, self._retry.max_delay_s, self._rng
                )
                attempt += 1
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self._spool.remove(segment)
            self._metrics.points_replayed.inc(len(points))
            self._update_spool_metrics()
        log.info("spool_replayed")

    def _quarantine(self, segment: Segment, error: Exception) -> None:
        """A segment that cannot be read is set aside for an operator, never deleted."""
        target = segment.path.with_suffix(".corrupt")
        segment.path.rename(target)
        self._spool.remove(segment)
        log.error("spool_segment_unreadable", path=str(target), error=str(error))

    def _update_spool_metrics(self) -> None:
        self._metrics.spool_bytes.set(self._spool.bytes)
        self._metrics.spool_segments.set(len(self._spool))
