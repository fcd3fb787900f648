"""The rules process itself: `luxtel run` starts `worker_main` with multiprocessing's `spawn`
(see `rules.runtime.process`), the child end of the channel (`rules.runtime.channel`) as its
argument.

It runs the engine on an asyncio loop of its own, at the lowest CPU priority (`lower_priority`):
observations from the journal (`rules.runtime.journal`), from the position committed in its state
on,
up to the durable end the parent reports on the channel, into the engine's inbox; alert
transitions, log events and the journal positions evaluated and committed back to the parent;
its metrics to the parent every `METRICS_EVERY_S`; `alerts` points to InfluxDB with an
`InfluxWriter` of its own. Segments the engine has committed past are deleted here. The end of
the channel (the parent finished, or died) ends it: the engine's final delivery, as on `None`,
then exit — what it had not read stays in the journal for the next one. It also watches its
parent's pid.
SIGINT and SIGTERM are ignored: a terminal's Ctrl-C and a service manager's stop (systemd's
default KillMode) reach the whole process group, and the parent, which drains ingest first,
ends the channel when it is time. SIGKILL ends it at once (the parent restarts it).
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import structlog
from prometheus_client import CollectorRegistry
from structlog.typing import EventDict, WrappedLogger

from common.gc_settings import tune_for_ingest
from common.logs import configure_logging
from influx.client import InfluxTarget, InfluxWriter
from models import Observation
from rules.evaluation.inventory import EMPTY as EMPTY_INVENTORY
from rules.evaluation.inventory import load_inventory, only_zones
from rules.language.errors import RuleFileError
from rules.notify.config import NO_RECEIVERS, load_notify
from rules.runtime.channel import (
    Kind,
    decode_held,
    decode_positions,
    encode_alert,
    encode_log,
    encode_metrics,
    encode_position,
    frame,
    read_frame,
)
from rules.runtime.config import RulesConfig
from rules.runtime.engine import STATE_FILE, RulesEngine
from rules.runtime.journal_reader import JournalReader
from rules.runtime.store import OutboxBound, Store

log = structlog.get_logger("luxtel.rules")

INBOX_CHUNKS = 10
"""The engine's inbox, in journal records (a batch each): small, the journal holds the backlog;
enough that a cycle of a lagging engine gathers `GATHER_MAX` (the sink's batches of 5000)."""
READ_BYTES = 8 << 20
"""Journal bytes read at once (then the inbox has to take them first)."""
NICENESS = 19
"""Where there is no SCHED_IDLE (`lower_priority`): the lowest niceness."""
METRICS_EVERY_S = 1.0
POSITION_EVERY_S = 0.2
"""How often the positions evaluated and committed go to the parent (when they moved)."""
PARENT_CHECK_S = 1.0
EXIT_FAILED = 1
EXIT_RULES_FILE = 2
LAST_WORDS_S = 5.0
"""For the parent to take the last frames (metrics, logs) before the process exits."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What the parent hands the rules process (pickled by `spawn`, with the socket)."""

    rules: RulesConfig
    influx: InfluxTarget
    parent_pid: int
    journal: Path
    """The journal's directory."""


def build_engine(
    config: RulesConfig,
    influx: InfluxWriter,
    publish: Callable[[str, bytes], None],
    registry: CollectorRegistry,
) -> RulesEngine:
    """The engine as the config describes it (a new engine setting is one line here)."""
    inventory = config.inventory_path
    return RulesEngine(
        config.rules_path,
        only_zones(load_inventory(inventory), config.zones)
        if inventory is not None
        else EMPTY_INVENTORY,
        config.state_dir,
        load_notify(config.notify_path) if config.notify_path is not None else NO_RECEIVERS,
        influx,
        publish,
        tick_s=config.tick_s,
        registry=registry,
        state_interval_s=config.state_interval_s,
        outbox=OutboxBound(config.outbox_max_bytes, timedelta(seconds=config.outbox_keep_s)),
        gather_max_bytes=config.gather_max_bytes,
    )


def worker_main(config: WorkerConfig, sock: socket.socket) -> None:
    """The rules process's entry point (the target of multiprocessing's Process)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Ctrl-C and a service manager's stop reach the whole process group: the parent
        # drains ingest first, then ends the channel, which ends this process.
        signal.signal(signum, signal.SIG_IGN)
    lower_priority()
    sys.exit(asyncio.run(_main(config, sock)))


def lower_priority() -> None:
    """Below ingest: when the cores are busy, the rules fall behind (and lag: the journal holds
    their backlog, up to its bound), not ingest. Linux's SCHED_IDLE (for this thread and the
    threads it starts): the process runs on CPU time nothing else wants, and any other task
    that wakes takes the core from it at once — at niceness 10 it had kept Mosquitto, InfluxDB
    and `luxtel run` waiting for their turn behind it, and cost ingest readings/s
    (`python bench/ingest.py --only luxtel,luxtel-rules`). Not starved for good: the scheduler
    still gives it a small share of a busy core. Elsewhere, the lowest niceness."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(NICENESS)


class _ToParent:
    """The child's side of the channel; once the parent is gone, logs go to stderr as
    `luxtel run` would write them (`common.logs`)."""

    def __init__(self, writer: asyncio.StreamWriter, config: RulesConfig) -> None:
        self.writer = writer
        self.config = config

    @property
    def open(self) -> bool:
        return not self.writer.is_closing()

    def send(self, kind: Kind, body: bytes) -> bool:
        if not self.open:
            return False
        self.writer.write(frame(kind, body))
        return True

    def publish(self, topic: str, payload: bytes) -> None:
        """The engine's `publish`: the parent publishes on its MQTT connection. Once the
        parent is gone the transition is still in InfluxDB and SQLite, not on MQTT."""
        self.send(Kind.ALERT, encode_alert(topic, payload))

    def log_processor(self, _logger: WrappedLogger, _method: str, event: EventDict) -> NoReturn:
        """structlog's last processor here: the event goes to the parent, which logs it with
        its own configuration, so `luxtel run` has one log, wherever it writes it."""
        if self.send(Kind.LOG, encode_log(event)):
            raise structlog.DropEvent
        self.log_locally()
        level = event.pop("level", "info")
        structlog.get_logger("luxtel.rules").log(_level(level), event.pop("event", ""), **event)
        raise structlog.DropEvent

    def log_locally(self) -> None:
        configure_logging(self.config.log_level, self.config.log_format)

    def forward_logs(self) -> None:
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.format_exc_info,
                self.log_processor,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(self.config.log_level),
            logger_factory=structlog.ReturnLoggerFactory(),
            cache_logger_on_first_use=False,
        )


def _level(name: str) -> int:
    return logging.getLevelNamesMapping().get(name.upper(), logging.INFO)


async def _main(config: WorkerConfig, sock: socket.socket) -> int:
    reader, writer = await asyncio.open_connection(sock=sock)
    parent = _ToParent(writer, config.rules)
    parent.forward_logs()
    registry = CollectorRegistry()
    try:
        async with InfluxWriter(config.influx) as influx:
            try:
                engine = build_engine(config.rules, influx, parent.publish, registry)
            except RuleFileError as error:
                log.error("rules_file_error", problems=[str(p) for p in error.problems])
                return EXIT_RULES_FILE
            # As in `luxtel run` (`common.gc_settings`): decoding a journal record builds a few
            # containers per observation, and the default collector doubled the cost of that.
            tune_for_ingest()
            await _run(engine, reader, parent, registry, config)
    except Exception:
        log.exception("rules_process_failed")  # to the parent, which restarts the process
        return EXIT_FAILED
    finally:
        if parent.open:
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.drain(), LAST_WORDS_S)
        writer.close()
    return 0


async def _run(
    engine: RulesEngine,
    reader: asyncio.StreamReader,
    parent: _ToParent,
    registry: CollectorRegistry,
    config: WorkerConfig,
) -> None:
    inbox: asyncio.Queue[Sequence[Observation] | None] = asyncio.Queue(INBOX_CHUNKS)
    store = Store(config.rules.state_dir / STATE_FILE)
    try:
        journal = JournalReader(config.journal, store.position())
    finally:
        store.close()
    durable = _Durable()
    async with asyncio.TaskGroup() as group:
        listener = group.create_task(_listen(reader, durable), name="rules-channel")
        contact = _Contact()
        engine.contact = contact
        feeder = group.create_task(
            _feed(journal, durable, inbox, listener, contact), name="rules-feed"
        )
        watcher = group.create_task(_watch_parent(config.parent_pid, reader), name="rules-parent")
        reporter = group.create_task(_report(parent, registry), name="rules-metrics")
        positions = group.create_task(_positions(parent, engine, journal), name="rules-positions")
        await engine.run(inbox)
        for task in (feeder, watcher, reporter, positions):
            task.cancel()
    _send_positions(parent, engine)
    parent.send(Kind.METRICS, encode_metrics(list(registry.collect())))
    log.info("rules_process_stopped", pid=os.getpid())


class _Contact:
    """How far the feeder has read, in luxtel's receive time (`RulesEngine.contact`): the
    append time (wall clock) of the newest record put in the inbox while more durable records
    wait behind it; None once it has read up to the durable end."""

    def __init__(self) -> None:
        self.heard_until: datetime | None = None

    def __call__(self) -> datetime | None:
        return self.heard_until


class _Durable:
    """The journal's end as the parent last reported it (written and fsynced up to there)."""

    def __init__(self) -> None:
        self.end: int | None = None
        """None until the parent's first report."""
        self.held_at: datetime | None = None
        """While the parent holds records past `end` back (ingest is backlogged,
        `rules.runtime.journal_writer.Told`): the append time of the newest record up to `end`,
        at which silences are judged once that is read (the held records are not silence)."""
        self.moved = asyncio.Event()

    def told(self, end: int, held_at: datetime | None) -> None:
        self.end = end if self.end is None else max(self.end, end)
        self.held_at = held_at
        self.moved.set()


async def _listen(reader: asyncio.StreamReader, durable: _Durable) -> None:
    """The parent's reports of the journal's end, until the channel ends."""
    while (received := await read_frame(reader)) is not None:
        kind, body = received
        if kind is Kind.APPENDED:
            durable.told(max(offset for offset, _ in decode_positions(body)), None)
        elif kind is Kind.HELD:
            offset, _, at = decode_held(body)
            durable.told(offset, datetime.fromtimestamp(at, UTC))


async def _feed(
    journal: JournalReader,
    durable: _Durable,
    inbox: asyncio.Queue[Sequence[Observation] | None],
    listener: "asyncio.Task[None]",
    contact: _Contact,
) -> None:
    """Journal records into the inbox, as the parent reports them durable, until the channel
    ends; then `None`, which ends the engine (what was not read is read by the next process).
    `contact` follows how far behind it reads."""
    ended = asyncio.ensure_future(asyncio.shield(listener))
    try:
        while not listener.done():
            if durable.end is None or not journal.has_more(durable.end):
                # Caught up: the wall clock judges silences, unless records are held back.
                contact.heard_until = durable.held_at
                durable.moved.clear()
                moved = asyncio.ensure_future(durable.moved.wait())
                waiting: set[asyncio.Future[Any]] = {moved, ended}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                moved.cancel()
                continue
            for record in journal.read(durable.end, READ_BYTES):
                contact.heard_until = datetime.fromtimestamp(record.appended_at, UTC)
                await inbox.put(journal.decode(record))
                if listener.done():
                    break
    finally:
        ended.cancel()
    await inbox.put(None)


async def _positions(parent: _ToParent, engine: RulesEngine, journal: JournalReader) -> None:
    """The engine's positions to the parent when they move; segments it committed past go."""
    sent = None
    while parent.open:
        await asyncio.sleep(POSITION_EVERY_S)
        now = (engine.evaluated, engine.committed)
        if now == sent:
            continue
        sent = now
        _send_positions(parent, engine)
        if engine.committed is not None:
            journal.forget_before(engine.committed)


def _send_positions(parent: _ToParent, engine: RulesEngine) -> None:
    evaluated, committed = engine.evaluated, engine.committed
    if evaluated is not None and committed is not None:
        parent.send(
            Kind.POSITION,
            encode_position(evaluated.offset, evaluated.seq)
            + encode_position(committed.offset, committed.seq),
        )


async def _watch_parent(parent_pid: int, reader: asyncio.StreamReader) -> None:
    """The end of the channel tells the parent's death; this also catches a channel that
    some other process keeps open: a new parent pid ends the channel here."""
    while True:
        await asyncio.sleep(PARENT_CHECK_S)
        if os.getppid() != parent_pid:
            break
    log.warning("rules_parent_gone", parent_pid=parent_pid, action="finishing")
    reader.feed_eof()


async def _report(parent: _ToParent, registry: CollectorRegistry) -> None:
    while parent.open:
        parent.send(Kind.METRICS, encode_metrics(list(registry.collect())))
        await asyncio.sleep(METRICS_EVERY_S)
