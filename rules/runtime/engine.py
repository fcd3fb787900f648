"""The rules engine beside the InfluxDB writer: evaluates observations, keeps its state in
SQLite, and delivers notifications and `alerts` points with retries.

    engine = RulesEngine(rules_path, inventory, state_dir, notify, influx, publish)
    await engine.run(inbox)      # until cancelled, or until `None` arrives in the inbox

Three tasks: the evaluator (observations as they come, and a timer tick on the wall clock for
the deadman, the silence after a status and the group timers; a reading rule's `for` counts in
reading time and only readings move it: `rules.evaluation.evaluator`), the deliverer (the
outbox's due items, retried with capped, jittered backoff), and the snapshot writer (every
`state_interval_s`, on a tick, each luminaire's state as `luminaire_state` points for the city
map: `rules.runtime.state_points`). The evaluator never waits on a receiver or on InfluxDB, so a
slow mail server cannot slow it. In `luxtel run` the inbox is filled from the journal
(`rules.runtime.journal`) by the rules process: each chunk is a `Chunk` carrying the journal
position after it, and the position the state reflects is committed with the state
(`evaluated`, `committed`).
"""

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import structlog
from prometheus_client import CollectorRegistry

from common.backoff import backoff_delay
from influx.client import InfluxWriter
from influx.errors import InfluxError
from models import Observation
from rules.evaluation.alerts import Transition
from rules.evaluation.evaluator import Counters, EngineState, Rulebook, evaluate, mark_sent
from rules.evaluation.inventory import EMPTY, Inventory
from rules.evaluation.rows import Rows
from rules.language.errors import NotifyError
from rules.language.loader import load_rules
from rules.notify.config import NO_RECEIVERS, NotifyConfig
from rules.notify.delivery import deliver
from rules.notify.dispatch import Group, Notification, dispatch
from rules.notify.outputs import alert_topic, influx_line, mqtt_payload
from rules.notify.receivers import Integration, integration_for, notification_entries
from rules.runtime.journal import Chunk, Position
from rules.runtime.journal_rows import RowsChunk
from rules.runtime.metrics import RulesMetrics
from rules.runtime.state_points import SnapshotEncoder, StatePolicy
from rules.runtime.store import (
    DEFAULT_BOUND,
    OutboxBound,
    OutboxEntry,
    OutboxItem,
    OutboxSize,
    Store,
)

log = structlog.get_logger("luxtel.rules")

STATE_FILE = "rules.sqlite"
RETRY_MIN_S = 5.0
RETRY_MAX_S = 900.0
FINAL_DELIVERY_S = 5.0
GATHER_S = 0.25
"""How long observations are gathered into one evaluation cycle (alerts come this much later;
their `for` durations are minutes)."""
GATHER_MAX = 50_000
"""Most observations gathered into one cycle (ten journal records of the sink's 5000, the
rules process's inbox's worth; and at most `gather_max_bytes` of journal records). A chunk is
evaluated column-wise (`rules.evaluation.columns`), whose costs per luminaire (its view, its sun
table) are shared by its readings in the chunk: on `bench/run`'s load (1000 luminaires),
`evaluate` cost 5.5–6.1 µs an observation in cycles of 5000 and 4.4 in cycles of 20,000
(`bench.rules_loop`'s readings, evaluated directly, best of 3, busy machine); with the journal
read as columns, the rules process's loop 2.89 and 3.13 µs in cycles of 20,000, 2.65 and 2.72
in cycles of 50,000 (`--mode batch --readings 300000`, alternated, busy machine)."""
COMMIT_S = 1.0
"""Least time (monotonic clock) between two commits of the journal position alone: what a
`kill -9` makes the rules process evaluate again (in effect once: its effects were not
committed either), at one fsync a second."""
STATE_CHUNK_LINES = 5000
"""`luminaire_state` points per write: a city of 10^5–10^6 luminaires in requests InfluxDB takes
in its stride."""
STATE_YIELD_LINES = 500
"""Lines encoded between two turns of the event loop, so observations are evaluated meanwhile
(a few ms; the first snapshot, which encodes every series key, some 15 ms)."""


Inbox = (
    asyncio.Queue[list[Observation]]
    | asyncio.Queue[list[Observation] | None]
    | asyncio.Queue[Sequence[Observation] | None]
)
"""What the decoder fills (`None` ends the engine, as it ends every stage): lists of
observations, or, in the rules process, journal records' chunks (`Chunk`, `RowsChunk`)."""
DEFAULT_GATHER_BYTES = 16 << 20
"""`gather_max_bytes`'s default: with `GATHER_MAX`, a cycle's chunk holds ~11.5 MB of journal
records in `bench/run` (50,000 readings of ~230 bytes), and its columns ~7 MB more."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class EngineCounters:
    observations: int = 0
    transitions: int = 0
    notifications: int = 0
    delivered: int = 0
    delivery_failures: int = 0


class RulesEngine:
    """Built from the rules file, the inventory, the state dir and the notification config;
    `run(inbox)` does the rest."""

    def __init__(
        self,
        rules_path: Path,
        inventory: Inventory = EMPTY,
        state_dir: Path = Path("state"),
        notify: NotifyConfig = NO_RECEIVERS,
        influx: InfluxWriter | None = None,
        publish: Callable[[str, bytes], None] | None = None,
        clock: Callable[[], datetime] = utc_now,
        *,
        tick_s: float = 10.0,
        params: Mapping[str, Any] | None = None,
        registry: CollectorRegistry | None = None,
        state_interval_s: float = 60.0,
        outbox: OutboxBound = DEFAULT_BOUND,
        gather_max_bytes: int = DEFAULT_GATHER_BYTES,
    ) -> None:
        """`registry`: where the engine's Prometheus metrics go (the pipeline's); None keeps
        them in a registry of their own (`self.metrics.registry`). `state_interval_s`: the
        least time between two `luminaire_state` snapshots (taken on a tick); 0, or no
        `influx`, writes none. `outbox`: how much delivered history the outbox keeps
        (`rules.runtime.store`). `gather_max_bytes`: the journal bytes (`Chunk.size`,
        `RowsChunk.size`) past which a cycle gathers no more records (so at most this and one
        record, the sink's batch), held in memory meanwhile."""
        self.rules = load_rules(rules_path, params)
        self.book = Rulebook(self.rules, inventory)
        self.state_path = state_dir / STATE_FILE
        self.notify = notify
        self.influx = influx
        self.publish = publish
        self.clock = clock
        self.contact: Callable[[], datetime | None] | None = None
        """While the rules lag behind what luxtel received (the journal): the wall-clock time
        up to which luxtel had received what they have read; None when caught up. The timers
        (the deadman, a status's silence) judge at that time rather than at `clock()`, so
        their own lag is not taken for luminaires falling silent (`rules.runtime.worker` sets
        it from the journal records' append times)."""
        self.tick_s = tick_s
        self.state_interval_s = state_interval_s
        self.outbox = outbox
        self.gather_max_bytes = gather_max_bytes
        self._outbox_over = False
        self.state_policy = StatePolicy.of(self.rules)
        self._encoder = SnapshotEncoder(inventory)
        self.counters = EngineCounters()
        self.errors = Counters()
        self.metrics = RulesMetrics(registry)
        self._rng = random.Random()
        self._wake = asyncio.Event()
        self._snapshot_due = asyncio.Event()
        self._next_snapshot = 0.0
        self._store: Store | None = None
        self._state = EngineState()
        self._groups: dict[str, Group] = {}
        self._dirty: set[str] = set()
        self._saved = self._state
        self.evaluated: Position | None = None
        """The journal position after the chunks evaluated so far (None: none came)."""
        self.committed: Position | None = None
        """The journal position the state in SQLite reflects."""
        self._received: Position | None = None
        self._committed_at = 0.0

    @property
    def state(self) -> EngineState:
        return self._state

    async def run(self, inbox: "Inbox") -> None:
        """Evaluate and deliver until cancelled or until `None` is received."""
        store = Store(self.state_path, self.outbox)
        self._store = store
        loaded, self._groups = store.load()
        # Silence is counted from this start at the earliest: while luxtel was down it heard
        # nobody, and what the broker held for it has yet to arrive (`EngineState.started_at`).
        self._state = replace(loaded, started_at=self.clock())
        self._saved = loaded
        self.committed = self.evaluated = self._received = store.position()
        log.info(
            "rules_started",
            rules=len(self.rules.rules),
            devices=len(self.book.inventory),
            firing=sum(a.fired_at is not None for a in self._state.alerts.values()),
        )
        try:
            async with asyncio.TaskGroup() as group:
                deliverer = group.create_task(self._deliver_forever(store), name="rules-deliver")
                snapshots = None
                if self.influx is not None and self.state_interval_s > 0:
                    snapshots = group.create_task(
                        self._snapshots_forever(self.influx), name="rules-state"
                    )
                await self._evaluate_forever(inbox)
                deliverer.cancel()
                if snapshots is not None:
                    snapshots.cancel()
            await asyncio.wait_for(self._deliver_due(store), FINAL_DELIVERY_S)
        except TimeoutError:
            log.warning("rules_stopped_with_undelivered", action="delivered after the restart")
        finally:
            store.close()
            self._store = None

    async def _evaluate_forever(self, inbox: "Inbox") -> None:
        getter: asyncio.Task[Sequence[Observation] | None] | None = None
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        try:
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(inbox.get())
                timeout = max(0.0, next_tick - loop.time())
                # A kept getter task rather than wait_for(), which can lose the item on 3.11.
                done, _ = await asyncio.wait({getter}, timeout=timeout)
                if getter in done:
                    batch, getter = getter.result(), None
                    self._note(batch)
                    if batch is None:
                        self.cycle([])
                        return
                    observations, getter, ended = await self._gather(inbox, batch)
                    self.cycle(observations, timers=False)
                    if ended:
                        self.cycle([])
                        return
                if loop.time() >= next_tick:
                    self.cycle([])
                    next_tick = loop.time() + self.tick_s
                    if self.state_interval_s > 0 and loop.time() >= self._next_snapshot:
                        self._next_snapshot = loop.time() + self.state_interval_s
                        self._snapshot_due.set()
        finally:
            if getter is not None:
                getter.cancel()

    async def _gather(
        self, inbox: "Inbox", first: Sequence[Observation]
    ) -> tuple[Sequence[Observation], "asyncio.Task[Sequence[Observation] | None] | None", bool]:
        """`first` and whatever else arrives within `GATHER_S` (up to `GATHER_MAX` observations
        and `gather_max_bytes` of journal records), for one cycle: a cycle has a fixed cost
        (grouping, SQLite reads, metrics) of about a millisecond, which one cycle per chunk paid
        per reading at a few hundred readings a second (`bench/run --rate 500`). Returns the
        observations, the getter still waiting (if any) and whether the end marker came."""
        loop = asyncio.get_running_loop()
        parts = [first]
        count, size = len(first), _size(first)
        until = loop.time() + GATHER_S
        getter: asyncio.Task[Sequence[Observation] | None] | None = None
        ended = False
        while count < GATHER_MAX and size < self.gather_max_bytes:
            left = until - loop.time()
            if left <= 0:
                break
            getter = asyncio.ensure_future(inbox.get())
            try:
                done, _ = await asyncio.wait({getter}, timeout=left)
            except asyncio.CancelledError:
                getter.cancel()
                raise
            if getter not in done:
                break
            more, getter = getter.result(), None
            self._note(more)
            if more is None:
                ended = True
                break
            parts.append(more)
            count, size = count + len(more), size + _size(more)
        return _joined(parts), getter, ended

    def _note(self, received: Sequence[Observation] | None) -> None:
        if isinstance(received, Chunk | RowsChunk):
            self._received = received.position

    def cycle(
        self, observations: Sequence[Observation], *, timers: bool = True
    ) -> list[Transition]:
        """One evaluation: observations (and, on the timer, the deadman), grouping, and — when
        anything changed, or on the timer — one SQLite transaction."""
        store = self._store
        assert store is not None, "cycle() runs inside run()"
        now = self.clock()
        old = self._state
        began = time.perf_counter()
        heard_until = self.contact() if self.contact is not None else None
        timers_at = now if heard_until is None else min(now, heard_until)
        new, transitions = evaluate(
            self.book, old, timers_at, observations, self.errors, deadman=timers
        )
        firing = [a for a in new.alerts.values() if a.fired_at is not None]
        result = dispatch(
            self.notify.route,
            self._groups,
            firing,
            list(new.resolved.values()),
            now,
            rules=self.rules,
            inventory=self.book.inventory,
            silences=store.silences(),
            acked=store.acked(),
            inhibit_rules=self.notify.inhibit_rules,
            fired={t.alert.id for t in transitions if t.kind == "firing"},
        )
        new = mark_sent(new, result.handled, now)
        self.metrics.evaluation_seconds.observe(time.perf_counter() - began)
        outbox = self._outbox(transitions, result.notifications)
        if isinstance(observations, Rows):
            self._dirty.update(observations.device_ids())
        else:
            self._dirty.update(o.device_id for o in observations)
        groups = dict(result.groups)
        position = self._received
        self.evaluated = position
        moved = position != self.committed and time.monotonic() - self._committed_at >= COMMIT_S
        if timers or transitions or outbox or result.handled or groups != self._groups or moved:
            # Device views alone (last seen, lamp history) wait for the timer or the next
            # commit of the journal position: one fsync per tick (or `COMMIT_S`) rather than
            # one per batch of readings.
            store.save(self._saved, new, groups, self._dirty, outbox, now, position)
            self._dirty = set()
            self._saved = new
            self.committed = position
            self._committed_at = time.monotonic()
        self._state, self._groups = new, groups
        self.counters.observations += len(observations)
        self.counters.notifications += len(result.notifications)
        self.metrics.observations.inc(len(observations))
        self.metrics.alerts(self.rules, new.alerts.values())
        self.metrics.errors(self.errors.errors)
        for transition in transitions:
            if transition.kind == "pending":
                continue
            self.counters.transitions += 1
            alert = transition.alert
            log.info(
                "alert_" + transition.kind, rule=alert.rule, device_id=alert.device_id, id=alert.id
            )
            if self.publish is not None:
                self.publish(alert_topic(alert.zone, alert.device_id), mqtt_payload(transition))
        if outbox:
            self.metrics.outbox_due.set(store.unsent())
            self._wake.set()
        return transitions

    def _outbox(
        self, transitions: list[Transition], notes: list[Notification]
    ) -> list[OutboxEntry]:
        items: list[OutboxEntry] = []
        lines = [influx_line(t) for t in transitions if t.kind != "pending"]
        if lines and self.influx is not None:
            items.append(OutboxEntry("influx", "alerts", 0, "\n".join(lines).encode()))
        for note in notes:
            receiver = self.notify.receivers.get(note.receiver)
            if receiver is not None:
                items += notification_entries(note, receiver)
        return items

    async def _snapshots_forever(self, influx: InfluxWriter) -> None:
        while True:
            await self._snapshot_due.wait()
            self._snapshot_due.clear()
            await self.write_snapshot(influx)

    async def write_snapshot(self, influx: InfluxWriter) -> int:
        """Write every luminaire's state now, in chunks; returns the points written. Best
        effort: on an InfluxDB error the rest of this snapshot is dropped with a warning — the
        next one replaces it — rather than kept and retried like an alert's point."""
        lines = self._encoder.lines(self._state, self.clock(), self.state_policy)
        written = 0
        try:
            async with contextlib.aclosing(_chunks(lines)) as chunks:
                async for chunk in chunks:
                    await influx.write(chunk)
                    written += len(chunk)
                    self.metrics.state_points.inc(len(chunk))
        except InfluxError as error:
            self.metrics.state_failures.inc()
            log.warning(
                "state_snapshot_failed",
                written=written,
                devices=len(self.book.inventory),
                error=str(error),
                action=f"the next snapshot, in {self.state_interval_s:g} s, replaces it",
            )
        return written

    async def _deliver_forever(self, store: Store) -> None:
        while True:
            await self._deliver_due(store)
            self._wake.clear()
            wait = self.tick_s
            next_due = store.next_due()
            if next_due is not None:
                wait = min(wait, max(0.05, (next_due - self.clock()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _deliver_due(self, store: Store) -> None:
        due = store.due(self.clock())
        if due:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                await deliver(
                    due,
                    lambda item: self._integration(session, item),
                    lambda item, retry, error: self._record(store, item, retry, error),
                )
        self.metrics.outbox_due.set(store.unsent())
        self._outbox_size(store.prune(self.clock()))

    def _outbox_size(self, size: OutboxSize) -> None:
        """The outbox's bytes to the metrics; undelivered rows past the bound (never pruned)
        said once as they pass it, and once as they are back under it."""
        self.metrics.outbox(size)
        if size.over == self._outbox_over:
            return
        self._outbox_over = size.over
        if size.over:
            log.warning(
                "outbox_over_bound",
                undelivered_bytes=size.undelivered_bytes,
                max_bytes=size.max_bytes,
                action="nothing decided on is dropped: the outbox grows until the receivers "
                "take it (luxtel alerts list shows the failures; luxtel_rules_outbox_over_bound)",
            )
        else:
            log.info(
                "outbox_back_under_bound",
                undelivered_bytes=size.undelivered_bytes,
                max_bytes=size.max_bytes,
            )

    def _integration(self, session: aiohttp.ClientSession, item: OutboxItem) -> Integration:
        if item.kind == "influx":
            return _AlertPoints(self.influx)
        return integration_for(item.entry, self.notify.receivers, session)

    def _record(
        self, store: Store, item: OutboxItem, retry: bool, error: NotifyError | None
    ) -> None:
        """An outcome into the outbox (times: the engine's clock): sent, due again after a
        capped, jittered backoff, or refused for good — kept for `luxtel alerts list`."""
        receiver = _receiver_label(item)
        if error is None:
            store.sent(item.id, self.clock())
            self.counters.delivered += 1
            self.metrics.sent.labels(receiver, item.kind).inc()
            return
        self.counters.delivery_failures += 1
        self.metrics.failed.labels(receiver, item.kind).inc()
        if not retry:
            store.give_up(item.id, str(error), self.clock())
            log.error(
                "delivery_failed_for_good",
                kind=item.kind,
                receiver=item.receiver,
                index=item.entry.index,
                error=str(error),
                action="not retried; shown by `luxtel alerts list`; fix the receiver",
            )
            return
        delay = backoff_delay(item.attempts, RETRY_MIN_S, RETRY_MAX_S, self._rng)
        store.failed(item.id, str(error), self.clock() + timedelta(seconds=delay))
        log.warning(
            "delivery_failed",
            kind=item.kind,
            receiver=item.receiver,
            index=item.entry.index,
            attempts=item.attempts + 1,
            error=str(error),
            retry_in_s=round(delay, 1),
        )


class _AlertPoints:
    """InfluxDB as the integration of the `alerts` points: every failure is retried."""

    def __init__(self, influx: InfluxWriter | None) -> None:
        self.influx = influx

    async def notify(self, body: bytes) -> tuple[bool, NotifyError | None]:
        if self.influx is None:
            return True, NotifyError("no InfluxDB writer configured", retryable=True)
        try:
            await self.influx.write(body.decode().split("\n"))
        except InfluxError as error:
            return True, NotifyError(str(error), retryable=True)
        return False, None


def _size(chunk: Sequence[Observation]) -> int:
    """The journal bytes a chunk came from (0: not from the journal)."""
    return chunk.size if isinstance(chunk, Chunk | RowsChunk) else 0


def _joined(parts: list[Sequence[Observation]]) -> Sequence[Observation]:
    """The parts' observations, in order: columns (`Rows`) when any part is, else a list."""
    if len(parts) == 1:
        return parts[0]
    if any(isinstance(part, Rows) for part in parts):
        return Rows.concat([p if isinstance(p, Rows) else Rows.of(p) for p in parts])
    return [o for part in parts for o in part]


async def _chunks(lines: Iterator[str]) -> AsyncGenerator[list[str], None]:
    """`lines` in lists of `STATE_CHUNK_LINES`, the event loop getting a turn every
    `STATE_YIELD_LINES` while they are encoded."""
    chunk: list[str] = []
    while part := list(itertools.islice(lines, STATE_YIELD_LINES)):
        chunk += part
        if len(chunk) >= STATE_CHUNK_LINES:
            yield chunk
            chunk = []
        await asyncio.sleep(0)
    if chunk:
        yield chunk


def _receiver_label(item: OutboxItem) -> str:
    """The receiver's name (`alerts` points: `influxdb`), for the delivery metrics."""
    return "influxdb" if item.kind == "influx" else item.receiver


def notification_of(body: bytes) -> dict[str, Any]:
    """An Apprise outbox body, decoded (for `luxtel alerts list` and tests)."""
    data: dict[str, Any] = orjson.loads(body)
    return data
