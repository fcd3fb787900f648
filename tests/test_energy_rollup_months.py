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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from energy import rollup_sums
from energy.inventory import Luminaire, read_inventory
from energy.periods import local_midnight_ms, month_edges, to_ms
from energy.retention import RetentionConfig
from energy.rollup_months import MONTH_MEASUREMENT, READ, MonthRows, whole_months
from energy.rollup_rows import DeviceSums, read_plain
from energy.rollup_store import RollupConfig
from energy.upkeep import DirtyHours, Upkeep, UpkeepConfig
from influx.client import InfluxTarget, InfluxWriter
from luxtel.commands.energy import energy_app
from servers import InfluxDBServer, query, quote_ident, write_points
from tests.energy_fleet import FLEET, LONDON, City, Story, make_city

H = 3_600_000
MARCH = (to_ms(datetime(2026, 3, 1, tzinfo=LONDON)), to_ms(datetime(2026, 4, 1, tzinfo=LONDON)))
"""A civil month of London with the spring-forward day (29 March, 23 h): 743 hours."""
LATE = to_ms(datetime(2026, 3, 10, 21, tzinfo=LONDON))
"""n2's readings of the two hours from here arrive late (``test_a_day_rebuilt_later…``)."""


def _story(onboarding: int) -> Story:
    return Story(
        first=MARCH[0] - 30 * H,
        until=MARCH[1] + 30 * H,
        outages=(
            (MARCH[0] + 100 * H, MARCH[0] + 103 * H),
            (MARCH[0] + 400 * H, MARCH[0] + 414 * H),
        ),
        reset=MARCH[0] + 500 * H,
        onboarding=onboarding,
        wrap_wh=2000.0,  # wraps in March
    )


def _city(influxdb: InfluxDBServer, tmp_path: Path, onboarding: int) -> City:
    return make_city(influxdb.url, tmp_path, _story(onboarding + 7 * 60_000), (LATE, LATE + 2 * H))


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


def _march(city: City) -> list[list[Any]]:
    """The points of March 2026 (London): time, device, hours, days, readings."""
    return [m for m in _months(city) if m[0] == "2026-03-01T00:00:00Z"]


def _n2_march(city: City) -> int:
    """n2's readings in its March point."""
    found = [m[4] for m in _march(city) if m[1] == "n2"]
    assert len(found) == 1
    return int(found[0])


MONTH = ("--by", "device", "--from", "2026-03-01", "--to", "2026-04-01")


def _said_by_device(city: City, *more: str) -> tuple[list[dict[str, Any]], str]:
    """The month's report by device from rollups, checked equal to the raw one, and what it
    said."""
    raw, _ = _report(city, "raw", *MONTH, *more)
    via, said = _report(city, "rollups", *MONTH, *more)
    assert via == raw
    return raw, said


@pytest.mark.integration
def test_a_month_by_device_is_read_from_the_monthly_level_with_the_raw_rows(city: City) -> None:
    _rollup(city, "2026-02-28", "2026-04-02")
    months = _months(city)
    march = [m for m in months if m[0] == "2026-03-01T00:00:00Z"]
    # every luminaire, every hour, every day
    assert [m[1:4] for m in march] == [[d, 743, 31] for d in sorted(FLEET)]
    assert {m[0] for m in months} == {"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}
    raw, said = _said_by_device(city)
    assert "1 whole month(s) per luminaire, 0 whole days and 0 whole hours" in said
    assert ", 0 h from raw readings" in said
    resets = {r["device"]: r["resets"] for r in raw}
    assert resets == {"n1": 0, "n2": 1, "n3": 0, "s1": 1, "s2": 0, "s3": 0}  # s1: the wrap
    assert {r["device"]: r["method"] for r in raw}["s2"] == "power"
    assert {r["device"]: r["gap"] for r in raw}["n3"]
    # one zone: the month's points of that zone only
    raw, said = _said_by_device(city, "--zone", "south")
    assert [r["device"] for r in raw] == ["s1", "s2", "s3"]
    assert "1 whole month(s) per luminaire" in said
    # rebuilt again, the same points: overwritten, never doubled
    _rollup(city, "2026-03-01", "2026-04-01")
    assert _months(city) == months


@pytest.mark.integration
def test_a_day_rebuilt_later_rewrites_its_month(city: City) -> None:
    _rollup(city, "2026-02-28", "2026-04-02")
    before = _n2_march(city)
    write_points(city.url, city.database, city.backlog)  # n2's two hours, weeks late
    # only the day they are in, its points deleted first: the month is rewritten from its days
    _rollup(city, "2026-03-10", "2026-03-11", "--delete-first")
    assert _n2_march(city) == before + len(city.backlog)
    _, said = _said_by_device(city)
    assert "1 whole month(s) per luminaire" in said


@pytest.mark.integration
def test_the_upkeep_writes_the_month_when_it_closes_its_last_day(city: City) -> None:
    _rollup(city, "2026-02-28", "2026-03-30")
    assert not _march(city)
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
    march = _march(city)
    assert [m[1:4] for m in march] == [[d, 743, 31] for d in sorted(FLEET)]
    _, said = _said_by_device(city)
    assert "1 whole month(s) per luminaire" in said


@pytest.mark.integration
def test_no_month_point_until_its_last_day_and_the_report_is_the_same(city: City) -> None:
    _rollup(city, "2026-02-28", "2026-03-20")
    assert not _march(city)
    _, said = _said_by_device(city)
    assert "whole month" not in said


@pytest.mark.integration
def test_a_month_point_missing_a_day_is_not_read(city: City) -> None:
    """A month summed while one of its days had no daily points (here deleted) says so in its
    ``hours``: the report reads the days and hours instead, with the same rows."""
    _rollup(city, "2026-02-28", "2026-04-02")
    day = to_ms(datetime(2026, 3, 15, tzinfo=LONDON))
    statement = f'DELETE FROM "energy_daily" WHERE time >= {day}ms AND time < {day + 24 * H}ms'  # noqa: S608
    query(city.url, statement, db=city.database)
    _rollup(city, "2026-03-20", "2026-03-21")  # rewrites the month from 30 days
    march = _march(city)
    assert [m[2:4] for m in march] == [[719, 30]] * len(FLEET)
    _, said = _said_by_device(city)
    assert "whole month" not in said


@pytest.mark.integration
def test_a_luminaire_commissioned_in_the_month_keeps_the_raw_rows(
    influxdb: InfluxDBServer, tmp_path: Path
) -> None:
    """s3's first reading on 12 March: in doubt at the month's start (no reading before it), so
    the month is not read from the monthly level; the days and hours give the same rows."""
    made = _city(influxdb, tmp_path, MARCH[0] + 11 * 24 * H)
    try:
        _rollup(made, "2026-02-28", "2026-04-02")
        _, said = _said_by_device(made)
        assert "whole month" not in said
        assert "1 luminaire(s) silent around the period (s3)" in said
    finally:
        query(influxdb.url, f"DROP DATABASE {quote_ident(made.database)}")


CROSSING = [
    ("--from", "2026-03-16", "--to", "2026-04-02"),  # whole days across the month's end
    ("--from", "2026-03-20T10:20:00Z", "--to", "2026-04-01T17:40:00Z"),  # and hours, raw edges
]


@pytest.mark.integration
@pytest.mark.parametrize("plain", [True, False])
@pytest.mark.parametrize("period", CROSSING)
def test_a_period_across_a_months_end_gives_the_raw_rows_read_plainly_or_summed_by_influxdb(
    city: City, monkeypatch: pytest.MonkeyPatch, plain: bool, period: tuple[str, ...]
) -> None:
    """No whole civil month inside (the spring-forward day, n2's reset, s1's 2^32 wrap, n3's
    outage are): the whole days from the daily level and the hours near the ends from the
    hourly one, per luminaire read as plain rows summed by luxtel (``energy.rollup_rows``) or,
    forced, summed by InfluxDB per luminaire: the raw report's rows either way, by device,
    zone and circuit."""
    read: list[tuple[str, int, int]] = []

    async def spy(*args: Any) -> DeviceSums:
        read.append((args[3], args[1][0][0], args[1][-1][1]))
        return await read_plain(*args)

    monkeypatch.setattr(rollup_sums, "read_plain", spy)
    if not plain:
        monkeypatch.setattr(rollup_sums, "PLAIN_POINTS", -1)
    _rollup(city, "2026-02-28", "2026-04-02")
    for by in ("device", "zone", "circuit"):
        raw, _ = _report(city, "raw", "--by", by, *period)
        via, said = _report(city, "rollups", "--by", by, *period)
        assert via == raw
        assert "whole month" not in said
        assert ", 0 h from raw readings" in said or period[1].endswith("Z")
    days = [r for r in read if r[0] == "energy_daily"]
    if plain:
        assert days  # by device: the whole days read plainly, one run
        assert days[0][2] - days[0][1] >= 10 * 24 * H
    else:
        assert not read


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


_LUMS = {f"d{i}": Luminaire(f"d{i}", f"z{i % 2}", f"c{i % 3}", 100.0, 900) for i in range(5)}
_FAULTS = ("none", "missing", "moved", "short", "twice", "float", "stranger")


def _month_row(lum: Luminaire, hours: int) -> dict[str, object]:
    row: dict[str, object] = {"device_id": lum.device_id, "zone": lum.zone, "circuit": lum.circuit}
    row.update(dict.fromkeys(READ, 7))
    row["hours"] = hours
    return row


@given(st.lists(st.sampled_from(_FAULTS), min_size=len(_LUMS), max_size=len(_LUMS)), st.randoms())
def test_a_month_is_taken_only_with_one_whole_point_per_luminaire(
    faults: list[str], rng: random.Random
) -> None:
    """Whatever the answer's order: the month stands only if every luminaire has exactly one
    point under its inventory tags with all the month's hours and integer figures; rows of
    other luminaires, or under old tags, are passed over."""
    hours = 743
    rows: list[dict[str, object]] = []
    for lum, fault in zip(_LUMS.values(), faults, strict=True):
        row = _month_row(lum, hours)
        if fault == "missing":
            continue
        if fault == "moved":  # only a point under tags the inventory no longer has
            row["circuit"] = "old"
        if fault == "short":
            row["hours"] = hours - 24
        if fault == "float":
            row["counter_mwh"] = 7.0
        rows.append(row)
        if fault == "twice":
            rows.append(dict(row))
        if fault == "stranger":  # a luminaire not in the report's inventory
            rows.append({**row, "device_id": "elsewhere"})
    rng.shuffle(rows)
    kept = MonthRows(_LUMS, hours)
    for row in rows:
        if not kept.add(row):
            break
    whole = all(f in ("none", "stranger") for f in faults)
    assert kept.complete() == whole
    if whole:
        assert sorted(kept.ids) == sorted(_LUMS)
        assert all(sums == dict.fromkeys(READ, 7) | {"hours": hours} for _, sums in kept.sums())
