"""Draining a backlog the broker held while the ingester was down: time, CPU and peak memory.

    python bench/backlog.py [--readings 1000000] [--mode telemetry|batch] [--only luxtel,baseline]

For each contender, on one Mosquitto (its session queue raised to hold the backlog) and one
InfluxDB of our own, a fresh database each:

1. the contender starts, subscribes with a persistent session (its own client id), and is
   stopped (SIGTERM), so the broker keeps queueing for it;
2. `bench/publish.py` publishes `--readings` readings at QoS 1 (every one acknowledged by the
   broker) — the backlog;
3. the contender starts again and drains it: timed from its start to the moment InfluxDB has
   accepted every reading (`SHOW STATS` writePointsOk, polled every 0.25 s); then it is
   stopped, and `SELECT COUNT(power_w)` must equal the readings published.

Contenders: `luxtel` (`python -m luxtel run`, batch 5000, flush 0.5 s, rules off, its other
settings at their defaults), `luxtel-rules` (the same with the shipped rules and the fleet's
inventory, as in bench/ingest.py: its rules read the journal at their own pace; once InfluxDB
has every reading the bench also waits until the rules have evaluated every one, and reports
the rules' lag when the readings were all stored and the time until they caught up; a backlog
larger than `rules.journal_max_bytes` holds ingest back until the rules make room), and
`baseline`, the straightforward aiomqtt ingester of
`bench/baseline_aiomqtt.py` with a persistent session (`--persistent`): aiomqtt acknowledges on
receipt and queues without bound, which is what a backlog does to a straightforward ingester.
(With aiomqtt's default 10 s timeout it does not even resume: its SUBSCRIBE's answer comes
behind the whole backlog and it gives up, so the bench gives it 600 s.)
Printed per contender: readings, drain seconds, readings/s, CPU µs per reading (utime + stime of
the contender's process tree over the drain), peak RSS (VmHWM over its tree), readings lost.
The measuring helpers (processes, /proc, InfluxDB) are bench/ingest.py's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.table import Table

from luxtel.local_servers import InfluxDBServer, MosquittoServer, create_database

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
QUEUE_LIMIT = 5_000_000
"""The broker's `max_queued_messages` here: above any backlog this bench builds (the project's
own test configuration stops at a million, exactly the default backlog)."""
POLL_S = 0.25


def _bench_ingest() -> ModuleType:
    """bench/ingest.py as a module (a script, and its name is taken by the `ingest` package)."""
    spec = importlib.util.spec_from_file_location("bench_ingest", BENCH / "ingest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_ingest"] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


tools = _bench_ingest()


@dataclass
class Drained:
    name: str
    readings: int
    seconds: float
    cpu_s: float
    peak_rss_mib: float
    lost: int
    publish_s: float
    failed: str = ""
    """Why the contender did not drain the backlog (the last line of its log), if it did not."""
    rules_lag: int | None = None
    """luxtel-rules: observations its rules had not evaluated when InfluxDB had every reading."""
    rules_lag_s: float | None = None
    """luxtel-rules: the age of the oldest of them then (append time, wall clock)."""
    rules_caught_up_s: float | None = None
    """luxtel-rules: from its start until its rules had evaluated every reading."""
    rules_evaluated: int | None = None

    @property
    def per_second(self) -> float:
        return self.readings / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.readings * 1e6 if self.readings else 0.0


def write_inventory(path: Path, args: argparse.Namespace, ts_base_ms: int) -> Path:
    """The fleet's inventory (for luxtel-rules), by `bench/publish.py --inventory`."""
    argv = [sys.executable, str(BENCH / "publish.py"), f"--inventory={path}"]
    argv += [f"--devices={args.devices}", f"--ts-base-ms={ts_base_ms}"]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": tools.python_path()},
    )
    if done.returncode != 0:
        raise tools.BenchError(f"could not write the inventory:\n{done.stderr}")
    return path


def contender_argv(
    name: str,
    broker: MosquittoServer,
    influx: InfluxDBServer,
    database: str,
    work: Path,
    inventory: Path | None = None,
    metrics_port: int | None = None,
) -> tuple[list[str], str]:
    """The command and client id of a contender."""
    client_id = f"{name}-{uuid.uuid4().hex[:6]}"
    if name in ("luxtel", "luxtel-rules"):
        config = work / "luxtel.toml"
        text = (
            f'state_dir = "{work / "state"}"\n'
            f'[mqtt]\nurl = "{broker.url}"\ntopic_root = "{tools.TOPIC_ROOT}"\n'
            f'client_id = "{client_id}"\n'
            f'[influx]\nurl = "{influx.url}"\ndatabase = "{database}"\n'
            f"[ingest]\nbatch_size = 5000\nflush_interval_s = 0.5\n"
        )
        if name == "luxtel-rules":
            assert inventory is not None
            assert metrics_port is not None
            text += f"[metrics]\nenabled = true\nport = {metrics_port}\n"
            text += f'[rules]\npath = "{tools.RULES_FILE}"\n[inventory]\npath = "{inventory}"\n'
        else:
            text += "[metrics]\nenabled = false\n"
        config.write_text(text)
        return [sys.executable, "-m", "luxtel", "run", "-c", str(config)], client_id
    return [
        sys.executable,
        str(BENCH / "baseline_aiomqtt.py"),
        f"--mqtt-url={broker.url}",
        f"--influx-url={influx.url}",
        f"--database={database}",
        f"--topic-root={tools.TOPIC_ROOT}",
        f"--client-id={client_id}",
        "--persistent",
        "--mqtt-timeout=600",  # aiomqtt's 10 s: the SUBACK comes behind the whole backlog
    ], client_id


def drain(
    name: str,
    args: argparse.Namespace,
    broker: MosquittoServer,
    influx: InfluxDBServer,
    root: Path,
    console: Console,
) -> Drained:
    work = root / name
    work.mkdir()
    database = f"backlog_{name.replace('-', '_')}"
    create_database(influx.url, database)
    ts_base_ms = int(time.time() * 1000) - 2 * 3_600_000 - args.readings
    inventory = port = None
    if name == "luxtel-rules":
        inventory = write_inventory(work / "inventory.csv", args, ts_base_ms)
        port = tools.free_port()
    argv, client_id = contender_argv(name, broker, influx, database, work, inventory, port)
    log = work / "contender.log"

    offset = broker.log_path.stat().st_size
    first = tools.Child(name, argv, log, REPO)
    tools.wait_subscribed(broker, client_id, offset, first, tools.SUBSCRIBE_TIMEOUT_S)
    first.stop()
    console.print(f"{name}: subscribed and stopped; publishing the backlog")

    began = time.monotonic()
    publisher = tools.Child(
        "publisher",
        [
            sys.executable,
            str(BENCH / "publish.py"),
            f"--url={broker.url}",
            f"--root={tools.TOPIC_ROOT}",
            f"--readings={args.readings}",
            f"--devices={args.devices}",
            f"--mode={args.mode}",
            f"--batch-size={args.batch_size}",
            f"--ts-base-ms={ts_base_ms}",
            f"--timeout={args.timeout}",
            f"--client-id=bench-publisher-{uuid.uuid4().hex[:6]}",
            f"--times={work / 'times.bin'}",
        ],
        work / "publisher.log",
        REPO,
    )
    if publisher.proc.wait(args.timeout) != 0:
        raise tools.BenchError(f"the publisher failed:\n{publisher.log_tail()}")
    publish_s = time.monotonic() - began
    console.print(f"{name}: {args.readings:,} readings queued in {publish_s:.1f} s; draining")

    written = tools.ReadingsPoints(influx.url, database, ts_base_ms + args.readings)
    second = tools.Child(name, argv, log, REPO)
    started = time.monotonic()
    cpu_at_start = tools.tree_cpu_seconds(second.pid)
    deadline = started + args.timeout
    cpu_s = peak = 0.0
    while True:
        time.sleep(POLL_S)
        if second.poll() is not None:
            raise tools.BenchError(f"{name} exited while draining:\n{second.log_tail()}")
        peak = max(peak, tools.tree_peak_rss_mib(second.pid))
        cpu_s = tools.tree_cpu_seconds(second.pid) - cpu_at_start
        if written() >= args.readings:
            break
        if time.monotonic() > deadline:
            raise tools.BenchError(f"{name} did not drain in {args.timeout:g} s")
    seconds = time.monotonic() - started
    rules: dict[str, float] = {}
    if port is not None:
        rules = wait_rules(port, args, second, deadline, console, name)
        peak = max(peak, tools.tree_peak_rss_mib(second.pid))
        cpu_s = tools.tree_cpu_seconds(second.pid) - cpu_at_start
        rules["caught_up_s"] = time.monotonic() - started
    second.stop()
    lost = args.readings - tools.count_readings(influx.url, database)
    drained = Drained(name, args.readings, seconds, cpu_s, peak, lost, publish_s)
    if rules:
        drained.rules_lag = int(rules["lag"])
        drained.rules_lag_s = rules["lag_s"]
        drained.rules_evaluated = int(rules["evaluated"])
        drained.rules_caught_up_s = rules["caught_up_s"] if rules["done"] else None
    return drained


def wait_rules(
    port: int,
    args: argparse.Namespace,
    child: Any,
    deadline: float,
    console: Console,
    name: str,
) -> dict[str, float]:
    """luxtel-rules, once InfluxDB has every reading: its rules' lag then, and the wait until
    they have evaluated every reading (or until the deadline). `child`: its `tools.Child`."""
    first: dict[str, float] | None = None
    while True:
        try:
            samples = tools.luxtel_metrics(port)
        except OSError:
            samples = {}
        evaluated = samples.get("luxtel_rules_evaluated_total", 0.0)
        lag = samples.get("luxtel_rules_lag_observations", 0.0)
        now = {"lag": lag, "lag_s": samples.get("luxtel_rules_lag_seconds", 0.0)}
        if first is None and samples:
            first = now
        if evaluated >= args.readings and lag == 0:
            return {**(first or now), "evaluated": evaluated, "done": 1.0}
        if child.poll() is not None or time.monotonic() > deadline:
            console.print(f"[yellow]{name}[/]: its rules did not catch up ({evaluated:,.0f})")
            return {**(first or now), "evaluated": evaluated, "done": 0.0}
        time.sleep(POLL_S)


def report(results: list[Drained], args: argparse.Namespace, console: Console) -> None:
    table = Table(title=f"Draining a backlog of {args.readings:,} {args.mode} readings")
    for column in (
        "contender",
        "drain s",
        "readings/s",
        "CPU µs/reading",
        "peak RSS MiB",
        "lost",
        "backlog published in s",
    ):
        table.add_column(column, justify="left" if column == "contender" else "right")
    for r in results:
        if r.failed:
            table.add_row(r.name, f"failed: {r.failed}", *[""] * 5)
            continue
        table.add_row(
            r.name,
            f"{r.seconds:,.1f}",
            f"{r.per_second:,.0f}",
            f"{r.cpu_us:,.1f}",
            f"{r.peak_rss_mib:,.1f}",
            f"{r.lost:,}",
            f"{r.publish_s:,.1f}",
        )
    console.print(table)
    for r in results:
        if r.rules_evaluated is None:
            continue
        caught = (
            f"caught up {r.rules_caught_up_s:,.1f} s after luxtel started"
            if r.rules_caught_up_s is not None
            else "did not catch up before the timeout"
        )
        console.print(
            f"{r.name}: when InfluxDB had every reading its rules were "
            f"{r.rules_lag or 0:,} observations ({r.rules_lag_s or 0:,.1f} s) behind; they "
            f"{caught}, {r.rules_evaluated:,} of {r.readings:,} evaluated, none dropped; CPU "
            "and peak RSS above are counted until then (drain s: until InfluxDB had them all)."
        )
    by_name = {r.name: r for r in results}
    if "luxtel" in by_name and "baseline" in by_name and not any(r.failed for r in results):
        lux, base = by_name["luxtel"], by_name["baseline"]
        console.print(
            f"luxtel / baseline: readings/s ×{lux.per_second / base.per_second:.2f}, "
            f"CPU per reading ×{lux.cpu_us / base.cpu_us:.2f}, "
            f"peak RSS ×{lux.peak_rss_mib / base.peak_rss_mib:.2f}"
        )
    console.print(
        "Drain: from the contender's start to InfluxDB having accepted every reading. The "
        "baseline acknowledges each message on receipt and holds what it has not written in "
        "memory; luxtel acknowledges once a reading is in InfluxDB (at most 65,535 in flight)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--mode", choices=("telemetry", "batch"), default="telemetry")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--only", default="luxtel,luxtel-rules,baseline", help="contenders, comma-separated"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per step")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    console = Console()
    root = Path(tempfile.mkdtemp(prefix="luxtel-backlog-"))
    results: list[Drained] = []
    try:
        with (
            MosquittoServer(
                root / "mosquitto",
                extra_conf=f"{tools.BROKER_CONF}max_queued_messages {QUEUE_LIMIT}\n",
            ) as broker,
            InfluxDBServer(root / "influxdb") as influx,
        ):
            for name in args.only.split(","):
                try:
                    results.append(drain(name, args, broker, influx, root, console))
                except tools.BenchError as error:
                    why = str(error).strip().splitlines()[-1]
                    console.print(f"[red]{name} failed[/red]: {error}")
                    results.append(Drained(name, args.readings, 0, 0, 0, args.readings, 0, why))
    finally:
        tools.Child.stop_all()
        if args.keep:
            console.print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report(results, args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
