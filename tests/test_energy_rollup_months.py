"""The monthly rollups per luminaire (``energy_monthly``) on a real InfluxDB: written once a
month's last day is rolled up, rewritten when a day in it is rebuilt, and a report ``--by
device`` of a civil month read from them gives exactly the raw report's rows; a month a
luminaire lacks, or one in doubt at the ends, is read the other ways, with the same rows."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from energy.inventory import read_inventory
from energy.periods import local_midnight_ms, month_edges, to_ms
from energy.retention import RetentionConfig
from energy.rollup_months import MONTH_MEASUREMENT, whole_months
from energy.rollup_store import RollupConfig
from energy.upkeep import DirtyHours, Upkeep, UpkeepConfig
from influx.client import InfluxTarget, InfluxWriter
from luxtel.commands.energy import energy_app
from servers import InfluxDBServer, create_database, query, quote_ident, write_points

LONDON = ZoneInfo("Europe/London")
H = 3_600_000
MARCH = (to_ms(datetime(2026, 3, 1, tzinfo=LONDON)), to_ms(datetime(2026, 4, 1, tzinfo=LONDON)))
"""A civil month of London with the spring-forward day (29 March, 23 h): 743 hours."""
LATE = to_ms(datetime(2026, 3, 10, 21, tzinfo=LONDON))
"""n2's readings of the two hours from here arrive late (``test_a_day_rebuilt_later…``)."""

FLEET = {
    # device: zone, circuit, report interval s, what happens
    "n1": ("north", "C01", 900, "steady"),
    "n2": ("north", "C01", 900, "reset"),
    "n3": ("north", "C02", 900, "outage"),  # silent 3 h (a gap), then 14 h (a break)
    "s1": ("south", "C03", 3600, "wrap"),  # hourly, wraps at 2^32 Wh
    "s2": ("south", "C03", 900, "no_counter"),  # power only
    "s3": ("south", "C04", 900, "onboarding"),  # first reading on 27 February
}


def _lit(t: int) -> bool:
    hour = datetime.fromtimestamp(t / 1000, LONDON).hour
    return hour >= 18 or hour < 7


def _readings(device: str, onboarding: int) -> list[tuple[int, str]]:
    _, _, interval_s, kind = FLEET[device]
    rng = random.Random(device)
    energy = {"wrap": 2.0**32 - 2000.0, "onboarding": 50_000.0}.get(kind, 1000.0)
    t = onboarding + 7 * 60_000 if kind == "onboarding" else MARCH[0] - 30 * H
    out = []
    while t < MARCH[1] + 30 * H:
        step = interval_s * 1000 + rng.randint(-60, 60) * 1000
        silent = (MARCH[0] + 100 * H, MARCH[0] + 103 * H), (MARCH[0] + 400 * H, MARCH[0] + 414 * H)
        if kind == "outage" and any(a <= t < b for a, b in silent):
            t += step
            energy += 30.0
            continue
        on = _lit(t)
        power = 40.0 + rng.randint(0, 9) / 10 if on else 0.0
        energy += power * step / H
        if kind == "reset" and MARCH[0] + 500 * H <= t < MARCH[0] + 500 * H + step:
            energy = 3.0
        if kind == "wrap" and energy >= 2.0**32:
            energy -= 2.0**32
        fields = f"lamp_on={str(on).lower()},power_w={power},dim_pct={70 if on else 0}i"
        if kind != "no_counter":
            fields += f",energy_wh={energy!r}"
        out.append((t, f"telemetry,device_id={device},zone={FLEET[device][0]} {fields} {t}"))
        t += step
    return out


@dataclass(frozen=True)
class City:
    url: str
    database: str
    toml: Path
    tmp: Path
    late: list[str]


def _city(influxdb: InfluxDBServer, tmp_path: Path, onboarding: int) -> City:
    database = f"months_{uuid.uuid4().hex[:8]}"
    create_database(influxdb.url, database)
    inventory = tmp_path / "inventory.csv"
    rows = [
        "device_id,zone,circuit,lat,lon,rated_power_w,baseline_power_w,report_interval_s,"
        "model,installed_on"
    ]
    for device, (zone, circuit, interval, _) in FLEET.items():
        rows.append(f"{device},{zone},{circuit},51.5,-0.1,40,100,{interval},LX,")
    inventory.write_text("\n".join(rows) + "\n")
    toml = tmp_path / "luxtel.toml"
    toml.write_text(
        f'[influx]\nurl = "{influxdb.url}"\ndatabase = "{database}"\n'
        f'[inventory]\npath = "{inventory}"\n[energy]\nmax_interval_h = 6\n'
        'tz = "Europe/London"\n'
    )
    on_time: list[str] = []
    late: list[str] = []
    for device in FLEET:
        for t, text in _readings(device, onboarding):
            (late if device == "n2" and LATE <= t < LATE + 2 * H else on_time).append(text)
    write_points(influxdb.url, database, on_time)
    return City(influxdb.url, database, toml, tmp_path, late)


@pytest.fixture
def city(influxdb: InfluxDBServer, tmp_path: Path) -> Iterator[City]:
    made = _city(influxdb, tmp_path, MARCH[0] - 2 * 24 * H)
    yield made
    query(influxdb.url, f"DROP DATABASE {quote_ident(made.database)}")


def _cli(*args: str) -> str:
    result = CliRunner().invoke(energy_app, list(args))
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def _rollup(city: City, start: str, end: str, *more: str) -> str:
    return _cli("rollup", "--from", start, "--to", end, "-c", str(city.toml), *more)


def _report(city: City, source: str, *args: str) -> tuple[list[dict[str, Any]], str]:
    """The rows, and what the command said on the way."""
    out = city.tmp / f"{uuid.uuid4().hex[:6]}.json"
    said = _cli(
        "report",
        *("-c", str(city.toml), "--tz", "Europe/London", "--format", "json", "-o", str(out)),
        *("--source", source, *args),
    )
    rows: list[dict[str, Any]] = json.loads(out.read_text())
    return rows, said


def _months(city: City) -> list[list[Any]]:
    answer = query(
        city.url,
        f'SELECT "device_id", "hours", "days", "readings" FROM "rollups"."{MONTH_MEASUREMENT}"',  # noqa: S608
        db=city.database,
    )
    series = answer["results"][0].get("series", [])
    return sorted(series[0]["values"]) if series else []


def _n2_march(city: City) -> int:
    """n2's readings in its March point."""
    found = [m[4] for m in _months(city) if m[0] == "2026-03-01T00:00:00Z" and m[1] == "n2"]
    assert len(found) == 1
    return int(found[0])


MONTH = ("--by", "device", "--from", "2026-03-01", "--to", "2026-04-01")


def test_a_month_by_device_is_read_from_the_monthly_level_with_the_raw_rows(city: City) -> None:
    _rollup(city, "2026-02-28", "2026-04-02")
    months = _months(city)
    march = [m for m in months if m[0] == "2026-03-01T00:00:00Z"]
    # every luminaire, every hour, every day
    assert [m[1:4] for m in march] == [[d, 743, 31] for d in sorted(FLEET)]
    assert {m[0] for m in months} == {"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}
    raw, _ = _report(city, "raw", *MONTH)
    via, said = _report(city, "rollups", *MONTH)
    assert via == raw
    assert "1 whole month(s) per luminaire, 0 whole days and 0 whole hours" in said
    assert ", 0 h from raw readings" in said
    resets = {r["device"]: r["resets"] for r in raw}
    assert resets == {"n1": 0, "n2": 1, "n3": 0, "s1": 1, "s2": 0, "s3": 0}  # s1: the wrap
    assert {r["device"]: r["method"] for r in raw}["s2"] == "power"
    assert {r["device"]: r["gap"] for r in raw}["n3"]
    # one zone: the month's points of that zone only
    raw, _ = _report(city, "raw", *MONTH, "--zone", "south")
    via, said = _report(city, "rollups", *MONTH, "--zone", "south")
    assert via == raw
    assert [r["device"] for r in via] == ["s1", "s2", "s3"]
    assert "1 whole month(s) per luminaire" in said
    # rebuilt again, the same points: overwritten, never doubled
    _rollup(city, "2026-03-01", "2026-04-01")
    assert _months(city) == months


def test_a_day_rebuilt_later_rewrites_its_month(city: City) -> None:
    _rollup(city, "2026-02-28", "2026-04-02")
    before = _n2_march(city)
    write_points(city.url, city.database, city.late)  # n2's two hours, weeks late
    # only the day they are in, its points deleted first: the month is rewritten from its days
    _rollup(city, "2026-03-10", "2026-03-11", "--delete-first")
    assert _n2_march(city) == before + len(city.late)
    raw, _ = _report(city, "raw", *MONTH)
    via, said = _report(city, "rollups", *MONTH)
    assert via == raw
    assert "1 whole month(s) per luminaire" in said


def test_the_upkeep_writes_the_month_when_it_closes_its_last_day(city: City) -> None:
    _rollup(city, "2026-02-28", "2026-03-30")
    assert not [m for m in _months(city) if m[0] == "2026-03-01T00:00:00Z"]
    inventory = read_inventory(city.tmp / "inventory.csv")
    config = UpkeepConfig(
        every_s=3600,
        settle_s=1200,
        rollups=RollupConfig(max_interval_ms=6 * H, tz="Europe/London"),
        retention=RetentionConfig(),
    )
    state = city.tmp / "rollups.json"
    start = to_ms(datetime(2026, 3, 30, tzinfo=LONDON))
    state.write_text(json.dumps({"watermark_ms": start}))
    now = MARCH[1] / 1000 + 8 * 3600

    async def tick() -> int:
        async with InfluxWriter(InfluxTarget(city.url, city.database)) as writer:
            upkeep = Upkeep(writer, inventory, state, config, DirtyHours(), clock=lambda: now)
            return await upkeep.tick(start)

    assert asyncio.run(tick()) > MARCH[1]
    march = [m for m in _months(city) if m[0] == "2026-03-01T00:00:00Z"]
    assert [m[1:4] for m in march] == [[d, 743, 31] for d in sorted(FLEET)]
    raw, _ = _report(city, "raw", *MONTH)
    via, said = _report(city, "rollups", *MONTH)
    assert via == raw
    assert "1 whole month(s) per luminaire" in said


def test_no_month_point_until_its_last_day_and_the_report_is_the_same(city: City) -> None:
    _rollup(city, "2026-02-28", "2026-03-20")
    assert not [m for m in _months(city) if m[0] == "2026-03-01T00:00:00Z"]
    raw, _ = _report(city, "raw", *MONTH)
    via, said = _report(city, "rollups", *MONTH)
    assert via == raw
    assert "whole month" not in said


def test_a_luminaire_commissioned_in_the_month_keeps_the_raw_rows(
    influxdb: InfluxDBServer, tmp_path: Path
) -> None:
    """s3's first reading on 12 March: in doubt at the month's start (no reading before it), so
    the month is not read from the monthly level; the days and hours give the same rows."""
    made = _city(influxdb, tmp_path, MARCH[0] + 11 * 24 * H)
    try:
        _rollup(made, "2026-02-28", "2026-04-02")
        raw, _ = _report(made, "raw", *MONTH)
        via, said = _report(made, "rollups", *MONTH)
        assert via == raw
        assert "whole month" not in said
        assert "1 luminaire(s) silent around the period (s3)" in said
    finally:
        query(influxdb.url, f"DROP DATABASE {quote_ident(made.database)}")


ZONES = ("UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")


@given(
    st.sampled_from(ZONES),
    st.integers(
        min_value=to_ms(datetime(2023, 1, 1, tzinfo=UTC)),
        max_value=to_ms(datetime(2027, 1, 1, tzinfo=UTC)),
    ),
    st.integers(min_value=1, max_value=500 * 24 * H),
)
def test_whole_months_are_the_civil_months_inside_the_period(
    tz_name: str, start: int, length: int
) -> None:
    tz = ZoneInfo(tz_name)
    end = start + length
    months = whole_months(start, end, tz)
    edges, _ = month_edges(start, end, tz)
    # the month bins of the period with both edges at a local 1st-of-month midnight
    firsts = {local_midnight_ms(date(y, m, 1), tz) for y in range(2022, 2029) for m in range(1, 13)}
    inside = [(a, b) for a, b in itertools.pairwise(edges) if a in firsts and b in firsts]
    assert months == inside
    for a, b in months:
        first = datetime.fromtimestamp(a / 1000, tz)
        assert (first.day, first.hour, first.minute) == (1, 0, 0)
        assert datetime.fromtimestamp(b / 1000, tz).date() - first.date() >= timedelta(days=28)
