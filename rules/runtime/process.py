"""The rules engine in a process of its own beside `luxtel run`, so that evaluating never takes
the ingest loop's CPU: the parent only appends each batch's observations to the journal
(`rules.runtime.journal`, in the sink, before the batch is acknowledged), and the child reads the
journal
at its own pace, at a lower CPU priority.

    journal = JournalWriter(state_dir / "journal", max_bytes, registry)   # the sink appends
    rules = RulesProcess(rules_config(settings), influx_target(settings), source.publish,
                         registry, journal)
    task = group.create_task(rules.run())
    ...
    rules.close()      # after the sink has drained: the child delivers what it owes and exits
    await task         # (killed after STOP_TIMEOUT_S); what it had not read stays journaled

The child (`rules.runtime.worker`) is started with multiprocessing's `spawn` (the parent has threads
and an event loop: no fork) and speaks over a socket pair (`rules.runtime.channel`). Nothing is
dropped:
a child that is behind, stopped or restarting makes the rules lag (`luxtel_rules_lag_*`), and a
journal at its bound makes ingest wait. The parent tells the child the journal's durable end
after each append (one small frame, the latest end, written when the socket takes it), and the
child sends back the positions it has evaluated and committed, alert transitions (published
here, on the one MQTT connection), its log events (logged here, with this process's
configuration) and its metrics (served by this process's /metrics, as last received).

A child that dies is logged with its exit code and started again after a capped, jittered
backoff; its state and its journal position are in SQLite, committed together, so a restart
neither notifies again nor skips an observation. A child whose parent dies sees its channel
end (and its parent pid change) and exits by itself.
"""

import asyncio
import contextlib
import logging
import multiprocessing
import os
import random
import socket
from collections.abc import Callable, Iterable
from multiprocessing.context import SpawnProcess
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import Metric

from common.backoff import backoff_delay
from influx.client import InfluxTarget
from rules.evaluation.inventory import load_inventory
from rules.language.loader import load_rules
from rules.notify.config import load_notify
from rules.runtime.channel import (
    Kind,
    decode_alert,
    decode_log,
    decode_metrics,
    decode_positions,
    encode_held,
    encode_position,
    frame,
    read_frame,
)
from rules.runtime.config import RulesConfig
from rules.runtime.engine import FINAL_DELIVERY_S
from rules.runtime.journal import Position
from rules.runtime.journal_writer import JournalWriter, Told
from rules.runtime.worker import WorkerConfig, worker_main

log = structlog.get_logger("luxtel.rules")

_SPAWN = multiprocessing.get_context("spawn")

STOP_TIMEOUT_S = FINAL_DELIVERY_S + 10.0
"""From the end of the channel to the child's exit: its final delivery, then killed."""
RESTART_MIN_S = 1.0
RESTART_MAX_S = 60.0
HEALTHY_S = 60.0
"""A child that ran this long before dying is restarted after the shortest wait again."""
DRAIN_S = 5.0
"""After the child's exit, for the frames it wrote before (its last logs and metrics)."""


class ProcessMetrics:
    """The parent's view of its rules process (the engine's own metrics come from the child)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "luxtel_rules_process_up", "1 while the rules process runs.", registry=registry
        )
        self.restarts = Counter(
            "luxtel_rules_process_restarts",
            "Times the rules process was started again after it died.",
            registry=registry,
        )


class ChildMetrics:
    """A collector for the parent's registry: the child's metric families as last received
    (a child being restarted keeps its predecessor's until its own arrive)."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return self.families


def check_files(config: RulesConfig) -> None:
    """Load the rules, notification and inventory files as the child will, so that a file
    that does not load stops `luxtel run` at start-up (RuleFileError, file:line)."""
    load_rules(config.rules_path)
    if config.notify_path is not None:
        load_notify(config.notify_path)
    if config.inventory_path is not None:
        load_inventory(config.inventory_path)


class _Child:
    """One rules process and the parent's end of its channel."""

    def __init__(
        self,
        process: SpawnProcess,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_frame: Callable[[Kind, bytes], None],
    ) -> None:
        assert process.pid is not None, "started"
        self.process = process
        self.pid: int = process.pid
        self.writer = writer
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int | None] = loop.create_future()
        loop.add_reader(process.sentinel, self._on_exit)
        self._reading = asyncio.create_task(self._read(reader, on_frame), name="rules-channel")

    @classmethod
    async def start(cls, config: WorkerConfig, on_frame: Callable[[Kind, bytes], None]) -> "_Child":
        ours, theirs = socket.socketpair()
        process = _SPAWN.Process(
            target=worker_main, args=(config, theirs), name="luxtel-rules", daemon=True
        )
        try:
            process.start()  # ~1 ms (the first ~10: the resource tracker); imports are the child's
            reader, writer = await asyncio.open_connection(sock=ours)
        except BaseException:
            ours.close()  # a child already started sees the end of its channel and exits
            raise
        finally:
            theirs.close()
        return cls(process, reader, writer, on_frame)

    def _on_exit(self) -> None:
        """The sentinel is readable: the child has exited (reaped at once)."""
        asyncio.get_running_loop().remove_reader(self.process.sentinel)
        self.process.join()
        code = self.process.exitcode
        self.process.close()
        if not self.exited.done():
            self.exited.set_result(code)

    async def _read(
        self, reader: asyncio.StreamReader, on_frame: Callable[[Kind, bytes], None]
    ) -> None:
        try:
            while (received := await read_frame(reader)) is not None:
                on_frame(*received)
        except Exception:
            # A frame that does not decode: the channel is not to be trusted any more.
            log.exception("rules_channel_failed", pid=self.pid, action="restarting the process")
            if not self.exited.done():
                self.process.kill()

    async def tell_end(self, told: Told) -> None:
        """The journal's durable end (or, while records past the end told before are held back,
        that: `Told.held_at`), once the socket has room (a stopped child's socket holds at most
        one such frame waiting: the next one carries a later end)."""
        if self.exited.done() or self.writer.is_closing():
            return
        end = told.end
        if told.held_at is None:
            self.writer.write(frame(Kind.APPENDED, encode_position(end.offset, end.seq)))
        else:
            self.writer.write(frame(Kind.HELD, encode_held(end.offset, end.seq, told.held_at)))
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def finish(self, timeout_s: float) -> None:
        """End the channel (after what it holds), wait for the exit, kill after `timeout_s`."""
        if not self.writer.is_closing():
            self.writer.write_eof()
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), timeout_s)
        except TimeoutError:
            log.warning("rules_process_killed", pid=self.pid, waited_s=timeout_s)
            if not self.exited.done():
                self.process.kill()
            await self.exited
        await self.closed()

    async def closed(self) -> None:
        """After the exit: read what the child wrote before it, and close."""
        await asyncio.wait({self._reading}, timeout=DRAIN_S)
        self.close()

    def close(self) -> None:
        """Close the parent's end; a child still running sees the end of its channel and
        finishes by itself."""
        self._reading.cancel()
        self.writer.close()
        if not self.exited.done():
            asyncio.get_running_loop().remove_reader(self.process.sentinel)


class RulesProcess:
    """The rules engine beside the pipeline, in a child process that is kept running."""

    def __init__(
        self,
        config: RulesConfig,
        influx: InfluxTarget,
        publish: Callable[[str, bytes], None],
        registry: CollectorRegistry,
        journal: JournalWriter,
    ) -> None:
        """`publish`: the MQTT source's, for alert transitions; `registry`: the pipeline's,
        where the process's metrics and the child's appear; `journal`: what the sink appends
        to, which the child reads."""
        check_files(config)
        self.config = WorkerConfig(config, influx, os.getpid(), journal.directory)
        self.publish = publish
        self.journal = journal
        self.metrics = ProcessMetrics(registry)
        self.child_metrics = ChildMetrics()
        registry.register(self.child_metrics)
        self._closing = asyncio.Event()
        self._child: _Child | None = None
        self._rng = random.Random()

    @property
    def pid(self) -> int | None:
        """The running child's pid (None between a death and the restart)."""
        child = self._child
        return None if child is None or child.exited.done() else child.pid

    def close(self) -> None:
        """Finish `run()`: the child delivers what it owes and exits."""
        self._closing.set()

    async def run(self) -> None:
        """Keep a child reading the journal until `close()`, restarting it whenever it dies."""
        teller = asyncio.create_task(self._tell_ends(), name="rules-journal-end")
        try:
            child = await self._supervise()
            teller.cancel()
            await asyncio.wait({teller})
            if child is not None:
                await child.finish(STOP_TIMEOUT_S)
        finally:
            teller.cancel()
            if self._child is not None:
                self._child.close()
            self.metrics.up.set(0)

    async def _tell_ends(self) -> None:
        """The journal's end to the running child after appends (the latest one at a time)."""
        while True:
            told = await self.journal.appended()
            child = self._child
            if child is not None:
                await child.tell_end(told)

    async def _supervise(self) -> _Child | None:
        """Keep a child running until `close()`; then the running one (None if none)."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            began = loop.time()
            pid: int | None = None
            code: int | None = None
            try:
                child = await _Child.start(self.config, self._on_frame)
            except OSError as error:
                log.error("rules_process_not_started", error=str(error))
            else:
                self._child, pid = child, child.pid
                self.metrics.up.set(1)
                log.info("rules_process_started", pid=pid)
                await child.tell_end(self.journal.tell())
                if await self._closing_before(child.exited):
                    return child
                code = child.exited.result()
                self.metrics.up.set(0)
                await child.closed()
                self._child = None
            if loop.time() - began >= HEALTHY_S:
                attempt = 0
            delay = backoff_delay(attempt, RESTART_MIN_S, RESTART_MAX_S, self._rng)
            attempt += 1
            log.error("rules_process_died", pid=pid, exitcode=code, restart_in_s=round(delay, 1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)
            if self._closing.is_set():
                return None
            self.metrics.restarts.inc()

    async def _closing_before(self, exited: "asyncio.Future[int | None]") -> bool:
        """Wait for `close()` or the child's exit; True for `close()`."""
        closing = asyncio.ensure_future(self._closing.wait())
        waiting: set[asyncio.Future[Any]] = {closing, exited}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
        return self._closing.is_set()

    def _on_frame(self, kind: Kind, body: bytes) -> None:
        if kind is Kind.ALERT:
            self.publish(*decode_alert(body))
        elif kind is Kind.POSITION:
            evaluated, committed = (Position(*p) for p in decode_positions(body))
            self.journal.consumed(evaluated, committed)
        elif kind is Kind.METRICS:
            self.child_metrics.families = decode_metrics(body)
        elif kind is Kind.LOG:
            event = decode_log(body)
            level = logging.getLevelNamesMapping().get(
                str(event.pop("level", "info")).upper(), logging.INFO
            )
            log.log(level, str(event.pop("event", "")), **event)
