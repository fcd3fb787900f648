"""The rules process itself: `luxtel run` starts `worker_main` with multiprocessing's `spawn`
(see `rules.runtime.process`), the child end of the channel (`rules.runtime.channel`) as its
argument.

It runs the engine on an asyncio loop of its own, at a lower CPU priority (`NICENESS`):
observations from the channel into the engine's inbox, alert transitions and log events back
to the parent, its metrics to the parent every `METRICS_EVERY_S`, `alerts` points to InfluxDB
with an `InfluxWriter` of its own. The end of the channel (the parent finished, or died) ends
it: the engine's final delivery, as on `None`, then exit. It also watches its parent's pid.
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import structlog
from prometheus_client import CollectorRegistry
from structlog.typing import EventDict, WrappedLogger

from common.logs import configure_logging
from influx.client import InfluxTarget, InfluxWriter
from luxtel.settings import Settings
from models import Observation
from rules.evaluation.inventory import EMPTY as EMPTY_INVENTORY
from rules.evaluation.inventory import load_inventory, only_zones
from rules.language.errors import RuleFileError
from rules.notify.config import NO_RECEIVERS, load_notify
from rules.runtime.channel import (
    Kind,
    decode_observations,
    encode_alert,
    encode_log,
    encode_metrics,
    frame,
    read_frame,
)
from rules.runtime.engine import RulesEngine

log = structlog.get_logger("luxtel.rules")

INBOX_CHUNKS = 4
"""The engine's inbox: small, the channel's buffers hold the backlog (see
`rules.runtime.process`)."""
NICENESS = 10
"""Below ingest: when the cores are busy, the rules fall behind (and drop, counted), not ingest."""
METRICS_EVERY_S = 1.0
PARENT_CHECK_S = 1.0
EXIT_FAILED = 1
EXIT_RULES_FILE = 2
LAST_WORDS_S = 5.0
"""For the parent to take the last frames (metrics, logs) before the process exits."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What the parent hands the rules process (pickled by `spawn`, with the socket)."""

    settings: Settings
    influx: InfluxTarget
    parent_pid: int


def build_engine(
    settings: Settings,
    influx: InfluxWriter,
    publish: Callable[[str, bytes], None],
    registry: CollectorRegistry,
) -> RulesEngine:
    """The engine as the settings describe it (a new engine setting is one line here)."""
    rules = settings.rules
    assert rules.path is not None, "the rules process runs only with a rules file"
    inventory = settings.inventory.path
    return RulesEngine(
        rules.path,
        only_zones(load_inventory(inventory), settings.mqtt.zones)
        if inventory is not None
        else EMPTY_INVENTORY,
        settings.state_dir,
        load_notify(rules.notify) if rules.notify is not None else NO_RECEIVERS,
        influx,
        publish,
        tick_s=rules.tick_s,
        registry=registry,
        state_interval_s=rules.state_interval_s,
    )


def worker_main(config: WorkerConfig, sock: socket.socket) -> None:
    """The rules process's entry point (the target of multiprocessing's Process)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Ctrl-C and a service manager's stop reach the whole process group: the parent
        # drains ingest first, then ends the channel, which ends this process.
        signal.signal(signum, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    sys.exit(asyncio.run(_main(config, sock)))


class _ToParent:
    """The child's side of the channel; once the parent is gone, logs go to stderr as
    `luxtel run` would write them (`common.logs`)."""

    def __init__(self, writer: asyncio.StreamWriter, settings: Settings) -> None:
        self.writer = writer
        self.settings = settings

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
        configure_logging(self.settings.log.level, self.settings.log.format)

    def forward_logs(self) -> None:
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.format_exc_info,
                self.log_processor,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(self.settings.log.level),
            logger_factory=structlog.ReturnLoggerFactory(),
            cache_logger_on_first_use=False,
        )


def _level(name: str) -> int:
    return logging.getLevelNamesMapping().get(name.upper(), logging.INFO)


async def _main(config: WorkerConfig, sock: socket.socket) -> int:
    reader, writer = await asyncio.open_connection(sock=sock)
    parent = _ToParent(writer, config.settings)
    parent.forward_logs()
    registry = CollectorRegistry()
    try:
        async with InfluxWriter(config.influx) as influx:
            try:
                engine = build_engine(config.settings, influx, parent.publish, registry)
            except RuleFileError as error:
                log.error("rules_file_error", problems=[str(p) for p in error.problems])
                return EXIT_RULES_FILE
            await _run(engine, reader, parent, registry, config.parent_pid)
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
    parent_pid: int,
) -> None:
    inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue(INBOX_CHUNKS)
    async with asyncio.TaskGroup() as group:
        group.create_task(_feed(reader, inbox), name="rules-feed")
        watcher = group.create_task(_watch_parent(parent_pid, reader), name="rules-parent")
        reporter = group.create_task(_report(parent, registry), name="rules-metrics")
        await engine.run(inbox)
        watcher.cancel()
        reporter.cancel()
    parent.send(Kind.METRICS, encode_metrics(list(registry.collect())))
    log.info("rules_process_stopped", pid=os.getpid())


async def _feed(
    reader: asyncio.StreamReader, inbox: asyncio.Queue[list[Observation] | None]
) -> None:
    """Observations from the channel into the inbox until the channel ends, then `None`,
    which ends the engine."""
    while (received := await read_frame(reader)) is not None:
        kind, body = received
        if kind is Kind.OBSERVATIONS:
            await inbox.put(decode_observations(body))
    await inbox.put(None)


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
