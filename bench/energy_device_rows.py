"""How InfluxDB 1.x answers one figure per luminaire: summed per series or read as plain rows.

    python bench/energy_device_rows.py [--devices 100000] [--repeat 2]

Writes one ``energy_monthly`` point per luminaire (the shape ``energy.rollup_months`` keeps:
tags ``device_id``, ``zone``, ``circuit``; 17 fields) into our own InfluxDB, compacts it, then
times, alternately, the same month read four ways through a chunked ``/query`` (the answer
parsed with orjson, as ``energy.queries.stream`` does):

- ``sum(…) … GROUP BY "device_id"`` (how per-luminaire levels were read: one series answered
  per luminaire);
- ``SELECT "device_id", "zone", "circuit", <fields>`` without ``GROUP BY`` (the tags as columns:
  one series answered; what ``energy.rollup_months.take`` runs);
- ``count(…)`` and ``count(…) … GROUP BY time(1h)`` over the same points (a completeness check).

Not a test: nothing is asserted on time. The server's data lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.energy_city import START, city, write  # noqa: E402
from bench.energy_rollups import CompactingInfluxDB, wait_compacted  # noqa: E402
from energy.rollup_months import MONTH_MEASUREMENT, READ  # noqa: E402
from servers import create_database, query  # noqa: E402

DAY = 86_400_000


def lines(devices: int, month_ms: int) -> Iterator[str]:
    for i, lum in enumerate(city(devices, 1000)):
        v = 800_000 + i
        yield (
            f"{MONTH_MEASUREMENT},circuit={lum.circuit},device_id={lum.device_id},zone={lum.zone} "
            f"readings=2976i,expected=2976.0,metered_mwh={v}i,counter_mwh={v}i,power_mwh=0i,"
            f"verified_mwh={v}i,burning_ms=1339200000i,dim_pct_ms=93744000000i,"
            f"baseline_mwh=37200i,baseline_rest=0i,flagged=0i,resets=0i,via_counter=1i,"
            f"via_power=0i,hours=744i,days=31i {month_ms}"
        )


async def timed_query(url: str, db: str, statement: str) -> tuple[float, int]:
    """(seconds, rows answered) of one chunked query, its answer parsed."""
    rows = 0
    params = {"db": db, "q": statement, "epoch": "ms", "chunked": "true", "chunk_size": "10000"}
    async with aiohttp.ClientSession() as session:
        t0 = time.perf_counter()
        async with session.get(f"{url}/query", params=params) as response:
            buffer = b""
            async for block in response.content.iter_chunked(1 << 16):
                buffer += block
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    if not line.strip():
                        continue
                    for result in orjson.loads(line).get("results", []):
                        if "error" in result:
                            raise RuntimeError(result["error"])
                        rows += sum(len(s["values"]) for s in result.get("series", []))
        return time.perf_counter() - t0, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="luxtel-device-rows-"))
    server = CompactingInfluxDB(tmp / "influxdb")
    server.start()
    try:
        db = "city"
        create_database(server.url, db)
        query(
            server.url,
            f"CREATE RETENTION POLICY rollups ON {db} DURATION INF REPLICATION 1 "
            "SHARD DURATION 364d",
        )
        month_ms = int(START.timestamp() * 1000)
        t0 = time.perf_counter()
        written = asyncio.run(write(server.url, db, "rollups", lines(args.devices, month_ms)))
        print(f"written: {written:,} points in {time.perf_counter() - t0:.1f} s", flush=True)
        wait_compacted(server, db, timeout=90)
        where = f"time >= {month_ms}ms AND time < {month_ms + 31 * DAY}ms"
        source = f'"rollups"."{MONTH_MEASUREMENT}"'
        sums = ", ".join(f'sum("{f}") AS "{f}"' for f in READ)
        plain = ", ".join(f'"{f}"' for f in ("device_id", "zone", "circuit", *READ))
        statements = {
            "sum GROUP BY device_id": f'SELECT {sums} FROM {source} WHERE {where} GROUP BY "device_id"',  # noqa: E501, S608
            "plain rows, tags as columns": f"SELECT {plain} FROM {source} WHERE {where}",  # noqa: S608
            "count": f'SELECT count("burning_ms") FROM {source} WHERE {where}',  # noqa: S608
            "count GROUP BY time(1h)": f'SELECT count("burning_ms") FROM {source} WHERE {where} '  # noqa: S608
            "GROUP BY time(1h)",
        }
        for _ in range(args.repeat):
            for name, statement in statements.items():
                wall, rows = asyncio.run(timed_query(server.url, db, statement))
                print(f"{name}: {wall:.2f} s, {rows:,} rows", flush=True)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
