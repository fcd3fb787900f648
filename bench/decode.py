"""The decoder alone, in this process: luxtel's fast path against the full pydantic path.

    python bench/decode.py [--readings 100000] [--mode telemetry|batch] [--batch-size 100]
                           [--chunk 500] [--rules]

The same messages as `bench/ingest.py` publishes (`bench/publish.py`), decoded by
`ingest.decode.decode_into` as `luxtel run` does — the fast path (`ingest/reading_lines.c`) first —
and again with `fast=False`, the full path every message would take without it (orjson, the
pydantic models, `encode_reading`): the baseline. Both must produce the same lines (checked).
Prints messages/s, readings/s, CPU µs per reading, per-message latency percentiles and peak RSS
for each, and the ratios. `--rules` adds the fast path as `luxtel run` decodes with the rules
on (`Limits(observe=True, hand_over=True)`: each reading's journal entry written too), and what
that adds a reading; `--chunk` sets the messages decoded into one `Decoded` (500; `luxtel run`'s
chunks, what one read of the socket brought, were ~11 messages of gateway batches in
`bench/ingest.py --mode batch`, where the hand-over's runs grow with them).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import resource
import sys
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
# Run as a script, this folder comes first on sys.path, and its ingest.py would shadow the
# ingest package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

from ingest.decode import Decoded, Limits, decode, decode_into  # noqa: E402
from models.timestamps import epoch_ms  # noqa: E402


def _publisher() -> Any:
    """bench/publish.py (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("bench_publish", BENCH / "publish.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))]


KEPT = 64
"""Chunks' results held at once (`luxtel.pipeline`'s queue of decoded fragments)."""
CHUNK = 500
"""Messages decoded into one `Decoded`, as `ingest.stages.decode_chunk` does with what one read
of the socket brought (one receive time each)."""


def run(
    messages: list[tuple[str, bytes]],
    readings: int,
    *,
    fast: bool,
    rules: bool = False,
    chunk: int = CHUNK,
) -> dict[str, float]:
    """Decode every message once (after one warm-up pass over the first thousand), the way
    `luxtel run` does: `decode_into` a chunk's shared `Decoded` (`rules`: handing each reading
    over for the rules' journal too), the last `KEPT` chunks' results held, as the pipeline
    holds its fragments until their batch is written."""
    now = datetime.now(UTC)
    now_ms = epoch_ms(now)
    limits = Limits(topic_root="lighting", observe=rules, hand_over=rules)
    for topic, payload in messages[:1000]:
        decode(topic, payload, now, limits, fast=fast)
    timings: list[float] = []
    written = 0
    gc.collect()
    clock = time.perf_counter_ns
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    kept: deque[Decoded] = deque(maxlen=KEPT)
    for first in range(0, len(messages), chunk):
        out = Decoded()
        for topic, payload in messages[first : first + chunk]:
            start = clock()
            decode_into(out, topic, payload, now, now_ms, limits, None, fast)
            timings.append(clock() - start)
        written += len(out.points)
        kept.append(out)
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    if written != readings:
        raise SystemExit(f"fast={fast}: {written} lines for {readings} readings")
    timings.sort()
    return {
        "messages/s": len(messages) / wall,
        "readings/s": readings / wall,
        "cpu_us": cpu / readings * 1e6,
        "p50_us": _percentile(timings, 0.50) / 1000,
        "p99_us": _percentile(timings, 0.99) / 1000,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--mode", choices=("telemetry", "batch"), default="telemetry")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=CHUNK)
    parser.add_argument("--rules", action="store_true")
    args = parser.parse_args()
    publish = _publisher()
    ts_base_ms = int(time.time() * 1000) - 3_600_000
    messages = publish.build_messages(
        root="lighting",
        readings=args.readings,
        devices=args.devices,
        mode=args.mode,
        batch_size=args.batch_size,
        ts_base_ms=ts_base_ms,
        seed=1,
    )
    now = datetime.now(UTC)
    limits = Limits(topic_root="lighting")
    for topic, payload in messages[:200]:
        fast_lines = [p.line for p in decode(topic, payload, now, limits).points]
        full_lines = [p.line for p in decode(topic, payload, now, limits, fast=False).points]
        if len(fast_lines) != len(full_lines):
            raise SystemExit(f"the two paths disagree on {payload!r}")
    results = {
        "luxtel (fast path)": run(messages, args.readings, fast=True, chunk=args.chunk),
        "full path (baseline)": run(messages, args.readings, fast=False, chunk=args.chunk),
    }
    if args.rules:
        results["luxtel, rules on"] = run(
            messages, args.readings, fast=True, rules=True, chunk=args.chunk
        )
    table = Table(
        title=f"decode, {args.readings:,} readings, {args.mode}, {len(messages):,} messages"
    )
    columns = ["messages/s", "readings/s", "cpu_us", "p50_us", "p99_us", "peak_rss_mib"]
    headers = ["messages/s", "readings/s", "CPU µs/reading", "p50 µs/msg", "p99 µs/msg", "RSS"]
    table.add_column("path")
    for header in headers:
        table.add_column(header, justify="right")
    for name, figures in results.items():
        table.add_row(name, *(f"{figures[c]:,.1f}" for c in columns))
    fast, full = results["luxtel (fast path)"], results["full path (baseline)"]
    table.add_row(
        "full ÷ fast",
        *(f"×{full[c] / fast[c]:.2f}" for c in columns[:-1]),
        "(one process: peak of both)",
    )
    console = Console(width=150)
    console.print(table)
    if args.rules:
        on = results["luxtel, rules on"]["cpu_us"]
        console.print(
            f"the hand-over for the rules: {on - fast['cpu_us']:+.2f} µs CPU a reading "
            f"(chunks of {args.chunk} messages)"
        )


if __name__ == "__main__":
    main()
