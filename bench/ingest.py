"""End-to-end ingest benchmark: luxtel against the ingesters a user would run instead, in one run.

    python bench/ingest.py [--readings 100000] [--devices 1000] [--mode telemetry|batch]
                           [--batch-size 100] [--rate 0 | N readings/s]
                           [--only luxtel,luxtel-rules,luxtel-rollups,baseline,nodered,ceiling]
                           [--rollup-close-s 30]
                           [--json out.json] [--profile DIR]

(`bench/run` installs what this needs, Node-RED included, and runs it.) Starts its own Mosquitto
and InfluxDB (temporary directory, free loopback ports), then for each contender in turn — one
fresh database each, the same payloads each time:

- luxtel:       `python -m luxtel run -c <generated toml>` (batch 5000, flush 0.5 s, rules off);
- luxtel-rules: the same with the rules engine on (deploy/rules/streetlight.yaml and an inventory
                of the benchmark's fleet, written by `bench/publish.py --inventory`);
- luxtel-rollups: the same with the energy rollup upkeep on (an inventory of the fleet): the
                readings' hour closes `--rollup-close-s` after luxtel starts, so the upkeep rolls up
                what the run wrote, once; its CPU is counted until that is written;
- baseline:     `bench/baseline_aiomqtt.py`, the ingester a Python user would write (aiomqtt →
                pydantic → f-string line protocol → aiohttp);
- nodered:      Node-RED with node-red-contrib-influxdb (`bench/nodered/`: mqtt in → json →
                function → join → influxdb batch), the low-code one;
- ceiling:      `bench/ceiling_paho.py`, a bare paho subscriber that only counts messages.

Each contender is a process of its own and is subscribed (seen in the broker's log) before
`bench/publish.py`, a separate process, publishes every reading at QoS 1 as fast as the broker
takes it (or at `--rate`), waiting for every PUBACK and keeping each message's publish time.

Per contender: readings/s (first publish → last reading in InfluxDB), the contender's CPU time
per reading (utime+stime from /proc/PID/stat over the run, summed over its process tree: its
live descendants, and the children it has reaped), its peak RSS (VmHWM, summed over the
processes of its tree at the end), readings lost
(published − `SELECT COUNT(power_w) FROM telemetry`, which must equal the number published
exactly: every reading has its own `ts`), and publish→queryable latency percentiles. For the
latency a poller thread reads, every `--poll-interval` s, how many points InfluxDB has accepted
into the contender's database (its writePointsOk counter: a COUNT over 100 000 points would cost
InfluxDB more CPU than a contender, `--poll-query count` does it anyway); pipelines are FIFO, so
reading i became queryable at the first poll that saw more than i points. The latency's
resolution is the poll interval. CPU taken meanwhile by processes outside the benchmark is
measured too, and a run it skews is flagged.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import http.client
import json
import math
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, NoReturn, TextIO

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from rich.console import Console
from rich.table import Table

from luxtel.local_servers import (
    InfluxDBServer,
    MosquittoServer,
    ServerError,
    free_port,
    query,
    quote_ident,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
NODERED = BENCH / "nodered"
NODERED_MAIN = NODERED / "node_modules" / "node-red" / "red.js"
RULES_FILE = REPO / "deploy" / "rules" / "streetlight.yaml"
CONTENDERS = ("luxtel", "luxtel-rules", "luxtel-rollups", "baseline", "nodered", "ceiling")
LUXTELS = frozenset({"luxtel", "luxtel-rules", "luxtel-rollups"})
REFERENCE = "luxtel"
"""The contender the others are divided by in the table's ratio rows."""
PYTHON_CONTENDERS = frozenset({"luxtel", "luxtel-rules", "luxtel-rollups", "baseline", "ceiling"})
"""Those py-spy can sample (--profile)."""
ROLLUP_QUIET_S = 3.0
"""luxtel-rollups: once the readings' hours are rolled up, how long no further build may come
(a rebuild of hours whose readings came after the close) before the CPU is read."""
ROLLUP_TIMEOUT_S = 300.0
RULES_SETTLE_QUIET_S = 10.0
"""After the last reading is stored, how long luxtel-rules' rules engine may go without
evaluating anything more before the benchmark stops waiting for it to catch up."""
TOPIC_ROOT = "lighting"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SUBSCRIBE_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
PERCENTILES = (50, 90, 99)
LOG_TAIL_LINES = 40
OTHER_LOAD_WARNING = 0.10
"""Cores' worth of CPU that processes outside the benchmark may take before we warn."""
PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
"""Where to look for tools: this venv's bin first (py-spy installs there)."""

BROKER_CONF = """\
# bench/ingest.py: log subscriptions, so the benchmark sees when a contender is subscribed.
log_type subscribe
# Mosquitto's own default (the test setting of 1 s rewrites the whole store every second).
autosave_interval 1800
"""


class BenchError(Exception):
    """The benchmark itself cannot go on (a server or the publisher failed)."""


# ---- processes -----------------------------------------------------------------------------


class Child:
    """A process we started, in a session of its own, its output in `log_path`."""

    live: ClassVar[set[Child]] = set()

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        cwd: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.started = time.monotonic()
        with log_path.open("ab") as log:
            log.write(f"--- {datetime.now(UTC).isoformat()}: {shlex.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env={
                    **os.environ,
                    "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": python_path(),
                    **(env or {}),
                },
                start_new_session=True,  # a Ctrl-C in the terminal reaches us only; we stop it
            )
        Child.live.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(
        self, timeout: float = STOP_TIMEOUT_S, first: signal.Signals = signal.SIGTERM
    ) -> tuple[int, float, bool]:
        """`first` (SIGTERM), then SIGKILL after `timeout`: (exit status, seconds, killed)."""
        started = time.monotonic()
        killed = False
        if self.proc.poll() is None:
            self._signal(first)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                killed = True
                self._signal(signal.SIGKILL)
                self.proc.wait()
        Child.live.discard(self)
        return self.proc.returncode, time.monotonic() - started, killed

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return tail(self.log_path, lines)

    @classmethod
    def stop_all(cls) -> None:
        for child in list(cls.live):
            with contextlib.suppress(Exception):
                child.stop(timeout=5.0)


atexit.register(Child.stop_all)  # also when a second Ctrl-C cuts the orderly stop short


def python_path() -> str:
    """The repository first (for `servers`, `models`, `luxtel`), then whatever was set."""
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def tail(path: Path, lines: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 256 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid` so far (not of its children)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    """The live children of `pid` (of any of its threads)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    tree = [pid]
    for member in tree:  # grows as we go: breadth first
        tree.extend(children(member))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid`'s whole process tree so far: utime + stime of `pid` and of each live
    descendant, plus cutime + cstime (children they have waited for), so a child process that
    ends during the run still counts. (A rules engine in a child process of `luxtel run`, say.)"""
    total = 0.0
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:  # ended meanwhile; its parent's cutime has it once reaped
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15]) / CLK_TCK  # utime stime cutime cstime
    return total


def machine_busy_seconds() -> float:
    """CPU time all cores together have spent on anything but idling, since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib(pid: int) -> float:
    """VmHWM, the most resident memory `pid` has had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM in /proc/{pid}/status")


def tree_peak_rss_mib(pid: int) -> float:
    """VmHWM summed over `pid`'s live process tree: an upper bound of the tree's peak, as each
    process may have peaked at a different moment (and a child that already ended is missed)."""
    total = peak_rss_mib(pid)
    for member in process_tree(pid)[1:]:
        with contextlib.suppress(OSError, BenchError):
            total += peak_rss_mib(member)
    return total


# ---- InfluxDB ------------------------------------------------------------------------------


def count_readings(url: str, database: str) -> int:
    """`SELECT COUNT(power_w) FROM telemetry`: the readings stored, each counted once."""
    return count_of(url, database, "SELECT COUNT(power_w) FROM telemetry")


def points_beside_readings(url: str, database: str) -> dict[str, int]:
    """Points per measurement other than `telemetry` (each measurement's most-counted field)."""
    answer = query(url, "SHOW MEASUREMENTS", db=database)
    series = answer["results"][0].get("series", [])
    names = [row[0] for row in series[0]["values"] if row[0] != "telemetry"] if series else []
    if not names:
        return {}
    # The names come from InfluxDB itself, quoted as identifiers.
    statement = "SELECT COUNT(*) FROM " + ", ".join(quote_ident(n) for n in names)  # noqa: S608
    answer = query(url, statement, db=database)
    points: dict[str, int] = {}
    for counted in answer["results"][0].get("series", []):
        counts = [int(v) for v in counted["values"][0][1:] if v is not None]
        points[counted["name"]] = max(counts, default=0)
    return points


def count_of(url: str, database: str, statement: str) -> int:
    """The number a `SELECT COUNT(…)` answers (0 when the measurement has no points)."""
    answer = query(url, statement, db=database)
    series = answer["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def create_bench_database(url: str, name: str) -> None:
    """A database whose shards span an hour each (InfluxDB's least), so the readings, whose ts
    lie in an hour before the run (see `readings_base_ms`), have shards of their own, apart from
    the points luxtel-rules writes at the time of the run (alerts, rule state)."""
    query(url, f"CREATE DATABASE {quote_ident(name)} WITH SHARD DURATION 1h")


def readings_base_ms(now_s: float, readings: int) -> int:
    """The ts of reading 0 (reading i at + i ms): the start of an hour before the current one,
    far enough back that the last reading is still before the current hour."""
    hours_back = 1 + readings // 3_600_000
    return (int(now_s) // 3600 - hours_back) * 3_600_000


class ReadingsPoints:
    """Points InfluxDB has accepted into the shards of `database` that begin by `until_ms` (the
    last reading's ts): those shards' writePointsOk, an in-memory counter, cheap to read every
    50 ms, unlike a COUNT over 100 000 points, which costs InfluxDB ~60 ms of CPU. A point
    written twice counts twice here (COUNT settles the end). `SHOW SHARDS` is asked only when a
    shard appears."""

    def __init__(self, url: str, database: str, until_ms: int) -> None:
        self.url = url
        self.database = database
        self.until_ms = until_ms
        self.readings_shard: dict[str, bool] = {}
        """Shard id → whether it holds readings (begins by `until_ms`)."""

    def __call__(self) -> int:
        answer = query(self.url, "SHOW STATS FOR 'shard'")
        accepted: dict[str, int] = {}
        for series in answer["results"][0].get("series", []):
            tags = series.get("tags", {})
            if tags.get("database") == self.database:
                column = series["columns"].index("writePointsOk")
                points = sum(int(row[column]) for row in series["values"])
                accepted[str(tags.get("id"))] = points
        if any(shard not in self.readings_shard for shard in accepted):
            self._learn_shards()
        return sum(n for shard, n in accepted.items() if self.readings_shard.get(shard))

    def _learn_shards(self) -> None:
        """Which shards hold readings: the default policy's (``autogen``; luxtel-rollups writes
        its rollups to a policy of its own, in a shard that begins long before)."""
        answer = query(self.url, "SHOW SHARDS")
        for series in answer["results"][0].get("series", []):
            if series.get("name") != self.database:
                continue
            columns = series["columns"]
            for row in series["values"]:
                start = datetime.fromisoformat(row[columns.index("start_time")])
                self.readings_shard[str(row[columns.index("id")])] = (
                    start.timestamp() * 1000 <= self.until_ms
                    and row[columns.index("retention_policy")] == "autogen"
                )


class Poller(threading.Thread):
    """Reads a count every `interval` s; keeps (wall time the answer came, count)."""

    def __init__(self, read: Callable[[], int], interval: float) -> None:
        super().__init__(name="poller", daemon=True)
        self.read = read
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.errors = 0
        self.last_error = ""
        self.query_seconds = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            started = time.monotonic()
            try:
                value = self.read()
            except (OSError, ServerError, KeyError, ValueError) as error:
                self.errors += 1
                self.last_error = str(error)
            else:
                self.samples.append((time.time(), value))
                self.query_seconds += time.monotonic() - started
            self._halt.wait(max(0.0, self.interval - (time.monotonic() - started)))

    @property
    def latest(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def first_reaching(self, target: int) -> float | None:
        return next((t for t, value in self.samples if value >= target), None)

    def halt(self) -> None:
        self._halt.set()
        self.join(5)


# ---- MQTT ----------------------------------------------------------------------------------


def wait_subscribed(
    broker: MosquittoServer, client_id: str, offset: int, child: Child, timeout: float
) -> None:
    """Until the broker's log shows `client_id` subscribed to `{root}/#`."""
    needle = f" {client_id} 1 {TOPIC_ROOT}/#"
    deadline = time.monotonic() + timeout
    while True:
        with broker.log_path.open("rb") as log:
            log.seek(offset)
            if needle in log.read().decode("utf-8", errors="replace"):
                return
        status = child.poll()
        if status is not None:
            raise ContenderFailedError(f"exited with status {status} before subscribing")
        if time.monotonic() > deadline:
            raise ContenderFailedError(
                f"not subscribed to {TOPIC_ROOT}/# at QoS 1 (as {client_id}) after {timeout:g} s"
            )
        time.sleep(0.05)


def clear_session(broker_url: str, client_id: str) -> None:
    """Discard a persistent session, so the broker queues nothing more for a stopped luxtel."""
    host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect(host, int(port), clean_start=True)
    client.loop_start()
    try:
        connected.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()


# ---- one contender -------------------------------------------------------------------------


class ContenderFailedError(Exception):
    """A contender did not get through the run; the message says how."""


@dataclass
class Result:
    contender: str
    status: str = "ok"
    published: int = 0
    counted: int = 0
    lost: int = 0
    readings_per_s: float | None = None
    cpu_us_per_reading: float | None = None
    peak_rss_mib: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    publisher_readings_per_s: float | None = None
    broker_cpu_us_per_reading: float | None = None
    influxd_cpu_us_per_reading: float | None = None
    seconds: float | None = None
    machine_busy_cores: float | None = None
    other_load_cores: float | None = None
    stop_exit_status: int | None = None
    stop_seconds: float | None = None
    count_after_stop: int | None = None
    points_accepted: int | None = None
    """InfluxDB's writePointsOk for the database at the end: more than counted when some
    points were written more than once (a retried write)."""
    dead_lettered: dict[str, int] = field(default_factory=dict)
    """luxtel's dead letter at the end: readings per reason."""
    rules_evaluated: int | None = None
    """luxtel-rules: journaled observations its rules engine evaluated, each once
    (luxtel_rules_evaluated_total)."""
    rules_lag: int | None = None
    """luxtel-rules: observations still to evaluate when the benchmark stopped waiting
    (luxtel_rules_lag_observations): 0 when the rules caught up."""
    rollup_builds: int | None = None
    """luxtel-rollups: builds its rollup upkeep logged (`rollups_built`): 1 when the readings'
    hour closed after they were all in, more when some came late and rebuilt it."""
    rollup_readings_read: int | None = None
    """luxtel-rollups: readings its upkeep read back from InfluxDB (0 when it tallied them as
    they were decoded; the number published when it read each back once)."""
    rollup_tallied_rows: int | None = None
    """luxtel-rollups: device-hours written from the upkeep's tally, without a read-back."""
    cpu_us_at_stored: float | None = None
    """luxtel-rollups: its CPU per reading up to the moment every reading was stored (the same
    span as the other contenders' figure: ingest and the tally's share, without the wait for the
    hour to close and the rolling up)."""
    rollup_cpu_s: float | None = None
    """luxtel-rollups: CPU seconds of luxtel's process during its builds (the upkeep's own log)."""
    rollup_feed_cpu_s: float | None = None
    """luxtel-rollups: CPU seconds luxtel spent feeding its tally the lines written (the
    upkeep's own log, ``tally_cpu_s``): the upkeep's direct share of ingest."""
    rollup_seconds: float | None = None
    """luxtel-rollups: from the last reading stored to the last rollup written."""
    main_cpu_us_per_reading: float | None = None
    """The contender's own process alone, without its children (luxtel-rules: `luxtel run`
    without its rules process, which is the rest of `cpu_us_per_reading`)."""
    main_cpu_us_at_stored: float | None = None
    """luxtel-rules: `main_cpu_us_per_reading` up to the moment every reading was stored (the
    rest is `luxtel run` waiting for its rules to catch up: the channel, and this benchmark's
    polls of its /metrics, ten a second)."""
    rules_settle_seconds: float | None = None
    """luxtel-rules: how long after the last reading was stored the rules engine had evaluated
    every reading (caught up with the journal); its CPU is measured up to then."""
    alerts_written: int | None = None
    """luxtel-rules: points in the `alerts` measurement at the end."""
    other_points: dict[str, int] = field(default_factory=dict)
    """luxtel-rules: points in measurements other than `telemetry` (alerts, rule state), by
    measurement: timed at the run, in other shards than the readings'."""
    polls: int = 0
    poll_errors: int = 0
    mean_poll_ms: float | None = None
    progress: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since the first publish, readings stored) at up to 100 moments of the run."""
    log_tail: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)
    """With --repeat: every run's own figures (this result holds their medians)."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


MEDIAN_FIELDS = (
    "readings_per_s",
    "cpu_us_per_reading",
    "peak_rss_mib",
    "publisher_readings_per_s",
    "broker_cpu_us_per_reading",
    "influxd_cpu_us_per_reading",
    "seconds",
    "machine_busy_cores",
    "other_load_cores",
    "mean_poll_ms",
)


def median_result(runs: list[Result]) -> Result:
    """One result from several runs of a contender: the median of each figure over the runs
    that got through; the worst loss; every failure's status and log."""
    if len(runs) == 1:
        return runs[0]
    good = [r for r in runs if r.ok] or runs
    merged = Result(contender=runs[0].contender, published=runs[0].published)
    for name in MEDIAN_FIELDS:
        values = [v for r in good if (v := getattr(r, name)) is not None]
        setattr(merged, name, statistics.median(values) if values else None)
    keys = {key for r in good for key in r.latency_ms}
    merged.latency_ms = {
        key: statistics.median(r.latency_ms[key] for r in good if key in r.latency_ms)
        for key in sorted(keys)
    }
    worst = max(runs, key=lambda r: r.lost)
    merged.lost, merged.counted = worst.lost, worst.counted
    merged.count_after_stop = worst.count_after_stop
    merged.points_accepted = max(
        (r.points_accepted for r in runs if r.points_accepted is not None), default=None
    )
    failed = [(i, r) for i, r in enumerate(runs, 1) if not r.ok]
    if failed:
        merged.status = "; ".join(f"run {i}: {r.status}" for i, r in failed)
        merged.log_tail = "\n".join(r.log_tail for _, r in failed)
    merged.dead_lettered = worst.dead_lettered
    merged.other_points = worst.other_points
    for name in (
        "rules_evaluated",
        "rules_lag",
        "rules_settle_seconds",
        "alerts_written",
        "rollup_builds",
        "rollup_readings_read",
        "rollup_tallied_rows",
        "rollup_seconds",
        "rollup_cpu_s",
        "rollup_feed_cpu_s",
        "cpu_us_at_stored",
        "main_cpu_us_per_reading",
        "main_cpu_us_at_stored",
    ):
        values = [v for r in good if (v := getattr(r, name)) is not None]
        setattr(merged, name, statistics.median_low(values) if values else None)
    merged.runs = [
        {k: v for k, v in asdict(r).items() if k not in ("log_tail", "runs")} for r in runs
    ]
    return merged


@dataclass(frozen=True)
class Options:
    """The command line, checked."""

    readings: int
    devices: int
    mode: str
    batch_size: int
    rate: float
    only: list[str]
    json: Path | None
    poll_interval: float
    poll_query: str
    stall_timeout: float
    timeout: float
    keep: bool
    profile: Path | None
    rollup_close_s: float
    repeat: int


@dataclass
class Run:
    """What every contender shares in one invocation."""

    args: Options
    tmp: Path
    broker: MosquittoServer
    influx: InfluxDBServer
    ts_base_ms: int
    console: Console
    own_cpu_at_start: float = 0.0
    round_no: int = 1
    inventory_path: Path | None = None
    rollup_inventory_path: Path | None = None

    @property
    def per_message(self) -> int:
        return 1 if self.args.mode == "telemetry" else self.args.batch_size

    @property
    def messages(self) -> int:
        return math.ceil(self.args.readings / self.per_message)

    @property
    def last_ts_ms(self) -> int:
        return self.ts_base_ms + self.args.readings - 1

    def readings_in(self, messages: int) -> int:
        return min(self.args.readings, messages * self.per_message)

    @property
    def report_interval_s(self) -> int:
        """How often each device reports in this run (s, at least 1): reading i is at + i ms and
        the devices take turns, so a device every `devices` ms."""
        return max(1, math.ceil(self.args.devices / 1000))

    def inventory(self, report_interval_s: int | None = None) -> Path:
        """The fleet's inventory CSV (for luxtel-rules), written once by `bench/publish.py
        --inventory`, so its devices and rated powers are those of the readings. With
        `report_interval_s` (luxtel-rollups) one with the run's own cadence: the rollups' gaps,
        readings expected and settling time follow it."""
        if report_interval_s is not None:
            if self.rollup_inventory_path is None:
                path = self.tmp / "inventory-rollups.csv"
                self._write_inventory(path, report_interval_s)
                self.rollup_inventory_path = path
            return self.rollup_inventory_path
        if self.inventory_path is None:
            path = self.tmp / "inventory.csv"
            self._write_inventory(path, None)
            self.inventory_path = path
        return self.inventory_path

    def _write_inventory(self, path: Path, report_interval_s: int | None) -> None:
        argv = [sys.executable, str(BENCH / "publish.py"), f"--inventory={path}"]
        argv += [f"--devices={self.args.devices}", f"--ts-base-ms={self.ts_base_ms}"]
        if report_interval_s is not None:
            argv.append(f"--report-interval-s={report_interval_s}")
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONPATH": python_path()},
        )
        if done.returncode != 0:
            raise BenchError(f"could not write the inventory:\n{done.stderr}")


@dataclass(frozen=True)
class Launch:
    """How to start a contender: its command line, what to add to its environment, and (luxtel)
    the port of its Prometheus /metrics."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int | None = None


def contender_command(run: Run, name: str, client_id: str, database: str, work: Path) -> Launch:
    if name in LUXTELS:
        return luxtel_command(run, name, client_id, database, work)
    if name == "baseline":
        return Launch(
            [
                sys.executable,
                str(BENCH / "baseline_aiomqtt.py"),
                f"--mqtt-url={run.broker.url}",
                f"--influx-url={run.influx.url}",
                f"--database={database}",
                f"--topic-root={TOPIC_ROOT}",
                f"--client-id={client_id}",
            ]
        )
    if name == "nodered":
        return nodered_command(run, client_id, database, work)
    return Launch(
        [
            sys.executable,
            str(BENCH / "ceiling_paho.py"),
            f"--url={run.broker.url}",
            f"--root={TOPIC_ROOT}",
            f"--client-id={client_id}",
            f"--messages={run.messages}",
            f"--times={work / 'receive-times.f64'}",
        ]
    )


def luxtel_command(run: Run, name: str, client_id: str, database: str, work: Path) -> Launch:
    """`luxtel run` with a generated configuration: /metrics on a free loopback port (read once
    at the end: how far the rules engine got), and for luxtel-rules the shipped rules with an
    inventory of the benchmark's fleet."""
    port = free_port()
    config = work / "luxtel.toml"
    text = (
        f'state_dir = "{work / "state"}"\n'
        f'[mqtt]\nurl = "{run.broker.url}"\ntopic_root = "{TOPIC_ROOT}"\n'
        f'client_id = "{client_id}"\n'
        f'[influx]\nurl = "{run.influx.url}"\ndatabase = "{database}"\n'
        + (ROLLUP_INFLUX if name == "luxtel-rollups" else "")
        + f"[ingest]\nbatch_size = 5000\nflush_interval_s = 0.5\n"
        f'[metrics]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
    )
    if name == "luxtel-rules":
        text += f'[rules]\npath = "{RULES_FILE}"\n[inventory]\npath = "{run.inventory()}"\n'
        # The inventory also turns the energy rollups on: their own feature, with their own
        # benchmark (bench/energy_rollups.py). Here they would add their bookkeeping of the
        # hours written (~0.3 µs a reading in `luxtel run`) and, when their tick fell in a run
        # with the readings' hour closed, a rebuild of it: not the rules' cost, which this
        # contender measures against luxtel's.
        text += "[energy]\nrollups = false\n"
    if name == "luxtel-rollups":
        text += rollup_settings(run, work)
    config.write_text(text)
    return Launch([sys.executable, "-m", "luxtel", "run", "-c", str(config)], metrics_port=port)


ROLLUP_POLICY = "rollups"
ROLLUP_INFLUX = f'manage_retention = false\nrollup_retention_policy = "{ROLLUP_POLICY}"\n'


def readings_hours(run: Run) -> tuple[int, int]:
    """``[first, end)``: the hours (ms) the run's readings lie in."""
    first = run.ts_base_ms - run.ts_base_ms % 3_600_000
    last = run.last_ts_ms - run.last_ts_ms % 3_600_000
    return first, last + 3_600_000


def rollup_settings(run: Run, work: Path) -> str:
    """luxtel-rollups' part of the configuration: the upkeep on, with an inventory of the fleet at
    the run's own cadence, and its state saying the readings' hours are not closed yet
    (``state/rollups.json``: the watermark at the first of them). ``settle_s`` makes them close
    (wall clock: hour end + settle) ``--rollup-close-s`` from now: luxtel rolls them up then,
    as it would an hour of a city once it has ended and settled, and readings stored after that
    are late ones it rebuilds the hours for. Retention is left alone (``manage_retention =
    false``: the bench's database keeps its 1-hour shards); the benchmark creates the rollups'
    policy itself (``run_contender``)."""
    first, end = readings_hours(run)
    state = work / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "rollups.json").write_text(json.dumps({"watermark_ms": first}))
    settle_s = max(0.0, time.time() - end / 1000) + run.args.rollup_close_s
    inventory = run.inventory(run.report_interval_s)
    return (
        '[log]\nformat = "json"\n'
        f'[inventory]\npath = "{inventory}"\n'
        f"[energy]\nrollups = true\nrollup_every_s = 1\nsettle_s = {settle_s:.3f}\n"
        "recent_hours = 0\n"
    )


def rollup_events(child: Child) -> list[dict[str, Any]]:
    """The ``rollups_built`` events in luxtel's JSON log so far."""
    events = []
    with child.log_path.open("rb") as log:
        for raw in log:
            if b"rollups_built" not in raw:
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(raw)
                if event.get("event") == "rollups_built":
                    events.append(event)
    return events


def wait_rollups(run: Run, child: Child, stored_at: float, result: Result) -> None:
    """Once every reading is stored: until luxtel-rollups has rolled up the readings' hours (a
    build reaching their end) and no build has followed for ``ROLLUP_QUIET_S``."""
    _, end = readings_hours(run)
    deadline = time.monotonic() + ROLLUP_TIMEOUT_S
    seen, quiet_since = -1, time.monotonic()
    while True:
        if child.poll() is not None:
            raise ContenderFailedError("exited while rolling up")
        events = rollup_events(child)
        if len(events) != seen:
            seen, quiet_since = len(events), time.monotonic()
        closed = any(int(e.get("end_ms", 0)) >= end for e in events)
        if closed and time.monotonic() - quiet_since >= ROLLUP_QUIET_S:
            break
        if time.monotonic() > deadline:
            raise ContenderFailedError(
                f"its upkeep did not roll up the readings' hours within {ROLLUP_TIMEOUT_S:g} s"
            )
        time.sleep(0.1)
    result.rollup_builds = sum(1 for e in events if e.get("how") != "tally")
    result.rollup_readings_read = sum(int(e.get("readings", 0)) for e in events)
    result.rollup_tallied_rows = sum(
        int(e.get("rows", 0)) for e in events if e.get("how") == "tally"
    )
    result.rollup_cpu_s = sum(float(e.get("cpu_s", 0.0)) for e in events)
    result.rollup_feed_cpu_s = max(float(e.get("tally_cpu_s", 0.0)) for e in events)
    last = max(datetime.fromisoformat(str(e["timestamp"])).timestamp() for e in events)
    result.rollup_seconds = max(0.0, last - stored_at)


def nodered_command(run: Run, client_id: str, database: str, work: Path) -> Launch:
    """Node-RED, headless, its userDir in `work`, running a copy of bench/nodered/flow.json; the
    flow reads the broker, the database and its client id from the environment."""
    user_dir = work / "node-red"
    user_dir.mkdir()
    shutil.copyfile(NODERED / "flow.json", user_dir / "flows.json")
    mqtt_host, mqtt_port = run.broker.url.removeprefix("mqtt://").rsplit(":", 1)
    influx_host, influx_port = run.influx.url.removeprefix("http://").rsplit(":", 1)
    node = shutil.which("node") or "node"
    argv = [node, str(NODERED_MAIN), "--settings", str(NODERED / "settings.js")]
    argv += ["--userDir", str(user_dir), str(user_dir / "flows.json")]
    return Launch(
        argv,
        env={
            "LUXTEL_BENCH_MQTT_HOST": mqtt_host,
            "LUXTEL_BENCH_MQTT_PORT": mqtt_port,
            "LUXTEL_BENCH_CLIENT_ID": client_id,
            "LUXTEL_BENCH_TOPIC": f"{TOPIC_ROOT}/#",
            "LUXTEL_BENCH_INFLUX_HOST": influx_host,
            "LUXTEL_BENCH_INFLUX_PORT": influx_port,
            "LUXTEL_BENCH_INFLUX_DATABASE": database,
            "NODE_RED_DISABLE_TELEMETRY": "1",
        },
    )


def publisher_command(run: Run, times: Path) -> list[str]:
    args = run.args
    return [
        sys.executable,
        str(BENCH / "publish.py"),
        f"--url={run.broker.url}",
        f"--root={TOPIC_ROOT}",
        f"--readings={args.readings}",
        f"--devices={args.devices}",
        f"--mode={args.mode}",
        f"--batch-size={args.batch_size}",
        f"--rate={args.rate}",
        f"--ts-base-ms={run.ts_base_ms}",
        f"--timeout={args.timeout}",
        f"--client-id=bench-publisher-{uuid.uuid4().hex[:6]}",
        f"--times={times}",
    ]


def read_times(path: Path) -> array[float]:
    times = array("d")
    with path.open("rb") as handle:
        times.frombytes(handle.read())
    return times


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles of `values` (ms), or {} when there are none."""
    if not values:
        return {}
    ordered = sorted(values)
    return {f"p{p}": ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] for p in PERCENTILES}


def run_contender(run: Run, name: str, round_no: int) -> Result:
    """One run of one contender (`round_no` counts from 1)."""
    args = run.args
    console = run.console
    result = Result(contender=name, published=args.readings)
    work = run.tmp / f"{name}-{round_no}"
    work.mkdir()
    database = f"bench_{name.replace('-', '_')}_{round_no}"
    client_id = f"bench-{name}-{uuid.uuid4().hex[:6]}"
    uses_db = name != "ceiling"
    if uses_db:
        create_bench_database(run.influx.url, database)
    if name == "luxtel-rollups":
        query(
            run.influx.url,
            f"CREATE RETENTION POLICY {quote_ident(ROLLUP_POLICY)} ON {quote_ident(database)} "
            "DURATION INF REPLICATION 1 SHARD DURATION 52w",
        )
    broker_offset = run.broker.log_path.stat().st_size
    launch = contender_command(run, name, client_id, database, work)
    child = Child(name, launch.argv, work / f"{name}.log", work, launch.env)
    publisher: Child | None = None
    poller: Poller | None = None
    profiler: Child | None = None
    try:
        console.print(f"[bold]{name}[/]: started (pid {child.pid}), waiting for its subscription")
        wait_subscribed(run.broker, client_id, broker_offset, child, SUBSCRIBE_TIMEOUT_S)
        if name == "luxtel-rules" and launch.metrics_port is not None:
            wait_rules_ready(run, name, launch.metrics_port, child)
        if args.profile is not None and round_no == 1 and name in PYTHON_CONTENDERS:
            profiler = start_profiler(args.profile, name, child.pid, work)
        pids = {"contender": child.pid, "broker": run.broker.pid, "influxd": run.influx.pid}
        pids["main"] = child.pid
        if profiler is not None:
            pids["py-spy"] = profiler.pid
        cpu_before = cpu_by_role(pids)
        busy_before, wall_before = machine_busy_seconds(), time.monotonic()
        if uses_db:
            read: Callable[[], int] = (
                (lambda: count_readings(run.influx.url, database))
                if args.poll_query == "count"
                else ReadingsPoints(run.influx.url, database, run.last_ts_ms)
            )
            poller = Poller(read, args.poll_interval)
            poller.start()
        times_path = work / "publish-times.f64"
        run.own_cpu_at_start = own_cpu_seconds()
        publisher = Child(
            "publisher", publisher_command(run, times_path), work / "publish.log", work
        )
        console.print(f"[bold]{name}[/]: subscribed; publishing {args.readings} readings")
        done_at = wait_for_end(run, name, child, publisher, poller, work, database, result)
        if name == "luxtel-rules" and launch.metrics_port is not None:
            stored_main = cpu_seconds(child.pid) - cpu_before["main"]
            result.main_cpu_us_at_stored = stored_main * 1e6 / args.readings
            settle_rules(run, name, launch.metrics_port, done_at, result)
        if name == "luxtel-rollups":
            stored = tree_cpu_seconds(child.pid) - cpu_before["contender"]
            result.cpu_us_at_stored = stored * 1e6 / args.readings
            wait_rollups(run, child, time.time(), result)
        cpu_after = cpu_by_role(pids)
        busy_after, wall_after = machine_busy_seconds(), time.monotonic()
        result.peak_rss_mib = tree_peak_rss_mib(child.pid)
        if poller is not None:
            poller.halt()
        if profiler is not None:
            profiler.stop(timeout=30, first=signal.SIGINT)  # py-spy writes its file on SIGINT
            profiler = None
        try:
            publisher.proc.wait(60)
        except subprocess.TimeoutExpired:
            raise BenchError("the publisher did not exit within 60 s of the end") from None
        summary = json.loads(last_json(publisher))
        pub_times = read_times(times_path)
        first_publish: float = summary["first_publish"]
        result.publisher_readings_per_s = args.readings / (summary["all_acked"] - first_publish)
        n = args.readings
        per_reading = {k: (cpu_after[k] - cpu_before[k]) * 1e6 / n for k in cpu_after}
        result.cpu_us_per_reading = per_reading["contender"]
        result.main_cpu_us_per_reading = per_reading["main"]
        result.broker_cpu_us_per_reading = per_reading.get("broker")
        result.influxd_cpu_us_per_reading = per_reading.get("influxd")
        # "main" is inside "contender" (its tree).
        ours = sum(cpu_after[k] - cpu_before[k] for k in cpu_after if k != "main")
        ours += summary["cpu_s"]
        ours += own_cpu_seconds() - run.own_cpu_at_start  # this process: mostly the poller
        run.own_cpu_at_start = own_cpu_seconds()
        wall = wall_after - wall_before
        result.machine_busy_cores = (busy_after - busy_before) / wall
        result.other_load_cores = max(0.0, busy_after - busy_before - ours) / wall
        if done_at is not None:
            result.seconds = done_at - first_publish
            result.readings_per_s = result.counted / result.seconds if result.seconds > 0 else None
        written_at = (
            ceiling_times(run, work)
            if not uses_db
            else poll_times(run, poller.samples if poller else [], result.counted)
        )
        latencies = [
            (written_at[i] - pub_times[i // run.per_message]) * 1000
            for i in range(min(len(written_at), n))
        ]
        result.latency_ms = percentiles(latencies)
        result.progress = progress(
            poller.samples
            if poller is not None
            else [(t, i + 1) for i, t in enumerate(written_at)],
            first_publish,
        )
        if poller is not None:
            result.polls = len(poller.samples)
            result.poll_errors = poller.errors
            if poller.samples:
                result.mean_poll_ms = poller.query_seconds / len(poller.samples) * 1000
    except ContenderFailedError as error:
        result.status = str(error)
    finally:
        if poller is not None:
            poller.halt()
        if profiler is not None:
            profiler.stop(timeout=30, first=signal.SIGINT)
        if publisher is not None:
            publisher.stop(timeout=5.0)
        status, seconds, killed = child.stop()
        result.stop_exit_status = status
        result.stop_seconds = seconds
        if killed:
            result.status = _join(result.status, f"did not stop within {STOP_TIMEOUT_S:g} s")
        elif status != 0 and result.ok:
            result.status = f"exited with status {status} on SIGTERM"
        if name in LUXTELS:
            with contextlib.suppress(OSError):
                clear_session(run.broker.url, client_id)
    if uses_db:
        result.count_after_stop = count_readings(run.influx.url, database)
        result.points_accepted = ReadingsPoints(run.influx.url, database, run.last_ts_ms)()
    if name == "luxtel-rules":
        result.other_points = points_beside_readings(run.influx.url, database)
        result.alerts_written = result.other_points.get("alerts", 0)
    if uses_db and not run.args.keep:
        # Every shard left behind makes InfluxDB's SHOW STATS, which the latency poller reads
        # every 50 ms, dearer for the contenders after it (3.5 ms a poll on a fresh database, 16
        # after a dozen runs): InfluxDB CPU taken from whoever runs next.
        query(run.influx.url, f"DROP DATABASE {quote_ident(database)}")
    if name in LUXTELS:
        result.dead_lettered = dead_letter_summary(work / "state" / "deadletter.jsonl")
    if result.lost and result.ok:
        result.status = f"lost {result.lost} of {result.published} readings"
    if result.dead_lettered:
        result.status = _join(
            result.status,
            "dead-lettered: "
            + ", ".join(f"{n} readings as {why}" for why, n in result.dead_lettered.items()),
        )
    if not result.ok:
        result.log_tail = child.log_tail()
    return result


def cpu_by_role(pids: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds so far of each process: the contender's whole process tree, the others'
    own (the servers', py-spy's, and `main`: the contender's process without its children)."""
    return {
        role: tree_cpu_seconds(pid) if role == "contender" else cpu_seconds(pid)
        for role, pid in pids.items()
        if pid is not None
    }


def luxtel_metrics(port: int) -> dict[str, float]:
    """luxtel's /metrics, each sample (name with its labels) to its value."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                samples[key] = float(value)
    return samples


def wait_rules_ready(run: Run, name: str, port: int, child: Child) -> None:
    """Until luxtel's rules engine reports on /metrics (`luxtel_rules_observations_total`): it
    runs in a child process that takes a few seconds to start, and would drop what arrives
    before, which a long-running luxtel would not."""
    deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if "luxtel_rules_observations_total" in luxtel_metrics(port):
                return
        if child.poll() is not None:
            raise ContenderFailedError(f"exited with status {child.poll()} before its rules ran")
        time.sleep(0.1)
    run.console.print(
        f"[yellow]{name}[/]: its rules engine did not report on /metrics within "
        f"{SUBSCRIBE_TIMEOUT_S:g} s; publishing anyway"
    )


def settle_rules(run: Run, name: str, port: int, done_at: float | None, result: Result) -> None:
    """Once every reading is stored, wait until luxtel's rules engine has caught up with its
    journal — evaluated every reading — so the CPU measured includes their evaluation; give up
    after `RULES_SETTLE_QUIET_S` without progress. The positions reach /metrics from the rules
    process five times a second, so this waits a fraction of a second longer than needed."""
    expected = run.args.readings
    last: int | None = None
    last_change = time.monotonic()
    while True:
        with contextlib.suppress(OSError, http.client.HTTPException):
            samples = luxtel_metrics(port)
            evaluated = samples.get("luxtel_rules_evaluated_total")
            if evaluated is not None:
                now = int(evaluated)
                result.rules_evaluated = now
                result.rules_lag = int(samples.get("luxtel_rules_lag_observations", 0.0))
                if done_at is not None:
                    result.rules_settle_seconds = max(0.0, time.time() - done_at)
                if now >= expected and result.rules_lag == 0:
                    return
                if now != last:
                    last, last_change = now, time.monotonic()
        if time.monotonic() - last_change > RULES_SETTLE_QUIET_S:
            run.console.print(
                f"[yellow]{name}[/]: its rules engine made no progress for "
                f"{RULES_SETTLE_QUIET_S:g} s: "
                + (
                    f"{last:,} evaluated of {expected:,} readings"
                    if last is not None
                    else "no rules counters on its /metrics"
                )
            )
            return
        time.sleep(0.1)


def dead_letter_summary(path: Path) -> dict[str, int]:
    """Readings per reason in a dead-letter file (a rejected batch holds many readings)."""
    if not path.exists():
        return {}
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = {"reason": "unreadable record"}
        if not isinstance(record, dict):
            record = {"reason": "unreadable record"}
        try:
            body = json.loads(record.get("payload") or "null")
        except (ValueError, TypeError):
            body = None
        reason = str(record.get("reason", "?"))
        counts[reason] = counts.get(reason, 0) + (len(body) if isinstance(body, list) else 1)
    return counts


def start_profiler(directory: Path, name: str, pid: int, work: Path) -> Child:
    directory.mkdir(parents=True, exist_ok=True)
    py_spy = shutil.which("py-spy", path=PATH) or "py-spy"
    # --subprocesses: luxtel-rules' rules engine runs in a child process of `luxtel run`.
    argv = [py_spy, "record", "--pid", str(pid), "--rate", "100", "--nonblocking"]
    argv += ["--subprocesses"]
    argv += ["--format", "raw", "--output", str(directory / f"{name}.txt")]
    return Child("py-spy", argv, work / "py-spy.log", work)


def profile_summary(path: Path, top: int = 15) -> str:
    """From a collapsed-stack profile: the samples per process (py-spy's `process PID:"command"`
    root frames, when it sampled subprocesses too), the functions holding most samples
    (including what they call; leaving out the event loop and the other frames under nearly
    every sample), and the files where the samples themselves fall."""
    total = 0
    inclusive: dict[str, int] = {}
    by_file: dict[str, int] = {}
    by_process: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        processes = [f for f in frames if f.startswith("process ")]
        if processes:
            process = processes[-1]
            by_process[process[:80]] = by_process.get(process[:80], 0) + samples
            # The child's own start (spawn's bootstrap; its command line holds a `;` too).
            frames = [
                f
                for f in frames
                if not f.startswith("process ")
                and "multiprocessing" not in f
                and "(<string>" not in f
            ]
            if not frames:  # in the process's start alone
                continue
        for frame in {_function(f) for f in frames}:
            inclusive[frame] = inclusive.get(frame, 0) + samples
        where = frames[-1].rpartition("(")[2].rpartition(":")[0] or frames[-1]
        by_file[where] = by_file.get(where, 0) + samples
    if not total:
        return "no samples"

    def best(counts: dict[str, int]) -> str:
        ranked = sorted(counts.items(), key=lambda item: -item[1])
        shown = [(k, n) for k, n in ranked if n < 0.8 * total][:top]
        return "\n".join(f"  {n / total:6.1%}  {key}" for key, n in shown)

    per_process = "".join(
        f"  {n / total:6.1%}  {key}\n" for key, n in sorted(by_process.items(), key=lambda i: -i[1])
    )
    return (
        f"{total} samples. {'Processes:' if per_process else ''}\n{per_process}"
        f"Functions, with what they call:\n{best(inclusive)}\n"
        f"Files the samples fall in:\n{best(by_file)}"
    )


def _function(frame: str) -> str:
    """`f (file.py:12)` → `f (file.py)`."""
    head, _, place = frame.rpartition(" (")
    return f"{head} ({place.rpartition(':')[0]})" if ":" in place else frame


def _join(first: str, second: str) -> str:
    return second if first == "ok" else f"{first}; {second}"


def last_json(child: Child) -> str:
    """The publisher prints its JSON summary as its last line of output."""
    for line in reversed(tail(child.log_path, 5).splitlines()):
        if line.startswith("{"):
            return line
    raise ContenderFailedError(f"the publisher printed no summary:\n{child.log_tail()}")


def wait_for_end(
    run: Run,
    name: str,
    child: Child,
    publisher: Child,
    poller: Poller | None,
    work: Path,
    database: str,
    result: Result,
) -> float | None:
    """Until the contender has every reading, or stalls; the wall time it had them all."""
    args = run.args
    expected = args.readings
    started = time.monotonic()
    deadline = started + args.timeout
    published_at: float | None = None
    progress = -1
    progress_at = time.monotonic()  # the ceiling reports nothing until it has everything
    next_count = 0.0
    done_file = work / "receive-times.f64"
    while True:
        now = time.monotonic()
        status = child.poll()
        if status is not None:
            result.counted = count_readings(run.influx.url, database) if poller else 0
            result.lost = expected - result.counted
            raise ContenderFailedError(f"exited with status {status} during the run")
        if published_at is None:
            pub_status = publisher.poll()
            if pub_status is not None:
                if pub_status != 0:
                    raise BenchError(f"the publisher failed:\n{publisher.log_tail()}")
                published_at = now
                run.console.print(f"[bold]{name}[/]: all published and acknowledged")
        if poller is None:
            if done_file.exists():
                received = len(read_times(done_file))
                result.counted = run.readings_in(received)
                result.lost = expected - result.counted
                return read_times(done_file)[-1] if received else None
        else:
            latest = poller.latest
            if latest != progress:
                progress, progress_at = latest, now
            if latest >= expected and now >= next_count:
                next_count = now + 1.0
                counted = count_readings(run.influx.url, database)
                result.counted, result.lost = counted, expected - counted
                if counted == expected:
                    return poller.first_reaching(expected)
                if counted > expected:
                    raise ContenderFailedError(
                        f"InfluxDB holds {counted} readings, more than the {expected} published"
                    )
        if published_at is not None and now - max(progress_at, published_at) > args.stall_timeout:
            stalled(run, name, child, poller, database, result, f"{args.stall_timeout:g} s")
        if now > deadline:
            stalled(run, name, child, poller, database, result, None)
        time.sleep(0.02)


def stalled(
    run: Run,
    name: str,
    child: Child,
    poller: Poller | None,
    database: str,
    result: Result,
    quiet_for: str | None,
) -> NoReturn:
    """Record what arrived and raise: no progress for `quiet_for`, or (None) out of time."""
    expected = run.args.readings
    if poller is None:
        child.stop()  # the ceiling writes what it received on SIGTERM
        path = run.tmp / f"{name}-{run.round_no}" / "receive-times.f64"
        received = len(read_times(path)) if path.exists() else 0
        result.counted = run.readings_in(received)
    else:
        result.counted = count_readings(run.influx.url, database)
    result.lost = expected - result.counted
    how = (
        f"no progress for {quiet_for} after publishing"
        if quiet_for is not None
        else f"not done within --timeout {run.args.timeout:g} s"
    )
    message = f"stalled: {result.counted} of {expected} readings, {how}"
    if poller is not None and poller.errors:
        message += f"; {poller.errors} polls failed, the last with: {poller.last_error}"
    raise ContenderFailedError(message)


def poll_times(run: Run, samples: list[tuple[float, int]], counted: int) -> list[float]:
    """When each reading became queryable: reading i at the first sample with count > i."""
    written: list[float] = []
    limit = min(counted, run.args.readings)
    for at, value in samples:
        while len(written) < min(value, limit):
            written.append(at)
    return written


def progress(samples: list[tuple[float, int]], start: float) -> list[tuple[float, int]]:
    """`samples` thinned to 100 evenly spaced in time, each as (seconds since start, count)."""
    samples = [sample for sample in samples if sample[0] >= start]
    if not samples:
        return []
    end = samples[-1][0]
    step = max((end - start) / 100, 1e-9)
    out: list[tuple[float, int]] = []
    for at, value in samples:
        if not out or at - start >= out[-1][0] + step or (at, value) == samples[-1]:
            out.append((round(at - start, 3), value))
    return out


def ceiling_times(run: Run, work: Path) -> list[float]:
    """When each reading arrived at the ceiling subscriber (its message's receive time)."""
    path = work / "receive-times.f64"
    if not path.exists():
        return []
    received = read_times(path)
    per = run.per_message
    return [received[i // per] for i in range(run.readings_in(len(received)))]


# ---- report --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024**2:.0f} GiB"
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory": memory,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "mosquitto": first_line(["mosquitto", "-h"]),
        "influxdb": first_line(["influxd", "version"]),
        "node": first_line(["node", "--version"]),
        "node_red": nodered_version(),
        "luxtel_commit": commit(),
    }


def nodered_version() -> str:
    """The Node-RED and node-red-contrib-influxdb versions installed in bench/nodered."""
    versions = []
    for package in ("node-red", "node-red-contrib-influxdb"):
        try:
            manifest = json.loads((NODERED / "node_modules" / package / "package.json").read_text())
        except (OSError, ValueError):
            return "not installed"
        versions.append(f"{package} {manifest.get('version', '?')}")
    return ", ".join(versions)


def commit() -> str:
    """The commit luxtel runs from, marked when its code has uncommitted changes."""
    head = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    code = ["luxtel", "ingest", "models", "rules"]
    changed = first_line(["git", "-C", str(REPO), "status", "--porcelain", "--", *code])
    return head if changed == "?" else f"{head} + uncommitted changes"


def first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(a: Result, b: Result) -> dict[str, float | None]:
    """Each figure of `a` divided by the same of `b`."""
    out: dict[str, float | None] = {
        "readings_per_s": ratio(a.readings_per_s, b.readings_per_s),
        "cpu_us_per_reading": ratio(a.cpu_us_per_reading, b.cpu_us_per_reading),
        "peak_rss_mib": ratio(a.peak_rss_mib, b.peak_rss_mib),
        "broker_cpu_us_per_reading": ratio(
            a.broker_cpu_us_per_reading, b.broker_cpu_us_per_reading
        ),
        "influxd_cpu_us_per_reading": ratio(
            a.influxd_cpu_us_per_reading, b.influxd_cpu_us_per_reading
        ),
    }
    for p in PERCENTILES:
        key = f"p{p}"
        out[f"latency_{key}"] = ratio(a.latency_ms.get(key), b.latency_ms.get(key))
    return out


def over_reference(results: list[Result]) -> dict[str, dict[str, float | None]]:
    """Every other contender's figures divided by luxtel's (when luxtel ran and got through)."""
    by = {r.contender: r for r in results}
    reference = by.get(REFERENCE)
    if reference is None or not reference.ok:
        return {}
    return {r.contender: ratios(r, reference) for r in results if r.contender != REFERENCE}


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def fmt_ms(value: float | None) -> str:
    return fmt(value, 1 if value is not None and value < 10 else 0)


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"×{value:.2f}"


def table(results: list[Result], title: str) -> Table:
    grid = Table(title=title, title_justify="left")
    grid.add_column("contender", no_wrap=True)
    for heading in (
        "readings/s",
        "CPU µs/reading",
        "peak RSS MiB",
        "lost",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "publisher readings/s",
        "broker CPU µs/rdg",
        "influxd CPU µs/rdg",
    ):
        grid.add_column(heading, justify="right")
    for r in results:
        grid.add_row(
            r.contender if r.ok else f"{r.contender} [red](failed)[/]",
            fmt(r.readings_per_s),
            fmt(r.cpu_us_per_reading, 1),
            fmt(r.peak_rss_mib, 1),
            str(r.lost) if r.lost == 0 else f"[red]{r.lost}[/]",
            fmt_ms(r.latency_ms.get("p50")),
            fmt_ms(r.latency_ms.get("p90")),
            fmt_ms(r.latency_ms.get("p99")),
            fmt(r.publisher_readings_per_s),
            fmt(r.broker_cpu_us_per_reading, 1),
            fmt(r.influxd_cpu_us_per_reading, 1) if r.contender != "ceiling" else "—",
        )
    quotients = over_reference(results)
    if quotients:
        grid.add_section()
    for name, q in quotients.items():
        grid.add_row(
            f"{name} / {REFERENCE}",
            fmt_ratio(q["readings_per_s"]),
            fmt_ratio(q["cpu_us_per_reading"]),
            fmt_ratio(q["peak_rss_mib"]),
            "",
            fmt_ratio(q["latency_p50"]),
            fmt_ratio(q["latency_p90"]),
            fmt_ratio(q["latency_p99"]),
            "",
            fmt_ratio(q["broker_cpu_us_per_reading"]),
            fmt_ratio(q["influxd_cpu_us_per_reading"]) if name != "ceiling" else "",
        )
    return grid


def report(run: Run, results: list[Result], command: str, host: dict[str, Any]) -> None:
    console = run.console
    args = run.args
    rate = "as fast as the broker takes them" if args.rate <= 0 else f"{args.rate:g} readings/s"
    shape = (
        "one reading per message (telemetry)"
        if args.mode == "telemetry"
        else f"gateway batches of {args.batch_size} readings"
    )
    console.print()
    console.print(f"[bold]command[/]  {command}")
    console.print(
        f"[bold]machine[/]  {host['nproc']} cores ({host['cpu']}), {host['memory']}, "
        f"Python {host['python']}, {host['mosquitto']}, {host['influxdb']}, "
        f"luxtel {host['luxtel_commit']}"
        + (
            f", Node.js {host['node']} ({host['node_red']})"
            if any(r.contender == "nodered" for r in results)
            else ""
        )
    )
    console.print(
        f"[bold]load[/]     {args.readings:,} readings from {args.devices:,} devices, {shape}, "
        f"QoS 1, published {rate}"
    )
    title = f"ingest benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    if args.repeat > 1:
        title += f", medians of {args.repeat} rounds"
    console.print(table(results, title))
    for r in results:
        if len(r.runs) > 1:
            each = ", ".join(fmt(run.get("readings_per_s")) for run in r.runs)
            console.print(f"{r.contender} readings/s in each round: {each}")
    poll = next((r.mean_poll_ms for r in results if r.mean_poll_ms is not None), None)
    what = "COUNT(power_w)" if args.poll_query == "count" else "InfluxDB's writePointsOk counter"
    console.print(
        "readings/s: first publish → last reading queryable in InfluxDB (ceiling: received). "
        "CPU µs/reading: utime+stime of the contender's process tree (itself, its live "
        "descendants and the children it reaped) over the run ÷ readings published; broker and "
        "influxd columns the same for Mosquitto and InfluxDB (influxd's includes the poller's "
        "queries). Peak RSS: VmHWM summed over the contender's process tree. Lost: published − "
        "SELECT COUNT(power_w) FROM telemetry (must be 0; every reading has its own ts). "
        "Ratio rows: each contender's figure ÷ luxtel's (readings/s above ×1 is faster, "
        "CPU, RSS and latency below ×1 are less)."
    )
    console.print(
        f"Latency: publish → queryable, from {what} polled every "
        f"{args.poll_interval * 1000:g} ms"
        + (f" (one poll took {poll:.1f} ms on average)" if poll is not None else "")
        + ", so its resolution is the poll interval; ceiling: publish → received."
        + (
            " Published as fast as possible, the percentiles measure the backlog, not the "
            "pipeline: use --rate for latency at a given load."
            if args.rate <= 0
            else ""
        )
        + " The baseline and Node-RED acknowledge each message on receipt and keep no spool or "
        "dead letter; luxtel acknowledges only once a reading is in InfluxDB."
    )
    for r in results:
        if r.rules_evaluated is None:
            continue
        settle = (
            f", {r.rules_settle_seconds:.1f} s after the last reading was stored"
            if r.rules_settle_seconds is not None
            else ""
        )
        console.print(
            f"{r.contender}: the rules engine evaluated {r.rules_evaluated:,} of "
            f"{args.readings:,} readings published, "
            + (f"{r.rules_lag:,} still to evaluate (lag)" if r.rules_lag else "no lag left")
            + f"{settle}; its CPU is counted up to then"
            + (
                f" ({r.main_cpu_us_per_reading:.1f} µs a reading in `luxtel run`"
                + (
                    f", {r.main_cpu_us_at_stored:.1f} of it until the last reading was stored"
                    if r.main_cpu_us_at_stored is not None
                    else ""
                )
                + f", {r.cpu_us_per_reading - r.main_cpu_us_per_reading:.1f} in its rules process)"
                if r.main_cpu_us_per_reading is not None and r.cpu_us_per_reading is not None
                else ""
            )
            + ". Points it wrote beside the readings: "
            + (", ".join(f"{n:,} {m}" for m, n in r.other_points.items()) or "none")
            + " (in shards of their own, which the latency poller leaves out)."
        )
    plain = next((r for r in results if r.contender == REFERENCE and r.ok), None)
    for r in results:
        if r.rollup_builds is None:
            continue
        extra = ""
        if plain is not None and plain.cpu_us_per_reading and r.cpu_us_per_reading is not None:
            base = plain.cpu_us_per_reading
            more = r.cpu_us_per_reading - base
            extra = (
                f"; CPU over {REFERENCE}'s in this run: {more:+.2f} µs a reading "
                f"({more / base:+.0%})"
            )
            if r.cpu_us_at_stored is not None:
                upkeep = r.cpu_us_at_stored - base + (r.rollup_cpu_s or 0) * 1e6 / args.readings
                extra += (
                    f"; up to the moment every reading was stored (the same span as {REFERENCE}'s "
                    f"figure, so without the idle wait for the close) {r.cpu_us_at_stored:.2f} µs, "
                    f"and with the close's own CPU added {upkeep:+.2f} µs a reading "
                    f"({upkeep / base:+.0%}) over {REFERENCE}"
                )
        console.print(
            f"{r.contender}: the rollup upkeep read back {r.rollup_readings_read or 0:,} readings "
            f"in {r.rollup_builds} build(s) and wrote {r.rollup_tallied_rows or 0:,} device-hours "
            f"from its tally, the last {fmt(r.rollup_seconds, 1)} s after the readings were all "
            f"stored, taking {fmt(r.rollup_cpu_s, 2)} s of CPU "
            f"({(r.rollup_cpu_s or 0) * 1e6 / args.readings:.2f} µs a reading), and "
            f"{fmt(r.rollup_feed_cpu_s, 3)} s feeding its tally as the readings were written "
            f"({(r.rollup_feed_cpu_s or 0) * 1e6 / args.readings:.2f} µs a reading; close and "
            f"feed, the upkeep's own CPU: "
            f"{((r.rollup_cpu_s or 0) + (r.rollup_feed_cpu_s or 0)) * 1e6 / args.readings:.2f} "
            f"µs a reading); the contender's CPU is counted up to then{extra}."
        )
    if any(r.contender == "nodered" for r in results):
        console.print(
            "nodered: node-red-contrib-influxdb (1.x) writes every number as a float, so seq and "
            "dim_pct are floats in its database where luxtel writes integers; the count is the "
            "same."
        )
    for r in results:
        if r.points_accepted is not None and r.points_accepted > r.counted > 0:
            console.print(
                f"[yellow]{r.contender}[/]: InfluxDB accepted {r.points_accepted:,} points for "
                f"{r.counted:,} readings: {r.points_accepted - r.counted:,} were written again "
                "(a retried write; harmless for the data, but work done twice)"
            )
    loads = [
        f"{r.contender} {r.other_load_cores:.0%} of a core (machine busy {r.machine_busy_cores:.2f}"
        f" of {host['nproc']} cores)"
        for r in results
        if r.other_load_cores is not None and r.machine_busy_cores is not None
    ]
    if loads:
        console.print(
            "CPU taken by processes outside the benchmark during each run: " + "; ".join(loads)
        )
        if any((r.other_load_cores or 0) > OTHER_LOAD_WARNING for r in results):
            console.print(
                "[red bold]warning:[/] other processes took more than "
                f"{OTHER_LOAD_WARNING:.0%} of a core during a run: its figures are skewed; "
                "run again on a quiet machine"
            )
    if args.profile is not None:
        for r in results:
            path = args.profile / f"{r.contender}.txt"
            if path.exists():
                console.print(f"\n[bold]where {r.contender}'s CPU goes[/] (py-spy, {path})")
                console.print(profile_summary(path), markup=False, highlight=False)
    for r in results:
        if not r.ok:
            console.print(f"\n[red bold]{r.contender}: {r.status}[/]")
            if r.count_after_stop is not None:
                console.print(f"count after it stopped: {r.count_after_stop} of {r.published}")
            console.print(f"last lines of its log:\n{r.log_tail}", markup=False, highlight=False)


def write_json(
    path: Path, run: Run, results: list[Result], command: str, host: dict[str, Any]
) -> None:
    args = run.args
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": host,
        "parameters": {
            "readings": args.readings,
            "devices": args.devices,
            "mode": args.mode,
            "batch_size": args.batch_size,
            "rate": args.rate,
            "poll_interval_s": args.poll_interval,
            "poll_query": args.poll_query,
        },
        "results": [{**asdict(r), "ok": r.ok} for r in results],
        "over_luxtel": over_reference(results),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


# ---- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description="luxtel end to end (MQTT → InfluxDB) against a baseline, in one run.",
    )
    parser.add_argument("--readings", type=int, default=100_000, help="readings to publish")
    parser.add_argument("--devices", type=int, default=1000, help="luminaires they come from")
    parser.add_argument("--mode", choices=("telemetry", "batch"), default="telemetry")
    parser.add_argument("--batch-size", type=int, default=100, help="readings per gateway batch")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="readings/s to publish (0: as fast as possible)"
    )
    parser.add_argument(
        "--only",
        default=",".join(CONTENDERS),
        help=f"contenders to run, in order (comma-separated, of {','.join(CONTENDERS)})",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds")
    parser.add_argument(
        "--poll-query",
        choices=("stats", "count"),
        default="stats",
        help="what the latency poller reads: InfluxDB's writePointsOk counter (cheap) or "
        "COUNT(power_w) (exact, but ~60 ms of InfluxDB CPU per poll at 100k points)",
    )
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=60.0,
        help="seconds without progress, after publishing, before a contender counts as stalled",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per contender")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of all contenders in turn; figures are the medians (steadier on a busy box)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--rollup-close-s",
        type=float,
        default=30.0,
        help="luxtel-rollups: seconds after its start at which the readings' hours close and "
        "are rolled up (longer than the run, or the late readings rebuild them)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample each Python contender (not nodered) with py-spy (pip install py-spy) into "
        "DIR/NAME.txt (collapsed stacks; its main process only) and print where its CPU goes; "
        "py-spy's own CPU use skews the figures",
    )
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in only if name not in CONTENDERS]
    if unknown or not only or len(set(only)) != len(only):
        parser.error(f"--only takes some of {', '.join(CONTENDERS)}; got {args.only!r}")
    if min(args.readings, args.devices, args.batch_size, args.repeat) < 1:
        parser.error("--readings, --devices, --batch-size and --repeat must be at least 1")
    if args.poll_interval <= 0:
        parser.error("--poll-interval must be positive")
    if args.profile is not None and shutil.which("py-spy", path=PATH) is None:
        parser.error("--profile needs py-spy: pip install py-spy")
    if "nodered" in only and (shutil.which("node") is None or not NODERED_MAIN.exists()):
        parser.error(
            "the nodered contender needs Node.js and Node-RED: bench/run installs it "
            "(npm ci --prefix bench/nodered), or leave it out with --only"
        )
    return Options(**{**vars(args), "only": only})


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGHUP) end the run like Ctrl-C: every child is stopped on the way out."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = parse_args(argv)
    console = Console(file=out, width=max(Console(file=out).width, 150))
    command = shlex.join(["python", "bench/ingest.py", *(sys.argv[1:] if argv is None else argv)])
    tmp = Path(tempfile.mkdtemp(prefix="luxtel-bench-"))
    broker = MosquittoServer(tmp / "mosquitto", extra_conf=BROKER_CONF)
    influx = InfluxDBServer(tmp / "influxdb")
    results: list[Result] = []
    try:
        with sigterm_as_interrupt():
            console.print(f"starting Mosquitto and InfluxDB in {tmp}")
            broker.start()
            influx.start()
            # Every reading has its own ts: reading i at ts_base + i ms, in an hour before this one.
            ts_base_ms = readings_base_ms(time.time(), args.readings)
            run = Run(args, tmp, broker, influx, ts_base_ms, console)
            runs: dict[str, list[Result]] = {name: [] for name in args.only}
            for round_no in range(1, args.repeat + 1):
                run.round_no = round_no
                for name in args.only:
                    if args.repeat > 1:
                        console.print(f"[bold]round {round_no} of {args.repeat}[/]")
                    runs[name].append(run_contender(run, name, round_no))
                    console.print(f"[bold]{name}[/]: {runs[name][-1].status}")
            results = [median_result(runs[name]) for name in args.only]
            host = machine()
            report(run, results, command, host)
            if args.json is not None:
                write_json(args.json, run, results, command, host)
                console.print(f"figures written to {args.json}")
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]: stopping everything")
        return 130
    except (BenchError, ServerError, OSError) as error:
        console.print(f"[red bold]benchmark failed:[/] {error}")
        return 1
    finally:
        Child.stop_all()
        broker.stop(timeout=10)
        influx.stop(timeout=10)
        if args.keep:
            console.print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
