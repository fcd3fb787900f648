"""Where the rules process's CPU goes on `bench/ingest.py`'s load: `python -m bench.rules_loop`.

    python -m bench.rules_loop [--readings 100000] [--devices 1000] [--mode telemetry|batch]
                               [--record 5000] [--gather 50000]

The loop runs `--repeat` times each way, alternated: the scalar path (every observation through
`_observe`, the baseline) and with the columns (`rules.evaluation.columns`).

The same readings and inventory as `bench/run` (`bench.publish`: the fleet at solar midnight,
every reading its own `ts`) are decoded as `luxtel run` decodes them with the rules on, appended
to a journal in records of `--record` observations (the sink's batch in the benchmark), then read
back and evaluated as the rules process does it: `JournalReader` → the engine's inbox →
`RulesEngine.run` with the shipped rules, its SQLite state in a temporary directory; no InfluxDB,
no MQTT, no channel to a parent (those are `luxtel run`'s side, and the rules process's metrics
and positions reports, a few a second).

Two passes, each with a new engine (cold: every luminaire is first heard from, as in
`bench/run`). The first times what runs once per record or per cycle — journal read and decode,
`evaluate`, the rest of `RulesEngine.cycle` (dispatch, metrics, the SQLite transaction) — with
the process's CPU clock, and prints the split per observation. The second times the parts of
`evaluate` that run per observation (the fused verdict functions, the variables, the sun, the
reading's map), each with `time.perf_counter` around it: each of those figures includes some
0.1 µs of its own timing. CPU time is the process's (`time.process_time`), so other processes
on a shared machine count less; the timers of the second pass are wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import TOPIC_ROOT, readings_base_ms
from bench.publish import build_messages, fleet, write_inventory
from common.gc_settings import tune_for_ingest
from ingest.decode import Decoded, Limits, decode_into
from models import Handed, JournalRun, Observation
from models.timestamps import epoch_ms
from rules.evaluation import evaluator, sun
from rules.evaluation.inventory import load_inventory
from rules.runtime import engine as engine_module
from rules.runtime import journal as journal_module
from rules.runtime import store as store_module
from rules.runtime.journal import START
from rules.runtime.journal_reader import JournalReader
from rules.runtime.journal_writer import JournalWriter
from rules.runtime.worker import INBOX_CHUNKS

RULES = Path(__file__).resolve().parent.parent / "deploy" / "rules" / "streetlight.yaml"
SEED = 1
"""`bench/publish.py`'s default seed, as `bench/run` uses it."""


def handed_of(args: argparse.Namespace, directory: Path) -> tuple[list[Handed], Path]:
    """The benchmark's readings as `luxtel run` hands them to the journal, and its inventory."""
    base = readings_base_ms(time.time(), args.readings)
    inventory = directory / "inventory.csv"
    write_inventory(inventory, fleet(args.devices, random.Random(SEED)), base)
    messages = build_messages(
        root=TOPIC_ROOT,
        readings=args.readings,
        devices=args.devices,
        mode=args.mode,
        batch_size=100,
        ts_base_ms=base,
        seed=SEED,
    )
    limits = Limits(topic_root=TOPIC_ROOT, max_clock_skew_s=1e9, observe=True, hand_over=True)
    out = Decoded()
    received = datetime.now(UTC)
    for topic, payload in messages:
        decode_into(out, topic, payload, received, epoch_ms(received), limits)
    handed = list(entries_of(out.handed))
    if len(handed) != args.readings:
        raise SystemExit(f"decoded {len(handed)} observations of {args.readings} readings")
    return handed, inventory


def entries_of(handed: list[Handed]) -> Iterator[Handed]:
    """One item per observation: the fast path's runs of journal entries split into entries
    (to cut the journal into records of `--record` observations)."""
    for item in handed:
        if isinstance(item, JournalRun):
            yield from (orjson.dumps(entry) for entry in orjson.loads(b"[" + item + b"]"))
        else:
            yield item


def journal_of(handed: list[Handed], directory: Path, record: int) -> Path:
    path = directory / "journal"
    writer = JournalWriter(path, 1 << 40)

    async def append() -> None:
        for start in range(0, len(handed), record):
            await writer.append(handed[start : start + record])

    asyncio.run(append())
    writer.close()
    return path


class Timers:
    """Seconds spent in the functions patched, by label."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.spent: dict[str, float] = {}

    def wrap(self, function: Callable[..., Any], label: str) -> Callable[..., Any]:
        clock, spent = self.clock, self.spent
        spent[label] = 0.0

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = clock()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += clock() - began

        return timed

    @contextmanager
    def patched(self, owner: Any, name: str, label: str) -> Iterator[None]:
        original = getattr(owner, name)
        setattr(owner, name, self.wrap(original, label))
        try:
            yield
        finally:
            setattr(owner, name, original)


async def evaluate_journal(engine: engine_module.RulesEngine, path: Path) -> None:
    """The rules process's loop without its parent: every record into the inbox, then `None`."""
    inbox: asyncio.Queue[Sequence[Observation] | None] = asyncio.Queue(INBOX_CHUNKS)

    async def feed() -> None:
        reader = JournalReader(path, START)
        while records := reader.read(1 << 62):
            for record in records:
                await inbox.put(reader.decode(record))
        await inbox.put(None)

    feeder = asyncio.create_task(feed())
    await engine.run(inbox)
    await feeder


def new_engine(inventory: Path, state: Path) -> engine_module.RulesEngine:
    return engine_module.RulesEngine(RULES, load_inventory(inventory), state)


def cycle_pass(
    inventory: Path, journal: Path, state: Path, *, scalar: bool = False
) -> tuple[float, dict[str, float]]:
    """CPU seconds of the whole loop, and of its parts timed per record or per cycle; with
    `scalar`, every observation through the evaluator's scalar path (no columns: the baseline)."""
    timers = Timers(time.process_time)
    engine = new_engine(inventory, state)
    namespace = vars(engine_module)
    original = namespace["evaluate"]
    if scalar:
        namespace["evaluate"] = functools.partial(original, columnar_from=None)
    with (
        timers.patched(journal_module.Record, "chunk", "journal read: decode"),
        timers.patched(engine_module, "evaluate", "evaluate"),
        timers.patched(engine_module.RulesEngine, "cycle", "cycle"),
        timers.patched(store_module.Store, "save", "cycle: SQLite save"),
    ):
        began = time.process_time()
        asyncio.run(evaluate_journal(engine, journal))
        total = time.process_time() - began
    namespace["evaluate"] = original
    return total, timers.spent


def evaluate_pass(inventory: Path, journal: Path, state: Path) -> dict[str, float]:
    """Wall seconds of the parts of `evaluate` that run per observation."""
    timers = Timers(time.perf_counter)
    engine = new_engine(inventory, state)
    for source in ("reading", "status"):
        verdicts = engine.book.verdicts(source)
        engine.book._verdicts[source] = dataclasses.replace(
            verdicts,
            each=timers.wrap(verdicts.each, f"verdict functions ({source}, device with alerts)"),
            changes=timers.wrap(verdicts.changes, f"verdict functions ({source}, no alerts)"),
        )
    with (
        timers.patched(evaluator, "_variables", "variables (device, sun, history, previous)"),
        timers.patched(sun.SunClock, "facts", "  sun facts"),
        timers.patched(sun, "sun_tables", "  sun tables of new UTC dates (sun_tables)"),
        timers.patched(evaluator, "reading_map", "reading map"),
    ):
        asyncio.run(evaluate_journal(engine, journal))
    return timers.spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--mode", choices=("telemetry", "batch"), default="telemetry")
    parser.add_argument("--record", type=int, default=5000, help="observations per record")
    parser.add_argument(
        "--repeat", type=int, default=1, help="loop passes of each path, alternated"
    )
    parser.add_argument(
        "--gather",
        type=int,
        default=engine_module.GATHER_MAX,
        help="most observations a cycle gathers (the engine's GATHER_MAX; in `bench/run` a "
        "cycle holds what arrives in its 0.25 s, ~10,000 at 40,000 readings/s)",
    )
    args = parser.parse_args()
    engine_module.GATHER_MAX = args.gather

    with tempfile.TemporaryDirectory(prefix="rules-loop-") as name:
        directory = Path(name)
        handed, inventory = handed_of(args, directory)
        journal = journal_of(handed, directory, args.record)
        tune_for_ingest()  # as the rules process does
        baseline: list[tuple[float, dict[str, float]]] = []
        columnar: list[tuple[float, dict[str, float]]] = []
        for i in range(args.repeat):
            state = directory / f"state-{i}"
            baseline.append(cycle_pass(inventory, journal, state / "scalar", scalar=True))
            columnar.append(cycle_pass(inventory, journal, state / "columns"))
        total, spent = min(columnar, key=lambda run: run[0])
        parts = evaluate_pass(inventory, journal, directory / "state-parts")

    n = args.readings

    def us(seconds: float) -> str:
        return f"{seconds / n * 1e6:6.2f} µs"

    decode, evaluate, cycle = spent["journal read: decode"], spent["evaluate"], spent["cycle"]
    save = spent["cycle: SQLite save"]
    print(
        f"{n:,} observations ({args.mode}, {args.devices:,} luminaires, records of "
        f"{args.record:,}, cycles of up to {args.gather:,}), CPU per observation:"
    )
    print(f"  {us(total)}  the rules process's loop, all of it")
    print(f"  {us(decode)}    journal read: decoding records")
    print(f"  {us(evaluate)}    evaluate (rules.evaluation.evaluator)")
    print(f"  {us(save)}    cycle: the SQLite transaction (state, position)")
    print(f"  {us(cycle - evaluate - save)}    cycle: the rest (dispatch, metrics, bookkeeping)")
    print(f"  {us(total - decode - cycle)}    the rest: journal reads, inbox, event loop")
    print("Baseline, every observation through the scalar path (evaluate's columnar_from=None):")
    for (old_total, old), (new_total, new) in zip(baseline, columnar, strict=True):
        print(
            f"  loop {us(old_total)} → {us(new_total)};"
            f"  evaluate {us(old['evaluate'])} → {us(new['evaluate'])}"
        )
    print("Inside evaluate, per observation (second pass, wall time, each with its timer):")
    for label, seconds in parts.items():
        if seconds:
            print(f"  {us(seconds)}  {label}")


if __name__ == "__main__":
    main()
