"""Energy for a whole city: a month's report and a year of the dashboard from the rollup levels,
at 100,000 luminaires, on our own InfluxDB; the raw path beside it at a scale that fits.

    python bench/energy_city.py [--devices 100000] [--zone-size 1000] [--small-devices 200]
        [--device-rollups] [--monthly] [--raw-edges] [--silent N] [--around both|before|none]
        [--short-min N] [--stopped] [--before DIR] [--dashboard-only] [--keep]

The raw path at 100,000 luminaires is 288 M points a month, out of reach of this machine, so the
city's data set is the rollups themselves, written as fast as InfluxDB takes them (synthetic
figures: lit 18:00–06:00 UTC at ~28 W; 25 luminaires a circuit, ``--zone-size`` a zone):

1. The levels a report by zone, circuit, day or month reads: ``energy_group_daily`` for the 30
   days of March 2026, ``energy_group_hourly`` for the first and last day and the hour on either
   side of the month (whose ``reporting`` lets the report read no raw hour at all), and
   ``energy_zone_daily`` for the dashboard. By default written directly (``group_lines``: what
   luxtel's INTO statements compute from the per-luminaire points ``hour_rollup`` makes; checked
   against the INTO path at 2,000 luminaires: the same kWh). ``--device-rollups`` writes the
   per-luminaire points instead (``energy_daily`` via ``energy.rollup.day_line`` for 30 days,
   ``energy_hourly`` via ``energy.rollup.line`` for those hours) and computes the group levels
   from them with luxtel's own ``into_statement`` (what ``build`` runs); needed for ``--by
   device`` over 30 days; ~6 min at 20,000 luminaires, well over 6 at 100,000 (stopped there).
   ``--monthly`` makes the month the civil month (March 2026, 31 days) and writes only what a
   report ``--by device`` of it reads besides the group hours around it: each luminaire's
   ``energy_monthly`` point (``month_lines``: what ``energy.rollup_months.into_statement``
   computes from the daily points ``daily_lines`` makes, compared point for point with that
   INTO at 500 luminaires in the same run), 100,000 points in ~20 s; with ``--device-rollups``
   the daily points are written instead and the monthly ones computed by that INTO (timed).
   ``--raw-edges`` adds raw telemetry for 3 h at each end. ``--silent N`` then makes N
   luminaires (in N groups) silent in the hours around the month (their groups' hours say so,
   the groups' members get their own hourly points there, the silent ones raw telemetry near
   the ends) and runs the reports again: only those N are read raw at the edges.
2. ``luxtel energy report`` for the month ``--by zone`` and ``--by circuit`` (and ``--by device``
   with ``--device-rollups``), each a process of its own (wall time; peak RSS by GNU
   ``/usr/bin/time``). ``--before DIR``: each report also run with the luxtel of another source
   tree (e.g. ``git archive`` of the commit before, with the built C modules copied in),
   alternately, before then after, on the same data.
3. The dashboard's per-zone-per-day panel query over a year, every zone selected (the zone
   variable's "All", and every zone listed as Grafana's regex), and its savings query, as
   Grafana asks them (``epoch=ms``): the month's ``energy_zone_daily`` and the other 335 days
   written directly (copies of it). ``--dashboard-only`` writes only that year (all 365 days
   from ``group_lines``) and runs only these queries.
4. At ``--small-devices`` luminaires × 30 days of raw 15-minute telemetry
   (``bench/energy_rollups.py``'s writer), in the same run: ``luxtel energy rollup`` (the real
   build, group levels included), the report ``--by zone`` from rollups and from raw readings
   (CSVs compared byte for byte), and InfluxDB's own ``non_negative_difference`` query.

Not a test: nothing is asserted on time. Servers and data live in a temporary directory removed
at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.request import urlopen

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.energy_rollups import (  # noqa: E402
    LAST_CPU,
    CompactingInfluxDB,
    influx_counter_kwh,
    run,
    total_kwh,
    wait_compacted,
    write_days,
)
from bench.energy_rollups import inventory as small_inventory  # noqa: E402
from dashboards.build import build_dashboards  # noqa: E402
from dashboards.interpolate import TimeRange, Variable, interpolate  # noqa: E402
from energy.inventory import Luminaire  # noqa: E402
from energy.rollup import DAY_SUMMED, Rollup, day_line, integer, inventory_crc, line  # noqa: E402
from energy.rollup_groups import GROUP_DAILY, GROUP_HOURLY, ZONE_DAILY, into_statement  # noqa: E402
from energy.rollup_months import MONTH_MEASUREMENT  # noqa: E402
from energy.rollup_months import into_statement as month_into_statement  # noqa: E402
from servers import create_database, query  # noqa: E402

H = 3_600_000
Q = 15 * 60_000
DAY = 24 * H
START = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 30
RP = "rollups"
INTEGERS = (
    frozenset(
        ("readings", "flagged", "resets", "via_counter", "via_power", "hours", "inventory_crc")
    )
    | {"luminaires", "metered_mwh", "counter_mwh", "power_mwh", "verified_mwh", "burning_ms"}
    | {
        "dim_pct_ms",
        "baseline_mwh",
        "baseline_rest",
    }
)


def city(devices: int, zone_size: int) -> list[Luminaire]:
    return [
        Luminaire(
            device_id=f"lum-{i:06d}",
            zone=f"z{i // zone_size:04d}",
            circuit=f"c{i // 25:05d}",
            baseline_power_w=100,
            report_interval_s=900,
        )
        for i in range(devices)
    ]


def write_inventory(path: Path, lums: list[Luminaire]) -> None:
    head = "device_id,zone,circuit,lat,lon,rated_power_w,baseline_power_w,report_interval_s,model,installed_on\n"  # noqa: E501
    with path.open("w") as fh:
        fh.write(head)
        for lum in lums:
            fh.write(f"{lum.device_id},{lum.zone},{lum.circuit},51.5,-0.1,40,100,900,LX,\n")


def _lit(t_ms: int) -> bool:
    hour = (t_ms // H) % 24
    return hour >= 18 or hour < 6


def hour_rollup(lum: Luminaire, i: int, hour_ms: int) -> Rollup:
    lit = _lit(hour_ms)
    mwh = 27_500 + (i % 10) * 100 if lit else 0
    return Rollup(
        lum.device_id,
        lum.zone,
        lum.circuit,
        hour_ms,
        4,
        4.0,
        mwh,
        0,
        mwh,
        H if lit else 0,
        70 * H if lit else 0,
        100_000 * H if lit else 0,
        0,
        0,
        "counter",
        inventory_crc(lum),
    )


def hourly_lines(lums: list[Luminaire], hours: list[int]) -> Iterator[str]:
    for hour in hours:
        for i, lum in enumerate(lums):
            yield line(hour_rollup(lum, i, hour))


def day_sums(lum: Luminaire, i: int, day: int) -> dict[str, object]:
    """What ``build_days`` sums of the luminaire's hourly points ``hour_rollup`` makes over one
    day (``energy.rollup.day_line``'s input)."""
    rows = [hour_rollup(lum, i, h) for h in range(day, day + DAY, 6 * H)]  # 4 kinds
    sums: dict[str, object] = {
        "readings": 96,
        "expected": 96.0,
        "hours": 24,
        "via_counter": 1,
        "via_power": 0,
        "flagged": 0,
        "resets": 0,
        "crc_lo": inventory_crc(lum),
        "crc_hi": inventory_crc(lum),
    }
    for name in FIGURES:
        sums[name] = 6 * sum(getattr(r, name) for r in rows)
    sums["metered_mwh"] = sums["counter_mwh"]
    baseline = 6 * sum(r.baseline_mw_ms for r in rows)
    sums["baseline_mwh"], sums["baseline_rest"] = divmod(baseline, H)
    return sums


def daily_lines(lums: list[Luminaire], days: list[int]) -> Iterator[str]:
    for day in days:
        for i, lum in enumerate(lums):
            yield day_line(lum, day, day_sums(lum, i, day))


def month_lines(lums: list[Luminaire], month_ms: int, days: int) -> Iterator[str]:
    """Each luminaire's ``energy_monthly`` point of ``days`` days from ``month_ms``: what
    ``energy.rollup_months.into_statement`` computes from the daily points ``daily_lines``
    makes (sums of ``DAY_SUMMED``, max of the methods, Σ hours, days counted; checked against
    the INTO path by ``check_month_lines``)."""
    for i, lum in enumerate(lums):
        day = day_sums(lum, i, month_ms)
        fields = [
            f"{name}={days * integer(day, name)}i" for name in DAY_SUMMED if name != "expected"
        ]
        fields.append(f"expected={float(days * 96)!r}")
        fields += [f"via_counter={day['via_counter']}i", f"via_power={day['via_power']}i"]
        fields += [f"hours={24 * days}i", f"days={days}i"]
        tags = f"circuit={lum.circuit},device_id={lum.device_id},zone={lum.zone}"
        yield f"{MONTH_MEASUREMENT},{tags} {','.join(fields)} {month_ms}"


def check_month_lines(url: str, devices: int, month_ms: int, days: int) -> int:
    """Write ``devices`` luminaires' daily points of a month into a database of their own,
    compute their monthly points with luxtel's INTO, and compare them with ``month_lines``;
    returns the points compared (raises when any differs)."""
    db = "monthcheck"
    create_database(url, db)
    query(url, f"CREATE RETENTION POLICY {RP} ON {db} DURATION INF REPLICATION 1")
    lums = city(devices, 100)
    asyncio.run(write(url, db, RP, daily_lines(lums, [month_ms + d * DAY for d in range(days)])))
    post_query(url, db, month_into_statement(RP, month_ms, month_ms + days * DAY))
    answer = query(url, f'SELECT * FROM "{RP}"."{MONTH_MEASUREMENT}"', db=db, epoch="ms")  # noqa: S608
    series = answer["results"][0]["series"][0]
    got = {}
    for values in series["values"]:
        row = dict(zip(series["columns"], values, strict=True))
        got[row.pop("device_id")] = row
    expected = {}
    for text in month_lines(lums, month_ms, days):
        head, fields, t = text.split(" ")
        tags = dict(kv.split("=") for kv in head.split(",")[1:])
        row = {"time": int(t), "zone": tags["zone"], "circuit": tags["circuit"]}
        for kv in fields.split(","):
            k, v = kv.split("=")
            row[k] = int(v[:-1]) if v.endswith("i") else float(v)
        expected[tags["device_id"]] = row
    if got != expected:
        some = next(d for d in expected if got.get(d) != expected[d])
        raise RuntimeError(
            f"month_lines differ from INTO for {some}: {got.get(some)} vs {expected[some]}"
        )
    query(url, f"DROP DATABASE {db}")
    return len(got)


FIGURES = ("counter_mwh", "power_mwh", "verified_mwh", "burning_ms", "dim_pct_ms")
"""The integer figures of a rollup summed by the levels (beside the baseline)."""


def group_lines(
    lums: list[Luminaire],
    times: list[int],
    measurement: str,
    span_h: int,
    silent: frozenset[str] = frozenset(),
    flagged: frozenset[str] = frozenset(),
) -> Iterator[str]:
    """Per (zone, circuit) (or per zone) points of ``span_h`` hours each, holding what
    ``into_statement`` computes from the per-luminaire points ``hour_rollup`` makes (sums, max
    of the methods, ``luminaires``, daily ``hours``, hourly ``reporting``: every member but the
    ``silent`` ones; ``flagged``: the members whose hour is flagged)."""
    per_zone = measurement == ZONE_DAILY
    groups: dict[tuple[str, ...], list[tuple[int, Luminaire]]] = {}
    for i, lum in enumerate(lums):
        key: tuple[str, ...] = (lum.zone,) if per_zone else (lum.zone, lum.circuit)
        groups.setdefault(key, []).append((i, lum))
    sums: dict[tuple[tuple[str, ...], bool], dict[str, int]] = {}
    for key, members in groups.items():
        for lit_hour in (18 * H, 12 * H):
            total: dict[str, int] = {}
            for i, lum in members:
                row = hour_rollup(lum, i, lit_hour)
                for name in FIGURES:
                    total[name] = total.get(name, 0) + getattr(row, name)
                whole, rest = divmod(row.baseline_mw_ms, H)
                total["baseline_mwh"] = total.get("baseline_mwh", 0) + whole
                total["baseline_rest"] = total.get("baseline_rest", 0) + rest
                total["crc"] = total.get("crc", 0) + row.inventory_crc
            sums[(key, lit_hour == 18 * H)] = total
    for t in times:
        for key, members in groups.items():
            n = len(members)
            if span_h == 1:
                part, lit_h = sums[(key, _lit(t))], 1
                values = {name: part[name] for name in part if name != "crc"}
            else:
                lit, dark = sums[(key, True)], sums[(key, False)]
                values = {name: 12 * lit[name] + 12 * dark[name] for name in lit if name != "crc"}
                part, lit_h = lit, 24
            values["metered_mwh"] = values["counter_mwh"]
            fields = ",".join(f"{k}={v}i" for k, v in values.items())
            ints = {
                "readings": 4 * span_h * n,
                "flagged": sum(lum.device_id in flagged for _, lum in members),
                "resets": 0,
                "inventory_crc": int(part["crc"]),
                "via_counter": 1,
                "via_power": 0,
                "luminaires": n,
            }
            if span_h > 1:
                ints["hours"] = lit_h * n
            else:
                ints["reporting"] = n - sum(lum.device_id in silent for _, lum in members)
            fields += "," + ",".join(f"{k}={v}i" for k, v in ints.items())
            fields += f",expected={float(4 * span_h * n)!r}"
            tags = ",".join(f"{k}={v}" for k, v in zip(("zone", "circuit"), key, strict=False))
            yield f"{measurement},{tags} {fields} {t}"


def silent_lines(
    lums: list[Luminaire], silent: list[int], start_ms: int, end_ms: int, *, raw: bool
) -> Iterator[str]:
    """What the rollups and telemetry hold when the luminaires at indexes ``silent`` did not
    report in the hour before the month nor the hour after it (and started 10 min into it, and
    stopped 10 min before its end): their groups' hourly points there say so (``reporting``),
    and so do those of the month's first and last hours (``flagged``: the 10 min without
    readings); their groups' members have their own hourly points in those hours and the
    month's first and last (``raw`` false: points of the rollup policy), and the silent ones
    have raw telemetry near the month's ends (``raw`` true)."""
    if raw:
        for i in silent:
            yield from raw_lines([lums[i]], start_ms + 10 * 60_000, start_ms + 2 * H, i)
            yield from raw_lines([lums[i]], end_ms - 2 * H, end_ms - 10 * 60_000, i)
        return
    quiet = frozenset(lums[i].device_id for i in silent)
    groups = {(lums[i].zone, lums[i].circuit) for i in silent}
    touched = [(i, lum) for i, lum in enumerate(lums) if (lum.zone, lum.circuit) in groups]
    outside, inside = (start_ms - H, end_ms), (start_ms, end_ms - H)
    members = [lum for _, lum in touched]
    yield from group_lines(members, list(outside), GROUP_HOURLY, 1, quiet)
    yield from group_lines(members, list(inside), GROUP_HOURLY, 1, flagged=quiet)
    for hour in (start_ms - H, start_ms, end_ms - H, end_ms):
        for i, lum in touched:
            row = hour_rollup(lum, i, hour)
            if hour in outside and lum.device_id in quiet:
                row = replace(row, readings=0)  # reported=0
            if hour in inside and lum.device_id in quiet:
                row = replace(row, flagged=1)  # 10 min without readings
            yield line(row)


def _lit_ms(t_ms: int) -> int:
    """Lit time (18:00-06:00 UTC) from the epoch to ``t_ms``."""
    days, rest = divmod(t_ms, DAY)
    return days * 12 * H + min(rest, 6 * H) + max(0, rest - 18 * H)


def raw_lines(lums: list[Luminaire], start_ms: int, end_ms: int, base: int = 0) -> Iterator[str]:
    """Raw telemetry every 15 min (each luminaire at its own offset) whose counter grows at the
    lit power ``hour_rollup`` says (``base``: the index of the first of ``lums`` in the city), so
    a whole lit hour read raw gives its rollup's figures."""
    for k, lum in enumerate(lums):
        i = base + k
        offset = (i * 7919) % Q
        rate = 27.5 + (i % 10) / 10
        for t in range(start_ms - start_ms % Q + offset, end_ms, Q):
            if t < start_ms:
                continue
            lit = _lit(t)
            power = rate if lit else 0.0
            energy = 1000.0 + i + rate * _lit_ms(t) / H
            yield (
                f"telemetry,device_id={lum.device_id},zone={lum.zone} "
                f"lamp_on={'true' if lit else 'false'},power_w={power},energy_wh={energy:.3f},"
                f"dim_pct={70 if lit else 0}i {t}"
            )


async def write(
    url: str, db: str, rp: str | None, lines: Iterator[str], batch: int = 10_000
) -> int:
    """Post ``lines`` in batches, two requests in flight; returns the points written."""
    params = {"db": db, "precision": "ms", **({"rp": rp} if rp else {})}
    written = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        pending: set[asyncio.Task[None]] = set()

        async def post(chunk: list[str]) -> None:
            body = "\n".join(chunk).encode()
            for attempt in range(5):  # a write is idempotent: the same points again
                try:
                    async with session.post(f"{url}/write", params=params, data=body) as response:
                        if response.status < 300:
                            return
                        text = await response.text()
                        if response.status < 500 or attempt == 4:
                            raise RuntimeError(text)
                except aiohttp.ServerDisconnectedError:
                    if attempt == 4:
                        raise
                await asyncio.sleep(2)  # InfluxDB busy (a write timed out, it hung up): again

        chunk: list[str] = []
        for text in lines:
            chunk.append(text)
            if len(chunk) == batch:
                if len(pending) >= 2:
                    done, pending = await asyncio.wait(pending, return_when="FIRST_COMPLETED")
                    for task in done:
                        task.result()
                pending.add(asyncio.create_task(post(chunk)))
                written += len(chunk)
                chunk = []
        if chunk:
            pending.add(asyncio.create_task(post(chunk)))
            written += len(chunk)
        for task in pending:
            await task
    return written


def post_query(url: str, db: str, statement: str) -> None:
    async def go() -> None:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1800)) as session,
            session.post(f"{url}/query", params={"db": db, "q": statement}) as response,
        ):
            text = await response.text()
            if response.status >= 300 or '"error"' in text:
                raise RuntimeError(text[:500])

    asyncio.run(go())


def timed(what: str, results: dict[str, Any], key: str, fn: Any, *args: Any) -> Any:
    t0 = time.perf_counter()
    out = fn(*args)
    wall = time.perf_counter() - t0
    print(f"{what}: {wall:.1f} s" + (f", {out:,} points ({out / wall:,.0f}/s)" if out else ""))
    results[key] = {"s": round(wall, 2), "points": out}
    return out


def report(
    luxtel: list[str], toml: Path, out: Path, by: str, source: str, period: list[str]
) -> tuple[float, float, str]:
    argv = [*luxtel, "energy", "report", *period, "--by", by, "--source", source]
    return run([*argv, "-c", str(toml), "--format", "csv", "-o", str(out)])


def luxtels(before: Path | None) -> dict[str, list[str]]:
    """The luxtel commands to compare: this tree's, and with ``before`` another tree's first
    (``-P``: not the working directory's packages; ``PYTHONPATH``: that tree's)."""
    this = [sys.executable, "-m", "luxtel"]
    if before is None:
        return {"": this}
    other = ["env", f"PYTHONPATH={before}", sys.executable, "-P", "-m", "luxtel"]
    return {"before: ": other, "after: ": this}


def reports(
    results: dict[str, Any],
    commands: dict[str, list[str]],
    toml: Path,
    tmp: Path,
    bys: tuple[str, ...],
    period: list[str],
    what: str,
    key: str,
) -> None:
    """Each report by ``bys`` with each luxtel of ``commands`` in turn; printed and kept, and
    whether their CSVs are the same."""
    for by in bys:
        outs = []
        for label, luxtel in commands.items():
            out = tmp / f"city-{by}{key}-{label.strip(': ') or 'this'}.csv"
            outs.append(out)
            wall, rss, tail = report(luxtel, toml, out, by, "rollups", period)
            kwh = total_kwh(out)
            print(
                f"{label}report --by {by} from rollups, {what}: {wall:.1f} s, "
                f"peak RSS {rss:.0f} MiB, CPU {LAST_CPU[0]:.1f} s, {kwh:,.3f} kWh — {tail}",
                flush=True,
            )
            results[f"{label.strip(': ')}report_{by}{key}"] = {
                "s": wall,
                "rss_mib": rss,
                "cpu_s": LAST_CPU[0],
                "kwh": kwh,
                "said": tail,
            }
        if len(outs) > 1:
            same = len({out.read_text() for out in outs}) == 1
            print(f"report --by {by}: the CSVs are {'identical' if same else 'DIFFERENT'}")
            results[f"report_{by}{key}_identical"] = same


def _cpu_s(pid: int | None) -> float:
    """User + system CPU of process ``pid`` so far (0 when unknown)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dashboard_queries(
    server: CompactingInfluxDB,
    db: str,
    zones: list[str],
    year_start: int,
    end_ms: int,
    results: dict[str, Any],
) -> None:
    """The energy dashboard's per-zone-per-day and savings queries over ``year_start`` to
    ``end_ms``, every zone selected two ways: "All" as the dashboard sends it (the zone
    variable's custom all value) and each zone listed (Grafana's regex of every zone, its
    default "All"). Asked as Grafana asks (``epoch=ms``); timed to the last byte of InfluxDB's
    answer, with InfluxDB's CPU for it and this client's JSON decoding beside (Grafana decodes
    in its own server, not here)."""
    energy = build_dashboards()["energy.json"]
    panels = {p["title"]: p for p in energy["panels"] if "targets" in p}
    (zone,) = [v for v in energy["templating"]["list"] if v["name"] == "zone"]
    span = TimeRange(year_start, end_ms, "1d", DAY)
    forms = {
        f"All ({zone['allValue']})": Variable.all(zone["allValue"]),
        f"every zone listed ({len(zones)})": Variable(tuple(zones), multi=True),
    }
    for title in ("Energy per zone per day", "Savings against the baseline"):
        for form, variable in forms.items():
            statement = interpolate(panels[title]["targets"][0]["query"], {"zone": variable}, span)
            body = {"db": db, "q": statement, "epoch": "ms"}
            walls, cpus, decodes = [], [], []
            for _ in range(5):
                cpu0 = _cpu_s(server.pid)
                t0 = time.perf_counter()
                request = f"{server.url}/query"  # our own server, on the loopback
                with urlopen(request, urlencode(body).encode()) as response:  # noqa: S310
                    text = response.read()
                walls.append(time.perf_counter() - t0)
                cpus.append(_cpu_s(server.pid) - cpu0)
                t0 = time.perf_counter()
                answer = json.loads(text)
                decodes.append(time.perf_counter() - t0)
            values = sum(len(s["values"]) for s in answer["results"][0].get("series", []))
            print(
                f"dashboard '{title}' over {(end_ms - year_start) // DAY} days, {form}: "
                f"{', '.join(f'{w:.2f}' for w in walls)} s (InfluxDB CPU "
                f"{', '.join(f'{c:.2f}' for c in cpus)} s; {values:,} values, "
                f"{len(text) / 2**20:.1f} MiB, {len(statement):,} characters asked; "
                f"decoded here in {min(decodes):.2f} s)",
                flush=True,
            )
            results[f"dashboard_{title}_{form}"] = {
                "s": walls,
                "influx_cpu_s": cpus,
                "decode_s": decodes,
                "values": values,
            }


def dashboard_only(server: CompactingInfluxDB, db: str, lums: list[Luminaire]) -> dict[str, Any]:
    """``--dashboard-only``: the year of ``energy_zone_daily`` (written directly, as
    ``group_lines`` computes it) and the dashboard's queries over it; no report levels."""
    results: dict[str, Any] = {}
    end_ms = int(START.timestamp() * 1000) + DAYS * DAY
    year_start = end_ms - 365 * DAY
    days = list(range(year_start, end_ms, DAY))
    timed(
        f"{ZONE_DAILY}: 365 days, written directly",
        results,
        "write_zone_year",
        lambda: asyncio.run(write(server.url, db, RP, group_lines(lums, days, ZONE_DAILY, 24))),
    )
    t0 = time.perf_counter()
    wait_compacted(server, db, timeout=90)
    print(f"compacted: {time.perf_counter() - t0:.0f} s", flush=True)
    zones = sorted({lum.zone for lum in lums})
    dashboard_queries(server, db, zones, year_start, end_ms, results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--zone-size", type=int, default=1000)
    parser.add_argument("--small-devices", type=int, default=200)
    parser.add_argument(
        "--raw-edges",
        action="store_true",
        help="also write raw telemetry around the month's two ends (read only when a "
        "luminaire did not report in the hours around the month)",
    )
    parser.add_argument(
        "--device-rollups",
        action="store_true",
        help="also write the per-luminaire daily and edge-day hourly rollups and compute the "
        "group levels from them with INTO (needed for --by device; ~6 min at 20,000)",
    )
    parser.add_argument(
        "--monthly",
        action="store_true",
        help="the civil month (March 2026, 31 days) instead of 30 days, and each luminaire's "
        "energy_monthly point of it written directly (month_lines, checked against luxtel's "
        "INTO at 500 luminaires first): what --by device reads; reports --by device too",
    )
    parser.add_argument(
        "--crossing",
        action="store_true",
        help="the 30 days from 16 March 2026 to 15 April (no whole civil month: the period "
        "crosses a month's end), and each luminaire's energy_daily points of them written "
        "directly (daily_lines): what --by device reads there; reports --by device too",
    )
    parser.add_argument(
        "--silent",
        type=int,
        default=0,
        help="then make N luminaires (in N groups) silent in the hours around the month and "
        "run the reports again",
    )
    parser.add_argument(
        "--around",
        choices=("both", "before", "none"),
        default="both",
        help="which hours just outside the month have rollups: both (every luminaire known to "
        "have reported there), before (a report up to now: none after its end), none",
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="a source tree of luxtel to run each report with too, first (before/after)",
    )
    parser.add_argument(
        "--short-min",
        type=int,
        default=0,
        help="end the reports this many minutes before the month's end, and the raw telemetry "
        "there (e.g. 35: a report up to now at 23:25, its partial last hour read raw)",
    )
    parser.add_argument(
        "--stopped",
        action="store_true",
        help="the readings stop 10 min before the month's end and its last hour flags every "
        "luminaire (as luxtel closes it then): every luminaire in doubt at the end",
    )
    parser.add_argument(
        "--dashboard-only",
        action="store_true",
        help="only write the year of energy_zone_daily and run the energy dashboard's queries "
        "over it (no report levels, no reports, no raw path)",
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    os.environ["COLUMNS"] = "1000"  # luxtel's notes on one line: run() keeps the last
    tmp = Path(tempfile.mkdtemp(prefix="luxtel-energy-city-"))
    server = CompactingInfluxDB(tmp / "influxdb")
    server.start()
    luxtel = [sys.executable, "-m", "luxtel"]
    results: dict[str, Any] = {"devices": args.devices, "zone_size": args.zone_size}
    start_ms = int(START.timestamp() * 1000) + (15 * DAY if args.crossing else 0)
    n_days = 31 if args.monthly else DAYS
    end_ms = start_ms + n_days * DAY
    end = datetime.fromtimestamp((end_ms - args.short_min * 60_000) / 1000, UTC)
    begin = datetime.fromtimestamp(start_ms / 1000, UTC)
    period = ["--from", begin.isoformat(), "--to", end.isoformat()]
    try:
        db = "city"
        create_database(server.url, db)
        query(
            server.url,
            f"CREATE RETENTION POLICY {RP} ON {db} DURATION INF REPLICATION 1 SHARD DURATION 364d",
        )
        lums = city(args.devices, args.zone_size)
        if args.dashboard_only:
            print(json.dumps({**results, **dashboard_only(server, db, lums)}))
            return
        write_inventory(tmp / "inventory.csv", lums)
        toml = tmp / "luxtel.toml"
        toml.write_text(
            f'[influx]\nurl = "{server.url}"\ndatabase = "{db}"\ntimeout_s = 600\n'
            f'[inventory]\npath = "{tmp / "inventory.csv"}"\n'
        )
        days = [start_ms + d * DAY for d in range(n_days)]
        # the first and last day's hours, and the hour on either side of the month
        outside = {"both": (H, H), "before": (H, 0), "none": (0, 0)}[args.around]
        spans = [(start_ms - outside[0], start_ms + DAY), (end_ms - DAY, end_ms + outside[1])]
        hours = [h for a, b in spans for h in range(a, b, H)]

        def raw_edges() -> int:
            a = asyncio.run(
                write(server.url, db, None, raw_lines(lums, start_ms - H, start_ms + 2 * H))
            )
            last = end_ms - args.short_min * 60_000 if args.short_min else end_ms + H
            last = end_ms - 10 * 60_000 if args.stopped else last
            return a + asyncio.run(
                write(server.url, db, None, raw_lines(lums, end_ms - 2 * H, last))
            )

        if args.raw_edges:
            timed("raw telemetry: 3 h at each end of the month", results, "write_raw", raw_edges)

        def write_daily(how: str) -> None:
            timed(
                f"energy_daily: {len(lums):,} luminaires x {n_days} days{how}",
                results,
                "write_daily",
                lambda: asyncio.run(write(server.url, db, RP, daily_lines(lums, days))),
            )

        if args.device_rollups:
            write_daily("")
            timed(
                "energy_hourly: the first and last day, and the hour on either side",
                results,
                "write_hourly",
                lambda: asyncio.run(write(server.url, db, RP, hourly_lines(lums, hours))),
            )

            def into_hours() -> int:
                for a, b in spans:
                    post_query(server.url, db, into_statement(RP, GROUP_HOURLY, a, b))
                return 0

            def into_days() -> int:
                for day in days:
                    for level in (GROUP_DAILY, ZONE_DAILY):
                        post_query(server.url, db, into_statement(RP, level, day, day + DAY))
                return 0

            timed("INTO energy_group_hourly (2 days)", results, "into_group_hourly", into_hours)
            timed(
                f"INTO energy_group_daily + energy_zone_daily ({n_days} days)",
                results,
                "into_days",
                into_days,
            )
        else:
            for measurement, times, span_h in (
                (GROUP_HOURLY, hours, 1),
                (GROUP_DAILY, days, 24),
                (ZONE_DAILY, days, 24),
            ):
                timed(
                    f"{measurement}: written directly",
                    results,
                    f"write_{measurement}",
                    lambda m=measurement, t=times, n=span_h: asyncio.run(
                        write(server.url, db, RP, group_lines(lums, t, m, n))
                    ),
                )
            if args.stopped:
                every = frozenset(lum.device_id for lum in lums)
                last_hour = group_lines(lums, [end_ms - H], GROUP_HOURLY, 1, flagged=every)
                asyncio.run(write(server.url, db, RP, last_hour))
        if args.monthly and args.device_rollups:

            def into_month() -> int:
                post_query(server.url, db, month_into_statement(RP, start_ms, end_ms))
                return 0

            timed("INTO energy_monthly (from the daily points)", results, "into_month", into_month)
        elif args.monthly:
            timed(
                "energy_monthly: month_lines against luxtel's INTO, 500 luminaires",
                results,
                "check_monthly",
                check_month_lines,
                server.url,
                500,
                start_ms,
                n_days,
            )
            timed(
                f"energy_monthly: {len(lums):,} luminaires, written directly",
                results,
                "write_monthly",
                lambda: asyncio.run(write(server.url, db, RP, month_lines(lums, start_ms, n_days))),
            )
        if args.crossing:
            write_daily(", written directly")
        zones = sorted({lum.zone for lum in lums})
        year_start = end_ms - 365 * DAY

        def zone_year() -> int:
            month = query(
                server.url,
                f'SELECT * FROM "{RP}"."{ZONE_DAILY}" WHERE time >= {start_ms}ms '  # noqa: S608
                f"AND time < {end_ms}ms",
                db=db,
            )["results"][0]["series"][0]
            rows = [dict(zip(month["columns"], v, strict=True)) for v in month["values"]]
            template = {r["zone"]: r for r in rows}

            def lines() -> Iterator[str]:
                for day in range(year_start, start_ms, DAY):
                    for zone, row in template.items():
                        fields = ",".join(
                            f"{k}={int(v)}i" if k in INTEGERS else f"{k}={float(v)!r}"
                            for k, v in row.items()
                            if k not in ("time", "zone") and v is not None
                        )
                        yield f"{ZONE_DAILY},zone={zone} {fields} {day}"

            return asyncio.run(write(server.url, db, RP, lines()))

        timed("energy_zone_daily: the year's other 335 days", results, "write_zone_year", zone_year)
        t0 = time.perf_counter()
        wait_compacted(server, db, timeout=90)
        print(f"compacted: {time.perf_counter() - t0:.0f} s", flush=True)

        commands = luxtels(args.before)
        by_device = args.device_rollups or args.monthly or args.crossing
        bys = ("device", "zone", "circuit") if by_device else ("zone", "circuit")
        said = {"both": "", "before": ", none after the end", "none": ", none around"}
        what = f"{len(lums):,} luminaires{said[args.around]}"
        reports(results, commands, toml, tmp, bys, period, what, "")
        if args.silent:
            silent = [k * len(lums) // args.silent + 7 for k in range(args.silent)]
            timed(
                f"{args.silent} luminaires silent around the month: their groups' hours, "
                "their raw telemetry",
                results,
                "write_silent",
                lambda: sum(
                    asyncio.run(
                        write(
                            server.url,
                            db,
                            None if raw else RP,
                            silent_lines(lums, silent, start_ms, end_ms, raw=raw),
                        )
                    )
                    for raw in (False, True)
                ),
            )
            what = f"{args.silent} silent"
            reports(results, commands, toml, tmp, ("zone", "circuit"), period, what, "_silent")

        dashboard_queries(server, db, zones, year_start, end_ms, results)

        # The raw path, at a scale that fits, in the same run.
        small = args.small_devices
        if not small:
            print(json.dumps(results))
            return
        sdb = "small"
        create_database(server.url, sdb)
        small_inventory(tmp / "small.csv", small)
        stoml = tmp / "small.toml"
        stoml.write_text(
            f'[influx]\nurl = "{server.url}"\ndatabase = "{sdb}"\ntimeout_s = 600\n'
            f'[inventory]\npath = "{tmp / "small.csv"}"\n'
        )
        t0 = time.perf_counter()
        points = asyncio.run(write_days(server.url, sdb, small, n_days, start_ms))
        print(f"small: {points:,} raw points written in {time.perf_counter() - t0:.1f} s")
        wall, rss, tail = run([*luxtel, "energy", "rollup", *period, "-c", str(stoml)])
        print(f"small: luxtel energy rollup {wall:.1f} s, peak RSS {rss:.0f} MiB — {tail}")
        results["small_rollup"] = {"s": wall, "rss_mib": rss, "points": points}
        for source in ("rollups", "raw"):
            out = tmp / f"small-{source}.csv"
            wall, rss, tail = report(luxtel, stoml, out, "zone", source, period)
            kwh = total_kwh(out)
            print(
                f"small: report --by zone from {source}: {wall:.1f} s, peak RSS {rss:.0f} MiB, "
                f"{kwh:,.3f} kWh — {tail}"
            )
            results[f"small_report_{source}"] = {"s": wall, "rss_mib": rss, "kwh": kwh}
        same = (tmp / "small-rollups.csv").read_text() == (tmp / "small-raw.csv").read_text()
        print(f"small: the two CSVs are {'identical' if same else 'DIFFERENT'}")
        results["small_identical"] = same
        wall, kwh = influx_counter_kwh(server.url, sdb, start_ms, end_ms)
        print(f"small: InfluxDB non_negative_difference {wall:.1f} s, {kwh:,.3f} kWh")
        results["small_influx_query"] = {"s": wall, "kwh": kwh}
        print(json.dumps(results))
    finally:
        server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
