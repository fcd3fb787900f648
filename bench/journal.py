"""What the rules' journal costs, per observation: `python bench/journal.py`.

    python bench/journal.py [--devices 200] [--hours 24] [--batch 5000] [--batches 40] [--dir D]

A simulated fleet's messages (every fault kind) are decoded by the real decoder as `luxtel run`
decodes them with the rules on (`Limits(observe=True, hand_over=True)`: a reading its fast path
checked is handed over as the journal entry the C module wrote, JSON bytes); then, in batches
of `--batch` observations (the sink's batch, `ingest.batch_size`, default 5000):

- build: what decoding the messages costs more, in CPU per observation, than decoding them with
  the rules off (each pass decodes every message once, with fresh limits; best of three);
- encode: `rules.runtime.journal.encode_record` (what the parent pays in CPU per observation);
- append: `JournalWriter.append` of each batch — encode, write, fsync (one per batch) — wall
  and CPU time per observation, on `--dir` (default: a temporary directory under the state
  directory's usual disk, the current directory);
- read: `JournalReader.read` and reading the records as the rules process does (`Record.chunk`:
  as columns, `rules.runtime.journal_rows`; what it pays per observation before evaluating).

CPU time is the process's (`time.process_time`), so other processes on a shared machine count
less; the append's wall time includes the fsync, which depends on the disk. The garbage
collector is set as in `luxtel run` and its rules process (`common.gc_settings`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rules_score import ALL_FAULTS
from common.gc_settings import tune_for_ingest
from ingest.decode import Decoded, Limits, decode_into
from models import Handed
from models.timestamps import epoch_ms
from rules.runtime.channel import handed_count
from rules.runtime.journal import START, encode_record
from rules.runtime.journal_reader import JournalReader
from rules.runtime.journal_writer import JournalWriter
from simulator import SimulationConfig, build_plan
from simulator.clock import from_ms, to_ms
from simulator.schedule import Publish

Message = tuple[str, bytes, datetime]


def messages_of(config: SimulationConfig) -> list[Message]:
    """The simulated fleet's messages: topic, payload, receive time (its publish time)."""
    assert config.end is not None
    plan = build_plan(config, now_ms=to_ms(config.end))
    return [
        (event.topic, event.payload, from_ms(event.t_ms))
        for event in plan.schedule.events()
        if isinstance(event, Publish)
    ]


CHUNK = 64
"""Messages decoded into one `Decoded`, as `luxtel run` decodes a chunk read from the socket at
once (its fast path's journal entries then go to one run per chunk, not one run of them all)."""


def decode_all(messages: list[Message], topic_root: str, rules: bool) -> tuple[float, list[Handed]]:
    """CPU seconds to decode every message as `luxtel run` does (rules on or off), in chunks of
    `CHUNK`, and what it handed over."""
    limits = Limits(topic_root=topic_root, max_clock_skew_s=1e9, observe=rules, hand_over=rules)
    handed: list[Handed] = []
    began = time.process_time()
    for start in range(0, len(messages), CHUNK):
        out = Decoded()
        for topic, payload, received_at in messages[start : start + CHUNK]:
            decode_into(out, topic, payload, received_at, epoch_ms(received_at), limits)
        handed += out.handed
    return time.process_time() - began, handed


def batches_of(
    messages: list[Message], topic_root: str, size: int, count: int
) -> list[list[Handed]]:
    """`count` batches of the messages' observations as the decoder hands them over (its
    fast path's entries in runs, one a chunk), at least `size` each, whole chunks, cycling
    through them."""
    out: list[list[Handed]] = []
    limits = Limits(topic_root=topic_root, max_clock_skew_s=1e9, observe=True, hand_over=True)
    batch: list[Handed] = []
    while len(out) < count:
        for start in range(0, len(messages), CHUNK):
            decoded = Decoded()
            for topic, payload, received_at in messages[start : start + CHUNK]:
                decode_into(decoded, topic, payload, received_at, epoch_ms(received_at), limits)
            batch += decoded.handed
            if handed_count(batch) >= size:
                out.append(batch)
                batch = []
                if len(out) == count:
                    break
    return out


async def append_all(journal: JournalWriter, batches: list[list[Handed]]) -> None:
    for batch in batches:
        await journal.append(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    args = parser.parse_args()

    begin = datetime(2026, 1, 5, tzinfo=UTC)
    config = SimulationConfig(
        devices=args.devices,
        start=begin,
        end=begin + timedelta(hours=args.hours),
        faults=ALL_FAULTS,
        seed=1,
        connections="shared",
    )
    messages = messages_of(config)
    tune_for_ingest()
    off = min(decode_all(messages, config.topic_root, False)[0] for _ in range(3))
    on = [decode_all(messages, config.topic_root, True) for _ in range(3)]
    build_us = (min(cpu for cpu, _ in on) - off) / handed_count(on[0][1]) * 1e6
    batches = batches_of(messages, config.topic_root, args.batch, args.batches)
    total = sum(handed_count(b) for b in batches)

    began = time.process_time()
    sizes = [len(encode_record(batch, 0, 0.0)) for batch in batches]
    encode_cpu = time.process_time() - began

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="journal-bench-") as directory:
        journal = JournalWriter(Path(directory), 1 << 40)
        wall, cpu = time.perf_counter(), time.process_time()
        asyncio.run(append_all(journal, batches))
        append_wall, append_cpu = time.perf_counter() - wall, time.process_time() - cpu
        journal.close()

        cpu = time.process_time()
        reader = JournalReader(Path(directory), START)
        read = 0
        while records := reader.read(journal.end.offset):
            read += sum(len(record.chunk()) for record in records)
        read_cpu = time.process_time() - cpu
    assert read == total, (read, total)

    def us(seconds: float) -> str:
        return f"{seconds / total * 1e6:.2f} µs"

    print(
        f"{total:,} observations in {len(batches)} batches of {args.batch}, "
        f"{sum(sizes) / total:.0f} bytes each in the journal"
    )
    print(f"build, in the decoder (CPU):   {build_us:.2f} µs per observation")
    print(f"encode (CPU):                  {us(encode_cpu)} per observation")
    print(
        f"append: encode, write, fsync:  {us(append_cpu)} CPU, {us(append_wall)} wall per "
        f"observation ({append_wall / len(batches) * 1e3:.1f} ms wall per batch)"
    )
    print(f"read and decode (CPU):         {us(read_cpu)} per observation")


if __name__ == "__main__":
    main()
