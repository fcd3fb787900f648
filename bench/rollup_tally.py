"""The rollup tally's own CPU in process, at a city's size: feeding it the sink's lines, and
closing an hour into write bodies (``energy.tally``, C ``energy.hour_tally``).

    python bench/rollup_tally.py [--devices 25000] [--per-hour 4] [--hours 2] [--rounds 5]

`--devices` luminaires each report `--per-hour` readings an hour (a city's 15-minute cadence: 4)
for `--hours` hours, every field `bench/publish.py` sends, in the sink's line shape
(`influx.line_protocol.encode_reading`), fed in the sink's batches of 5,000 lines in time order,
each batch just after joining it into a write body as the sink does;
then each hour is closed into write bodies (`RollupTally.bodies`, as `energy.upkeep` does). CPU
time (`time.process_time`) per reading fed and per device-hour closed, each round on a fresh
tally; the median and each of `--rounds`. No InfluxDB: the write is not counted (in
`luxtel run` it is the close's other half, `bench/ingest.py --only luxtel,luxtel-rollups`).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from energy.counters import MS_PER_H
from energy.inventory import Luminaire
from energy.rollup_store import WRITE_BATCH
from energy.tally import RollupTally
from influx.line_protocol import encode_reading
from models.reading import Reading

SINK_BATCH = 5000
HOUR0 = 1_764_892_800_000
"""2025-12-05 00:00 UTC: the first hour of readings."""


def fleet(devices: int, per_hour: int) -> dict[str, Luminaire]:
    return {
        f"lum-{i:06d}": Luminaire(
            f"lum-{i:06d}",
            f"zone-{i // 100:03d}",
            f"zone-{i // 100:03d}-c{i % 100 // 25}",
            137.5,
            3600 // per_hour,
        )
        for i in range(devices)
    }


def lines(inventory: dict[str, Luminaire], per_hour: int, hours: int) -> list[str]:
    """Every reading, in time order: device i's k-th reading at HOUR0 + k * step + i ms."""
    rng = random.Random(16)
    step = MS_PER_H // per_hour
    energy = {d: round(rng.uniform(50_000, 900_000), 1) for d in inventory}
    out = []
    for k in range(-1, per_hour * hours + 1):
        for i, (device, lum) in enumerate(inventory.items()):
            power = round(55.0 * rng.uniform(0.95, 1.03), 2)
            energy[device] = round(energy[device] + power * step / MS_PER_H, 3)
            reading = Reading(
                lamp_on=True,
                power_w=power,
                energy_wh=energy[device],
                voltage_v=round(rng.gauss(231.0, 2.5), 1),
                current_a=round(power / 220, 4),
                power_factor=round(rng.uniform(0.90, 0.99), 3),
                dim_pct=rng.choice((100, 100, 80, 70, 50)),
                driver_temp_c=round(rng.uniform(28.0, 58.0), 1),
                lux=round(rng.uniform(0.0, 12.0), 1),
                seq=k + 2,
            )
            out.append(encode_reading(lum.zone, device, reading, HOUR0 + k * step + i))
    return out


def one_round(
    inventory: dict[str, Luminaire], text: list[str], hours: int
) -> tuple[float, float, int]:
    """CPU seconds feeding, CPU seconds closing, bytes of bodies."""
    tally = RollupTally(
        inventory,
        gap_factor=1.5,
        max_interval_ms=12 * MS_PER_H,
        started_ms=HOUR0 - 3 * MS_PER_H,
        closed_ms=HOUR0 - MS_PER_H,
        max_bytes=1 << 30,
    )
    tally.history(None)
    fed = 0.0
    for i in range(0, len(text), SINK_BATCH):
        batch = text[i : i + SINK_BATCH]
        "\n".join(batch).encode()  # the sink's write body: the lines are fed warm, as in luxtel
        started = time.process_time()
        tally.feed(batch)
        fed += time.process_time() - started
    tally.close(HOUR0)  # the hour of each device's first reading
    size = 0
    started = time.process_time()
    for h in range(HOUR0, HOUR0 + hours * MS_PER_H, MS_PER_H):
        assert tally.vouches(h), h
        size += sum(len(body) for body in tally.bodies(h, WRITE_BATCH))
        tally.close(h + MS_PER_H)
    closed = time.process_time() - started
    return fed, closed, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=25_000)
    parser.add_argument("--per-hour", type=int, default=4)
    parser.add_argument("--hours", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    inventory = fleet(args.devices, args.per_hour)
    text = lines(inventory, args.per_hour, args.hours)
    feeds, closes = [], []
    size = 0
    for _ in range(args.rounds):
        fed, closed, size = one_round(inventory, text, args.hours)
        feeds.append(fed / len(text) * 1e6)
        closes.append(closed / (args.devices * args.hours) * 1e6)
    device_hours = args.devices * args.hours
    print(
        f"{args.devices:,} devices, {args.per_hour} readings a device-hour, {len(text):,} lines "
        f"({sum(map(len, text)) / len(text):.0f} bytes each), {device_hours:,} device-hours "
        f"closed ({size / device_hours:.0f} bytes each)"
    )
    print(
        f"feed   µs a reading:     {statistics.median(feeds):.3f} "
        f"({', '.join(f'{x:.3f}' for x in feeds)})"
    )
    print(
        f"close  µs a device-hour: {statistics.median(closes):.3f} "
        f"({', '.join(f'{x:.3f}' for x in closes)}); a reading: "
        f"{statistics.median(closes) / args.per_hour:.3f}"
    )


if __name__ == "__main__":
    main()
