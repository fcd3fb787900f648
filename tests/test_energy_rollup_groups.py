"""Rollups per (zone, circuit) and per zone on a real InfluxDB: built inside InfluxDB from the
per-luminaire rollups at local midnight, read by reports by zone, circuit, day and month with the
same rows as the raw report (compared exactly), rebuilt with a late backlog, and left alone (the
per-luminaire rollups read instead) when the inventory changed under them."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest

from dashboards import energy as energy_panels
from dashboards.build import build_dashboards
from dashboards.interpolate import TimeRange, Variable, interpolate
from energy import rollup_edge_reads, rollup_raw, rollup_reader
from energy.inventory import read_inventory
from energy.retention import RetentionConfig
from energy.rollup_store import RollupConfig
from energy.upkeep import DirtyHours, Upkeep, UpkeepConfig
from influx.client import InfluxTarget, InfluxWriter
from servers import query, quote_ident, write_points
from tests.energy_fleet import City
from tests.test_energy_rollup_influx import (
    END,
    START,
    H,
    _report,
    _report_said,
    _rollup,
    city,
)

pytestmark = pytest.mark.integration
__all__ = ["city"]  # the fixture, imported for these tests

PERIODS = [
    ("--by", "zone", "--from", "2026-03-28", "--to", "2026-03-31"),
    ("--by", "circuit", "--from", "2026-03-28T10:20:00Z", "--to", "2026-03-30T17:40:00Z"),
    ("--by", "day", "--from", "2026-03-28T03:10:00+00:00", "--to", "2026-03-31"),
    ("--by", "month", "--from", "2026-03-28", "--to", "2026-03-31"),
]


def _said(city: City, *args: str) -> tuple[list[dict[str, object]], str]:
    """The report's rows from rollups and what it said, on one line."""
    rows, said = _report_said(city, "rollups", *args)
    return rows, " ".join(said.split())


def _rows(city: City, statement: str) -> list[dict[str, object]]:
    answer = query(city.url, statement, db=city.database)
    out = []
    for series in answer["results"][0].get("series", []):
        for values in series["values"]:
            out.append(
                {**series.get("tags", {}), **dict(zip(series["columns"], values, strict=True))}
            )
    return out


def test_group_levels_are_the_sums_of_their_luminaires_at_local_midnight(city: City) -> None:
    _rollup(city)
    groups = _rows(
        city,
        'SELECT "luminaires", "hours", "readings", "metered_mwh" FROM "rollups".'
        '"energy_group_daily" GROUP BY "zone", "circuit"',
    )
    # 4 (zone, circuit) pairs × 3 London days, at local midnight (29 March: 23 h)
    assert len(groups) == 12
    assert {(g["zone"], g["circuit"], g["luminaires"]) for g in groups} == {
        ("north", "C01", 2),
        ("north", "C02", 1),
        ("south", "C03", 2),
        ("south", "C04", 1),
    }
    midnights = sorted({str(g["time"]) for g in groups})
    assert midnights == ["2026-03-28T00:00:00Z", "2026-03-29T00:00:00Z", "2026-03-29T23:00:00Z"]
    devices = _rows(
        city,
        'SELECT sum("readings"), sum("metered_mwh"), sum("hours") FROM "rollups"."energy_daily" '
        'GROUP BY time(1h), "zone", "circuit" fill(none)',
    )
    by_key = {(d["zone"], d["circuit"], d["time"]): d for d in devices}
    for g in groups:
        d = by_key[(g["zone"], g["circuit"], g["time"])]
        assert (g["readings"], g["hours"]) == (d["sum"], d["sum_2"])
        assert g["metered_mwh"] == d["sum_1"]  # integers: exact in any order
        assert isinstance(g["metered_mwh"], int)
    zones = _rows(city, 'SELECT "luminaires" FROM "rollups"."energy_zone_daily" GROUP BY "zone"')
    assert (
        sorted((z["zone"], z["luminaires"]) for z in zones)
        == [("north", 3)] * 3 + [("south", 3)] * 3
    )
    hourly = _rows(
        city, 'SELECT count("luminaires") FROM "rollups"."energy_group_hourly" GROUP BY "zone"'
    )
    assert sorted((h["zone"], h["count"]) for h in hourly) == [("north", 142), ("south", 142)]


@pytest.mark.parametrize("args", PERIODS)
def test_reports_by_group_read_the_group_level_and_print_the_raw_rows(
    city: City, args: tuple[str, ...]
) -> None:
    _rollup(city)
    raw = _report(city, "raw", *args)
    via, said = _said(city, *args)
    assert via == raw  # every field of every row, exactly
    assert any(r["gap"] for r in raw)
    if args[1] in ("zone", "month"):
        # the first and last hour too (only s3 in doubt there: the period's own first and last
        # hours flag nothing for the others), s3 raw in the first
        assert "1 whole days and 46 whole hours from rollups" in said
        assert "(1 days and 46 hours per zone and circuit" in said
    else:
        assert "hours per zone and circuit" in said
        assert "(0 days and 0 hours per zone and circuit" not in said


def test_by_device_reads_per_luminaire_rollups(city: City) -> None:
    _rollup(city)
    args = ("--by", "device", "--from", "2026-03-28", "--to", "2026-03-31")
    via, said = _said(city, *args)
    assert "1 whole days and 46 whole hours from rollups" in said
    assert "(0 days and 0 hours per zone and circuit" in said
    assert via == _report(city, "raw", *args)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("s3,south,C04,51.5,-0.1,40,100,", "s3,south,C04,51.5,-0.1,40,90,"),  # a baseline edited
        ("s3,south,C04", "s3,south,C03"),  # moved to another circuit, not rebuilt
    ],
)
def test_an_inventory_changed_under_the_groups_sends_the_report_to_per_luminaire_rollups(
    city: City, before: str, after: str
) -> None:
    _rollup(city)
    inventory = city.tmp / "inventory.csv"
    assert before in inventory.read_text()
    inventory.write_text(inventory.read_text().replace(before, after))
    args = ("--by", "zone", "--from", "2026-03-28", "--to", "2026-03-31")
    via, said = _said(city, *args)
    assert "(0 days and 0 hours per zone and circuit" in said
    assert via == _report(city, "raw", *args)
    _rollup(city)  # rebuilt: the groups hold the inventory again
    _, said = _said(city, *args)
    if "90" in after:
        assert "(1 days and 46 hours per zone and circuit" in said


def test_a_late_backlog_rebuilds_its_groups_hours_and_days(city: City) -> None:
    inventory = read_inventory(Path(city.tmp / "inventory.csv"))
    dirty = DirtyHours()
    config = UpkeepConfig(
        every_s=3600,
        settle_s=1200,
        rollups=RollupConfig(max_interval_ms=6 * H, tz="Europe/London"),
        retention=RetentionConfig(),
    )
    now = END / 1000 + 7 * 3600
    state = city.tmp / "rollups.json"
    state.write_text(json.dumps({"watermark_ms": START - H}))

    async def tick(watermark: int) -> int:
        async with InfluxWriter(InfluxTarget(city.url, city.database)) as writer:
            upkeep = Upkeep(writer, inventory, state, config, dirty, clock=lambda: now)
            return await upkeep.tick(watermark)

    asyncio.run(tick(START - H))
    args = ("--by", "zone", "--from", "2026-03-28", "--to", "2026-03-31")
    before = {r["zone"]: r for r in _report(city, "rollups", *args)}
    late = list(reversed(city.backlog))
    for i in range(0, len(late), 3):
        write_points(city.url, city.database, late[i : i + 3])
        dirty.note(late[i : i + 3])
    asyncio.run(tick(END + 6 * H))
    after, said = _said(city, *args)
    # s3, silent before the 29th, is read raw in the first hour; the rest from rollups
    assert "(1 days and 46 hours per zone and circuit" in said
    assert "1 luminaire(s) silent around the period (s3)" in said
    assert after == _report(city, "raw", *args)
    north = next(r for r in after if r["zone"] == "north")
    assert north["readings"] == before["north"]["readings"] + len(city.backlog)


@pytest.mark.parametrize("by", ["zone", "device", "day"])
@pytest.mark.parametrize(
    ("period", "raw_h"),
    [
        (("2026-03-28", "2026-03-31"), "0 h"),
        (("2026-03-28T10:20:00Z", "2026-03-30T17:40:00Z"), "1.33333 h"),  # the partial hours
    ],
)
def test_when_every_luminaire_reported_around_the_period_no_whole_hour_is_read_raw(
    city: City, by: str, period: tuple[str, str], raw_h: str
) -> None:
    _rollup(city, "2026-03-27", "2026-04-01")  # the hours around the period too
    args = ("--by", by, "--zone", "north", "--from", *period[:1], "--to", period[1])
    via, said = _said(city, *args)
    assert f", {raw_h} from raw readings" in said
    assert "silent around the period" not in said
    assert via == _report(city, "raw", *args)


@pytest.mark.parametrize("by", ["zone", "circuit", "month"])
@pytest.mark.parametrize(
    ("period", "silent", "sums"),
    [
        # s3 (alone on south C04) starts 7 min into the period: an edge for the raw report
        (
            ("2026-03-29T02:00:00Z", "2026-03-31"),
            "1 luminaire(s) silent around the period (s3)",
            "(7 group and 0 luminaire sums)",  # 3 groups in the first hour, 4 in the last
        ),
        # n2 (its backlog not yet in) and n3 (an outage) silent before it; n1, n2's neighbour on
        # north C01, read from its own hourly point
        (
            ("2026-03-29T19:00:00Z", "2026-03-31"),
            "2 luminaire(s) silent around the period (n2, n3)",
            "(6 group and 1 luminaire sums)",  # south C03, C04 and n1 first; 4 groups last
        ),
    ],
)
def test_a_silent_luminaire_has_only_its_own_edge_hours_read_raw(
    city: City, by: str, period: tuple[str, str], silent: str, sums: str
) -> None:
    _rollup(city, "2026-03-27", "2026-04-01")
    args = ("--by", by, "--from", period[0], "--to", period[1])
    via, said = _said(city, *args)
    raw = _report(city, "raw", *args)
    print(json.dumps(raw, indent=1))  # the raw report's rows, which the rollups gave exactly
    assert via == raw
    assert ", 0 h from raw readings" in said  # no hour read raw for every luminaire
    assert silent in said
    assert f"2 edge hour(s) from rollups {sums}" in said
    hours = silent.count(",") + 1  # one edge hour each, at the start
    assert f": {hours} luminaire-hour(s) of theirs from raw readings" in said


def test_a_refused_group_level_leaves_the_build_and_the_report_right(city: City) -> None:
    """A field of another type where the 29th's group sums go (a shard InfluxDB will not write
    them into): the INTO is refused, the build carries on, the level's day is deleted, and the
    report reads that day from the per-luminaire rollups."""
    database = quote_ident(city.database)
    query(city.url, f"CREATE RETENTION POLICY rollups ON {database} DURATION INF REPLICATION 1")
    day = START + 24 * H  # 29 March, London midnight (UTC+0 until 01:00)
    params = urlencode({"db": city.database, "rp": "rollups", "precision": "ms"})
    body = f'energy_group_daily,circuit=C01,zone=north readings="text" {day}'.encode()
    with urlopen(Request(f"{city.url}/write?{params}", data=body), timeout=10) as answer:  # noqa: S310
        assert answer.status == 204
    _rollup(city)  # exits 0 (asserted)
    conflicting = _rows(city, 'SELECT "readings" FROM "rollups"."energy_group_daily" GROUP BY *')
    assert all(not isinstance(r["readings"], str) for r in conflicting)
    assert all(r["time"] != "2026-03-29T00:00:00Z" for r in conflicting)  # the day deleted
    args = ("--by", "zone", "--from", "2026-03-28", "--to", "2026-03-31")
    via, said = _said(city, *args)
    assert "1 whole days and 46 whole hours from rollups (0 days and 46 hours per zone" in said
    assert via == _report(city, "raw", *args)


EVERY_ZONE = Variable(("north", "south"), multi=True)
"""Every zone of the city selected one by one (Grafana joins them as a regex)."""


def _dashboard(city: City, panel: str, zone: Variable = EVERY_ZONE) -> dict[tuple[str, int], float]:
    """One of the energy dashboard's queries over the three London days, every zone selected:
    its values by (zone, or "" for a sum over zones) and time (ms)."""
    statement = interpolate(panel, {"zone": zone}, TimeRange(START, END - 1))
    answer = query(city.url, statement, db=city.database, epoch="ms")
    out = {}
    for series in answer["results"][0].get("series", []):
        for t, value in series["values"]:
            if value is not None:
                out[(series.get("tags", {}).get("zone", ""), int(t))] = value
    return out


def test_the_energy_dashboard_shows_the_raw_reports_figures(city: City) -> None:
    """The energy dashboard's panels on ``energy_zone_daily``, against the raw report of each
    London day (per zone, and for all zones): kWh and burning hours print the same (InfluxDB
    divides the same integers the report divides, then the report rounds to 6 decimals); the
    baseline panel shows the unrounded figure, within half a mWh of the report's."""
    _rollup(city)
    kwh = _dashboard(city, energy_panels.KWH_PER_ZONE_DAY)
    hours = _dashboard(city, energy_panels.BURNING_HOURS_PER_ZONE_DAY)
    verified = _dashboard(city, energy_panels.VERIFIED_KWH_PER_DAY)
    baseline = _dashboard(city, energy_panels.BASELINE_KWH_PER_DAY)
    days = ["2026-03-28", "2026-03-29", "2026-03-30", "2026-03-31"]
    for day, (a, b) in enumerate(itertools.pairwise(days)):
        midnight = START + (24 * day - (1 if day == 2 else 0)) * H  # the 29th has 23 h
        for zone in ("north", "south"):
            (row,) = _report(city, "raw", "--by", "zone", "--zone", zone, "--from", a, "--to", b)
            assert round(kwh[(zone, midnight)], 6) == row["metered_kwh"], (zone, a)
            assert round(hours[(zone, midnight)], 6) == row["burning_h"], (zone, a)
        (total,) = _report(city, "raw", "--by", "day", "--from", a, "--to", b)
        assert round(verified[("", midnight)], 6) == total["verified_kwh"], a
        assert abs(baseline[("", midnight)] - total["baseline_kwh"]) <= 0.5e-6, a


def test_all_zones_on_the_energy_dashboard_is_a_short_query_with_every_zones_figures(
    city: City,
) -> None:
    """ "All" of the zone variable sends its custom all value (`.*`: one short regex, not every
    zone of a city joined), and each of the energy dashboard's queries answers with it exactly
    what it answers with every zone selected one by one."""
    _rollup(city)
    energy = build_dashboards()["energy.json"]
    (zone,) = [v for v in energy["templating"]["list"] if v["name"] == "zone"]
    assert zone["includeAll"]
    assert zone["allValue"] == ".*"
    everything = Variable.all(zone["allValue"])
    queries = [t["query"] for p in energy["panels"] for t in p.get("targets", [])]
    assert len(queries) == 5
    for panel in queries:
        statement = interpolate(panel, {"zone": everything}, TimeRange(START, END - 1))
        assert '"zone" =~ /^.*$/' in statement
        listed = _dashboard(city, panel)
        assert len({t for _, t in listed}) == 3, panel  # the three London days
        assert _dashboard(city, panel, everything) == listed, panel


@pytest.mark.parametrize("by", ["zone", "device"])
@pytest.mark.parametrize(
    ("end", "raw_h"), [("2026-03-30T12:00:00Z", "0 h"), ("2026-03-30T12:40:00Z", "0.666667 h")]
)
def test_a_report_up_to_now_reads_no_whole_hour_raw(
    city: City, by: str, end: str, raw_h: str
) -> None:
    """Nothing rolled up around the period (before its start, nor after its end: a report up
    to now, the next hour not closed yet), but the readings go on past both ends and the
    period's first and last whole hours were rolled up with them in view: they flag nothing,
    so no luminaire is in doubt and no whole hour is read raw (before: every luminaire silent
    at both ends, the edge hours read raw for all of them)."""
    _rollup(city, "2026-03-29T06:00:00Z", "2026-03-30T12:00:00Z")
    args = ("--by", by, "--from", "2026-03-29T06:00:00Z", "--to", end)
    via, said = _said(city, *args)
    assert via == _report(city, "raw", *args)
    assert f", {raw_h} from raw readings" in said  # the partial hour only
    assert "silent around the period" not in said


@pytest.mark.parametrize(
    ("end", "silent"),
    [
        ("2026-03-30T12:00:00Z", 6),  # on the hour: the last readings 0-25 min before the end
        ("2026-03-30T12:20:00Z", 6),  # past the newest reading, off the hour
        ("2026-03-30T14:00:00Z", 6),  # hours past it: every stretch at the end is missing
    ],
)
def test_a_report_past_the_newest_reading_reads_those_in_doubt_raw(
    city: City, end: str, silent: int
) -> None:
    """The readings stop at 11:50: the hours rolled up from there flag every luminaire (no
    reading after its last), where the raw report calls the stretch after a luminaire's last
    reading an edge, not flagged, when shorter than its gap. Every luminaire is in doubt at the
    end (its last whole hour flags it), its edge hours are read raw, and the rows are the raw
    report's (south's gap flag among them)."""
    query(city.url, "DELETE FROM telemetry WHERE time >= '2026-03-30T11:50:00Z'", db=city.database)
    _rollup(city, "2026-03-27", "2026-04-01")
    args = ("--by", "zone", "--from", "2026-03-29T06:00:00Z", "--to", end)
    via, said = _said(city, *args)
    raw = _report(city, "raw", *args)
    assert via == raw
    assert f"{silent} luminaire(s) silent around the period" in said
    if end.endswith("12:00:00Z"):
        assert [r["gap"] for r in raw if r["zone"] == "south"] == [False]


@pytest.mark.parametrize("by", ["zone", "device"])
@pytest.mark.parametrize("by_name", [True, False])
def test_raw_ranges_read_a_few_luminaires_at_a_time_give_the_raw_rows(
    city: City, monkeypatch: pytest.MonkeyPatch, by: str, by_name: bool
) -> None:
    """The partial hours at the ends and the hours without rollups, read raw for every
    luminaire two luminaires at a time (three part builders; the window's answer, read from the
    longest report interval before it, taken device range by device range, the look-up after
    it kept aside): the raw report's rows. n2 (its backlog not in) and n3 (an outage) have no
    reading in that hour before the hours without rollups: their reading before it is looked
    up, by name or (more of them than ``RAW_DEVICES_MAX``) for every series."""
    monkeypatch.setattr(rollup_raw, "PART_DEVICES", 2)
    if not by_name:
        for module in (rollup_raw, rollup_edge_reads, rollup_reader):
            monkeypatch.setattr(module, "RAW_DEVICES_MAX", 1)
    _rollup(city, "2026-03-28", "2026-03-29T20:00:00Z")  # after that: no rollups, read raw
    args = ("--by", by, "--from", "2026-03-28T10:20:00Z", "--to", "2026-03-30T17:40:00Z")
    via, said = _said(city, *args)
    assert via == _report(city, "raw", *args)
    assert "whole hours from rollups" in said
    assert "hour(s) lacked a device's rollup and were read raw" in said
