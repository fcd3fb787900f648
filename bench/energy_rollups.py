"""Energy at city scale: a month's report from hourly rollups, from raw readings, and InfluxDB's
own ``non_negative_difference`` query, in one run on our own InfluxDB; and what a luminaire-year
costs on disk, raw and rolled up.

    python bench/energy_rollups.py [--devices 3000] [--days 30] [--disk-devices 100] [--keep]

1. Writes ``--devices`` luminaires × ``--days`` days of 15-minute telemetry (the contract's nine
   fields, lit 18:00–06:00 UTC at 40 W dimmed to 70 %) from 2026-03-01, as fast as InfluxDB
   takes it (two writers, 10,000 lines a request).
2. ``luxtel energy rollup`` over the month (builds the rollups: a one-off for history).
3. ``luxtel energy report --by zone`` from rollups, then from raw readings (each a process of its
   own: wall time and CPU from ``wait4``, peak RSS from GNU ``time``), and InfluxDB's
   ``SELECT sum(d) FROM (SELECT non_negative_difference(energy_wh) …)`` over HTTP; the three
   totals side by side, and the energy dashboard's per-zone-per-day query on the rollups.
4. Disk: ``--disk-devices`` luminaires × 365 days into a database of their own, rolled up, then
   InfluxDB made to snapshot and fully compact (cold durations of seconds), and the shard
   directories of each retention policy measured: bytes per luminaire-year, raw and rolled up.

Not a test: nothing is asserted on time. Servers and data live in a temporary directory removed
at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from servers import InfluxDBServer, create_database, query  # noqa: E402

H = 3_600_000
Q = 15 * 60_000
START = datetime(2026, 3, 1, tzinfo=UTC)
LAST_CPU = [0.0]


class CompactingInfluxDB(InfluxDBServer):
    """Our InfluxDB with cold shards snapshotted and fully compacted within seconds, so the
    disk figure is what a long-running server holds, not a write-ahead log."""

    def config_text(self) -> str:
        text = super().config_text()
        marker = "  wal-dir = "
        extra = (
            '  cache-snapshot-write-cold-duration = "2s"\n'
            '  compact-full-write-cold-duration = "5s"\n'
        )
        return text.replace(marker, extra + marker, 1)


def inventory(path: Path, devices: int) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "device_id",
                "zone",
                "circuit",
                "lat",
                "lon",
                "rated_power_w",
                "baseline_power_w",
                "report_interval_s",
                "model",
                "installed_on",
            ]
        )
        for i in range(devices):
            writer.writerow(
                [
                    f"lum-{i:06d}",
                    f"z{i // 100:03d}",
                    f"c{i // 25:04d}",
                    51.5,
                    -0.1,
                    40,
                    100,
                    900,
                    "LX",
                    "",
                ]
            )


def day_lines(devices: int, day_start: int, energy: list[float], rng: random.Random) -> list[str]:
    """One day of every device: a reading every 15 min ± 60 s, noisy voltage, power and
    temperature (what a real fleet sends, so InfluxDB compresses it as it would theirs)."""
    out = []
    uniform = rng.random
    for i in range(devices):
        e = energy[i]
        zone = f"z{i // 100:03d}"
        device = f"lum-{i:06d}"
        offset = (i * 7919) % Q  # devices report at their own second of the quarter
        for k in range(96):
            t = day_start + k * Q + offset + int((uniform() - 0.5) * 120_000)
            hour = (t // H) % 24
            lit = hour >= 18 or hour < 6
            power = round(27.5 + uniform(), 2) if lit else 0.0
            voltage = round(228 + 6 * uniform(), 1)
            e += power / 4
            out.append(
                f"telemetry,device_id={device},zone={zone} lamp_on={'true' if lit else 'false'},"
                f"power_w={power},energy_wh={e:.3f},voltage_v={voltage},current_a="
                f"{round(power / voltage, 3)},power_factor={0.95 if lit else 0.0},"
                f"dim_pct={70 if lit else 0}i,driver_temp_c={round(30 + 15 * uniform(), 1)},"
                f"seq={k}i {t}"
            )
        energy[i] = e
    return out


async def write_days(url: str, db: str, devices: int, days: int, start_ms: int) -> int:
    energy = [1000.0 + i for i in range(devices)]
    rng = random.Random(f"{db}:{devices}")
    written = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        sem = asyncio.Semaphore(2)

        async def post(chunk: list[str]) -> None:
            async with sem:
                params = {"db": db, "precision": "ms"}
                async with session.post(
                    f"{url}/write", params=params, data="\n".join(chunk).encode()
                ) as response:
                    if response.status >= 300:
                        raise RuntimeError(await response.text())

        for day in range(days):
            lines = day_lines(devices, start_ms + day * 24 * H, energy, rng)
            await asyncio.gather(
                *(post(lines[i : i + 10_000]) for i in range(0, len(lines), 10_000))
            )
            written += len(lines)
    return written


def run(argv: list[str]) -> tuple[float, float, str]:
    """Run a command; (wall s, peak RSS MiB, stderr tail); its CPU s in ``LAST_CPU[0]``.

    The peak RSS is GNU time's ``%M`` of the command (``/usr/bin/time``): ``wait4``'s
    ``ru_maxrss`` of a child forked from this process can start at *this* process's RSS at the
    fork, and this one holds the data set it wrote: at 3,000 luminaires it said 180 MiB for every
    command, where ``/usr/bin/time`` measured the report at 96 MiB (87 of them imports)."""
    started = time.perf_counter()
    peak_file = Path(tempfile.mkstemp(prefix="luxtel-bench-rss-")[1])
    timed = ["/usr/bin/time", "-f", "%M", "-o", str(peak_file), *argv]
    gnu_time = Path("/usr/bin/time").exists()
    process = subprocess.Popen(
        timed if gnu_time else argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    err = process.stderr.read() if process.stderr else ""
    out = process.stdout.read() if process.stdout else ""
    if status != 0:
        raise RuntimeError(f"{argv} failed: {err}{out}")
    LAST_CPU[0] = usage.ru_utime + usage.ru_stime
    peak_kib = float(peak_file.read_text().split()[-1]) if gnu_time else usage.ru_maxrss
    peak_file.unlink()
    return wall, peak_kib / 1024, err.strip().splitlines()[-1] if err.strip() else ""


def total_kwh(path: Path) -> float:
    with path.open(newline="") as fh:
        return sum(float(row["metered_kwh"]) for row in csv.DictReader(fh))


def influx_counter_kwh(url: str, db: str, start_ms: int, end_ms: int) -> tuple[float, float]:
    """InfluxDB's own counter-correct total over ``[start_ms, end_ms)`` (``non_negative_difference``
    per device, summed: intervals inside the range only): seconds taken and kWh."""
    statement = (
        'SELECT sum("d") FROM (SELECT non_negative_difference("energy_wh") AS "d" '  # noqa: S608
        f'FROM "telemetry" WHERE time >= {start_ms}ms AND time < {end_ms}ms '
        'GROUP BY "device_id")'
    )
    t0 = time.perf_counter()
    answer = query(url, statement, db=db)
    wall = time.perf_counter() - t0
    return wall, answer["results"][0]["series"][0]["values"][0][1] / 1000


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def wait_compacted(server: InfluxDBServer, db: str, timeout: float = 180) -> None:
    """Until the database's WAL is empty and no shard has more than one generation of TSM."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wal = du(server.data_dir / "wal" / db)
        gens = [
            len(list(shard.glob("*.tsm")))
            for shard in (server.data_dir / "data" / db).glob("*/*")
            if shard.is_dir()
        ]
        if wal == 0 and gens and max(gens) <= 1:
            return
        time.sleep(2)
    print(
        f"  (not fully compacted after {timeout:.0f} s: wal {du(server.data_dir / 'wal' / db)} B)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=3000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--disk-devices", type=int, default=100)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="luxtel-energy-bench-"))
    server = CompactingInfluxDB(tmp / "influxdb")
    server.start()
    luxtel = [sys.executable, "-m", "luxtel"]
    results: dict[str, Any] = {"devices": args.devices, "days": args.days}
    try:
        db = "bench"
        create_database(server.url, db)
        inventory(tmp / "inventory.csv", args.devices)
        toml = tmp / "luxtel.toml"
        toml.write_text(
            f'[influx]\nurl = "{server.url}"\ndatabase = "{db}"\ntimeout_s = 600\n'
            f'[inventory]\npath = "{tmp / "inventory.csv"}"\n'
        )
        start_ms = int(START.timestamp() * 1000)
        end = datetime.fromtimestamp((start_ms + args.days * 24 * H) / 1000, UTC)
        period = ["--from", START.isoformat(), "--to", end.isoformat()]
        t0 = time.perf_counter()
        points = asyncio.run(write_days(server.url, db, args.devices, args.days, start_ms))
        wall = time.perf_counter() - t0
        print(
            f"raw written: {points:,} points in {wall:.1f} s ({points / wall:,.0f}/s)", flush=True
        )
        results["raw_points"] = points

        wall, rss, tail = run([*luxtel, "energy", "rollup", *period, "-c", str(toml)])
        cpu_us = LAST_CPU[0] / points * 1e6
        print(
            f"rollup build: {wall:.1f} s, peak RSS {rss:.0f} MiB, luxtel CPU {LAST_CPU[0]:.1f} s "
            f"= {cpu_us:.1f} µs a reading — {tail}"
        )
        results["rollup_build"] = {"s": wall, "rss_mib": rss, "cpu_us_per_reading": cpu_us}

        for source in ("rollups", "raw"):
            out = tmp / f"{source}.csv"
            wall, rss, tail = run(
                [
                    *luxtel,
                    "energy",
                    "report",
                    *period,
                    "--by",
                    "zone",
                    "--source",
                    source,
                    "-c",
                    str(toml),
                    "--format",
                    "csv",
                    "-o",
                    str(out),
                ]
            )
            kwh = total_kwh(out)
            print(
                f"report from {source}: {wall:.1f} s, peak RSS {rss:.0f} MiB, "
                f"CPU {LAST_CPU[0]:.1f} s, {kwh:,.3f} kWh"
            )
            results[f"report_{source}"] = {"s": wall, "rss_mib": rss, "kwh": kwh}
        same = (tmp / "rollups.csv").read_text() == (tmp / "raw.csv").read_text()
        print(f"  the two CSVs are {'identical' if same else 'DIFFERENT'}")
        results["identical"] = same

        end_ms = start_ms + args.days * 24 * H
        wall, kwh = influx_counter_kwh(server.url, db, start_ms, end_ms)
        print(f"InfluxDB non_negative_difference: {wall:.1f} s, {kwh:,.3f} kWh (intervals inside)")
        results["influx_query"] = {"s": wall, "kwh": kwh}

        dashboard = (
            'SELECT sum("metered_mwh") / 1000000 FROM "rollups"."energy_hourly" WHERE '  # noqa: S608
            f'time >= {start_ms}ms AND time < {end_ms}ms GROUP BY time(1d), "zone"'
        )
        t0 = time.perf_counter()
        query(server.url, dashboard, db=db)
        wall = time.perf_counter() - t0
        print(f"dashboard per-zone-per-day on rollups, {args.days} days: {wall:.2f} s")
        results["dashboard_query_s"] = wall

        if args.disk_devices:
            disk_db = "disk"
            create_database(server.url, disk_db)
            year_start = int(datetime(2025, 12, 1, tzinfo=UTC).timestamp() * 1000)
            t0 = time.perf_counter()
            asyncio.run(write_days(server.url, disk_db, args.disk_devices, 365, year_start))
            print(
                f"disk sample: {args.disk_devices} luminaire-years written in "
                f"{time.perf_counter() - t0:.1f} s"
            )
            (tmp / "disk.toml").write_text(
                toml.read_text().replace(f'database = "{db}"', f'database = "{disk_db}"')
            )
            inventory(tmp / "inventory.csv", args.disk_devices)
            year_end = datetime.fromtimestamp((year_start + 365 * 24 * H) / 1000, UTC)
            run(
                [
                    *luxtel,
                    "energy",
                    "rollup",
                    "--from",
                    datetime.fromtimestamp(year_start / 1000, UTC).isoformat(),
                    "--to",
                    year_end.isoformat(),
                    "-c",
                    str(tmp / "disk.toml"),
                ]
            )
            wait_compacted(server, disk_db)
            raw_b = du(server.data_dir / "data" / disk_db / "autogen")
            roll_b = du(server.data_dir / "data" / disk_db / "rollups")
            per_raw, per_roll = raw_b / args.disk_devices, roll_b / args.disk_devices
            print(
                f"disk per luminaire-year: raw {per_raw / 1024:,.0f} KiB "
                f"({per_raw / (96 * 365):.2f} B a reading), rollups {per_roll / 1024:,.0f} KiB "
                f"({per_roll / 8760:.2f} B an hour)"
            )
            results["disk_bytes_per_luminaire_year"] = {"raw": per_raw, "rollups": per_roll}
        print(json.dumps(results))
    finally:
        server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
