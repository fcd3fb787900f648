"""What handing observations to the rules process costs `luxtel run`, per observation.

    python -m bench.rules_handover [--devices 200] [--hours 24] [--chunk 50] [--rate 3000]

A simulated fleet's messages (every fault kind) are decoded by the real decoder first, outside
the timing (`bench.rules_eval.observations_of`). Then:

- the codec: `encode_observations` (the parent's side) and `decode_observations` (the child's)
  against pickling the `Observation`s as they are, CPU µs per observation, best of 3;
- the hand-over in place: a real `RulesProcess` (a spawned child evaluating the shipped rules
  over the simulated inventory) takes chunks of `--chunk` observations from its inbox, as
  `decode_stage` fills it, paced at `--rate` observations/s so the child keeps up. Printed: this
  process's CPU per observation (`time.process_time`, every thread of the parent, so the
  channel's reading of alerts, metrics and logs counts too) minus the same loop feeding a
  consumer that only discards (the pacing's own cost), the child's CPU per observation
  (`/proc/PID/stat`), and the drops.

CPU time rather than wall time, so other processes on a shared machine count less. Alert
transitions are published to a counter, `alerts` points go to an InfluxDB that is not there
(their delivery failures are retried in the child), and logs are at `error`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from bench.rules_eval import observations_of
from bench.rules_score import ALL_FAULTS, DEFAULT_RULES
from common.logs import configure_logging
from influx.client import InfluxTarget
from luxtel.settings import (
    InventorySettings,
    LogSettings,
    RulesSettings,
    Settings,
)
from models import Observation
from rules.runtime.channel import decode_observations, encode_observations
from rules.runtime.process import RulesProcess
from simulator import SimulationConfig, build_plan
from simulator.clock import to_ms
from simulator.fleet import write_inventory_csv


def best_cpu_us(work: Callable[[], object], count: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.process_time()
        work()
        best = min(best, time.process_time() - began)
    return best / count * 1e6


def codec(chunks: list[list[Observation]], count: int) -> None:
    encoded = [encode_observations(c) for c in chunks]
    pickled = [pickle.dumps(c, pickle.HIGHEST_PROTOCOL) for c in chunks]
    size = sum(map(len, encoded)) / count
    pickled_size = sum(map(len, pickled)) / count
    encode_us = best_cpu_us(lambda: [encode_observations(c) for c in chunks], count)
    decode_us = best_cpu_us(lambda: [decode_observations(e) for e in encoded], count)
    print(f"codec: encode {encode_us:.2f} µs/obs, decode {decode_us:.2f} µs/obs, {size:.0f} B/obs")
    print(
        f"pickle: dumps {best_cpu_us(lambda: [pickle.dumps(c, 5) for c in chunks], count):.2f}"
        f" µs/obs, loads {best_cpu_us(lambda: [pickle.loads(p) for p in pickled], count):.2f}"  # noqa: S301 (our own bytes)
        f" µs/obs, {pickled_size:.0f} B/obs"
    )


async def until(condition: Callable[[], bool]) -> None:
    while True:
        if condition():
            return
        await asyncio.sleep(0.01)


async def feed(
    inbox: asyncio.Queue[list[Observation]], chunks: list[list[Observation]], rate: float
) -> tuple[float, int]:
    """Put the chunks as decode_stage does (dropping when full), paced; CPU seconds spent."""
    dropped = 0
    began = time.process_time()
    for chunk in chunks:
        try:
            inbox.put_nowait(chunk)
        except asyncio.QueueFull:
            dropped += len(chunk)
        await asyncio.sleep(len(chunk) / rate)
    await until(inbox.empty)
    return time.process_time() - began, dropped


async def baseline(chunks: list[list[Observation]], rate: float) -> float:
    inbox: asyncio.Queue[list[Observation]] = asyncio.Queue(256)

    async def discard() -> None:
        while True:
            await inbox.get()

    consumer = asyncio.create_task(discard())
    spent, _ = await feed(inbox, chunks, rate)
    consumer.cancel()
    return spent


def child_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def in_place(
    settings: Settings, chunks: list[list[Observation]], count: int, rate: float
) -> None:
    registry = CollectorRegistry()
    dropped = Counter("dropped", "Dropped.", registry=registry)
    published: list[str] = []
    rules = RulesProcess(
        settings,
        InfluxTarget(url="http://127.0.0.1:9", database="none", timeout_s=0.5),
        lambda topic, _payload: published.append(topic),
        registry,
        dropped,
    )
    inbox: asyncio.Queue[list[Observation]] = asyncio.Queue(settings.rules.queue_size)
    task = asyncio.create_task(rules.run(inbox))
    # The child is up once it has sent its first metrics.
    await until(lambda: registry.get_sample_value("luxtel_rules_observations_total") is not None)
    pid = rules.pid
    assert pid is not None
    child_before = child_cpu_s(pid)
    spent, queue_dropped = await feed(inbox, chunks, rate)
    handed = count - queue_dropped - int(registry.get_sample_value("dropped_total") or 0)
    await until(
        lambda: (registry.get_sample_value("luxtel_rules_observations_total") or 0) >= handed
    )
    child_spent = child_cpu_s(pid) - child_before
    empty = await baseline(chunks, rate)
    rules.close()
    await task
    print(
        f"hand-over in place: {(spent - empty) / count * 1e6:.2f} µs/obs of the parent's CPU"
        f" ({spent / count * 1e6:.2f} fed to the rules process, {empty / count * 1e6:.2f}"
        f" to a consumer that discards); child {child_spent / count * 1e6:.1f} µs/obs;"
        f" {count - handed} dropped; {len(published)} alert transitions published"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--chunk", type=int, default=50, help="Observations per inbox chunk.")
    parser.add_argument("--rate", type=float, default=3000.0, help="Observations per second.")
    args = parser.parse_args()
    begin = datetime(2026, 1, 5, tzinfo=datetime.now().astimezone().tzinfo)
    config = SimulationConfig(
        devices=args.devices,
        start=begin,
        end=begin + timedelta(hours=args.hours),
        faults=ALL_FAULTS,
        seed=1,
        connections="shared",
    )
    _, observations = observations_of(config)
    count = len(observations)
    chunks = [observations[i : i + args.chunk] for i in range(0, count, args.chunk)]
    print(f"{count} observations in chunks of {args.chunk}")
    codec(chunks, count)
    configure_logging("error")
    with tempfile.TemporaryDirectory() as work:
        inventory = Path(work) / "inventory.csv"
        assert config.end is not None
        write_inventory_csv(inventory, build_plan(config, now_ms=to_ms(config.end)).fleet)
        settings = Settings(
            state_dir=Path(work) / "state",
            rules=RulesSettings(path=DEFAULT_RULES),
            inventory=InventorySettings(path=inventory),
            log=LogSettings(level="error"),
        )
        asyncio.run(in_place(settings, chunks, count, args.rate))


if __name__ == "__main__":
    main()
