"""Hourly rollups against the raw report: hand-checked hours, and properties over open-ended
readings (any split of a period into rollup ranges, any arrival order, resets, 2^32 wraps,
onboarding, duplicates, gaps, breaks, DST days, intervals straddling hours and days)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from energy.counters import MS_PER_H, Sample
from energy.inventory import Luminaire
from energy.periods import day_edges, to_ms, whole
from energy.report import ALL, Axis, ReportBuilder
from energy.rollup import (
    Rollup,
    add_hour,
    candidate_days,
    compute,
    days_touching,
    from_record,
    line,
    merge,
    plan,
    whole_days,
)
from tests.energy_rows import same_rows

M = 60_000
Q = 15 * M
MAX_INTERVAL = 6 * MS_PER_H
GAP_FACTOR = 1.5
LONDON = ZoneInfo("Europe/London")
START = to_ms(datetime(2026, 3, 28, 12, tzinfo=LONDON))  # the spring-forward weekend


def _lum(device_id: str, zone: str = "north", interval_s: int = 900) -> Luminaire:
    return Luminaire(
        device_id=device_id,
        zone=zone,
        circuit="C01",
        baseline_power_w=100,
        report_interval_s=interval_s,
    )


INVENTORY = {"a": _lum("a"), "b": _lum("b", "south"), "c": _lum("c", "south", 3600)}


def _window(samples: Sequence[Sample], a: int, b: int) -> list[Sample]:
    """What a reader of ``[a, b)`` fetches: readings within ``MAX_INTERVAL`` around it."""
    return [s for s in samples if a - MAX_INTERVAL <= s.t_ms <= b + MAX_INTERVAL]


def _axes(start: int, end: int, tz: ZoneInfo) -> dict[str, Axis]:
    return {
        "device": Axis(lambda lum: lum.device_id, *whole(start, end)),
        "zone_day": Axis(lambda lum: lum.zone, *day_edges(start, end, tz)),
        "day": Axis(lambda _l: ALL, *day_edges(start, end, tz)),
    }


def _raw(
    readings: Mapping[str, Sequence[Sample]],
    start: int,
    end: int,
    tz: ZoneInfo,
    accept: tuple[int, int] | None = None,
) -> ReportBuilder:
    builder = ReportBuilder(
        start,
        end,
        INVENTORY,
        _axes(start, end, tz),
        gap_factor=GAP_FACTOR,
        max_interval_ms=MAX_INTERVAL,
        accept=accept,
    )
    lo, hi = accept or (start, end)
    for device_id, samples in readings.items():
        for sample in sorted(_window(samples, lo, hi), key=lambda s: s.t_ms):
            builder.push(device_id, sample)
    builder.finish()
    return builder


def _rollups(readings: Mapping[str, Sequence[Sample]], cuts: list[int]) -> dict[int, Rollup]:
    """Rollups computed range by range between ``cuts`` (hours), each from its own window."""
    out: dict[tuple[str, int], Rollup] = {}
    for a, b in itertools.pairwise(cuts):
        window = {d: _window(s, a, b) for d, s in readings.items()}
        for row in compute(
            a, b, window, INVENTORY, gap_factor=GAP_FACTOR, max_interval_ms=MAX_INTERVAL
        ):
            out[(row.device_id, row.hour_ms)] = row
    return dict(enumerate(out.values()))


def _via_rollups(
    readings: Mapping[str, Sequence[Sample]],
    rollups: Mapping[int, Rollup],
    start: int,
    end: int,
    tz: ZoneInfo,
) -> ReportBuilder:
    axes = _axes(start, end, tz)
    builder = ReportBuilder(
        start, end, INVENTORY, axes, gap_factor=GAP_FACTOR, max_interval_ms=MAX_INTERVAL
    )
    usable = {row.hour_ms for row in rollups.values()}
    edge = max(lum.report_interval_s for lum in INVENTORY.values()) * 1000 * GAP_FACTOR
    chosen = plan(start, end, [a.edges for a in axes.values()], edge, usable)
    hours = set(chosen.hours)
    for row in rollups.values():
        if row.hour_ms in hours:
            add_hour(builder, row)
    for a, b in chosen.raw:
        merge(builder, _raw(readings, start, end, tz, accept=(a, b)))
    return builder


@st.composite
def _device(draw: st.DrawFn, interval_ms: int) -> list[Sample]:
    """Readings with jitter, gaps, breaks, resets, 2^32 wraps, duplicates, no-counter stretches
    and an onboarding at any time."""
    t = START - draw(st.integers(-30, 30)) * 30 * M
    energy = draw(st.sampled_from([0.0, 50_000.0, 2.0**32 - 300]))
    out: list[Sample] = []
    for _ in range(draw(st.integers(0, 90))):
        step = draw(
            st.sampled_from(["ok", "ok", "ok", "ok", "gap", "break", "reset", "dup", "nocounter"])
        )
        jitter = draw(st.integers(-interval_ms // 10, interval_ms // 10))
        t += interval_ms + jitter
        if step == "gap":
            t += draw(st.integers(1, 5)) * interval_ms
        elif step == "break":
            t += MAX_INTERVAL + draw(st.integers(0, 3)) * MS_PER_H
        on = draw(st.booleans())
        power = 40.0 if on else 0.0
        energy += power * (interval_ms / MS_PER_H) * draw(st.floats(0, 1.2))
        value: float | None = energy
        if step == "reset":
            energy = value = float(draw(st.integers(0, 30)))
        elif step == "nocounter":
            value = None
        sample = Sample(t, value, power, on, draw(st.sampled_from([None, 50.0, 100.0])))
        out.append(sample)
        if step == "dup":
            out.append(sample)
    return out


@st.composite
def _case(draw: st.DrawFn) -> tuple[dict[str, list[Sample]], int, int, list[int], str, int]:
    readings = {
        "a": draw(_device(Q)),
        "b": draw(_device(Q)),
        "c": draw(_device(MS_PER_H)),
    }
    start = START + draw(st.integers(-8, 40)) * 5 * M
    end = start + draw(st.integers(1, 60)) * 20 * M
    first, last = start - start % MS_PER_H, end - end % MS_PER_H + MS_PER_H
    inner = draw(st.lists(st.integers(first // MS_PER_H, last // MS_PER_H), max_size=6))
    cuts = sorted({first, last, *(h * MS_PER_H for h in inner)})
    tz = draw(st.sampled_from(["Europe/London", "Asia/Kolkata", "America/New_York"]))
    return readings, start, end, cuts, tz, draw(st.integers(0, 2**31))


@settings(max_examples=60, deadline=None)
@given(_case())
def test_reports_from_rollups_equal_the_raw_report(
    case: tuple[dict[str, list[Sample]], int, int, list[int], str, int],
) -> None:
    readings, start, end, cuts, tz_name, seed = case
    tz = ZoneInfo(tz_name)
    shuffled = {d: random.Random(seed).sample(s, len(s)) for d, s in readings.items()}
    rollups = _rollups(shuffled, cuts)  # any arrival order, any split into ranges
    raw = _raw(readings, start, end, tz)
    via = _via_rollups(readings, rollups, start, end, tz)
    for axis in ("device", "zone_day", "day"):
        same_rows(via.rows(axis), raw.rows(axis))


@settings(max_examples=40, deadline=None)
@given(_case())
def test_any_split_into_ranges_gives_the_same_hours(
    case: tuple[dict[str, list[Sample]], int, int, list[int], str, int],
) -> None:
    readings, _, _, cuts, _, seed = case
    whole_range = _rollups(readings, [cuts[0], cuts[-1]])
    shuffled = {d: random.Random(seed).sample(s, len(s)) for d, s in readings.items()}
    split = _rollups(shuffled, cuts)
    by_key = {(r.device_id, r.hour_ms): r for r in whole_range.values()}
    assert len(split) == len(by_key)
    for row in split.values():
        other = by_key[(row.device_id, row.hour_ms)]
        assert row == other  # every figure an integer: exactly the same


def test_an_interval_straddling_the_hour_is_shared_in_proportion() -> None:
    # 12:50 → 13:05 reads 30 Wh: 20 to the 12:00 hour, 10 to the 13:00 hour.
    h = START  # 12:00 London (UTC+0 on 28 March)
    samples = [Sample(h + 50 * M, 1000.0, 40.0, True, 80.0), Sample(h + 65 * M, 1030.0, 40.0, True)]
    rows = compute(
        h, h + 2 * MS_PER_H, {"a": samples}, {"a": INVENTORY["a"]}, max_interval_ms=MAX_INTERVAL
    )
    first, second = rows
    assert first.counter_mwh == 20_000
    assert second.counter_mwh == 10_000
    assert (first.readings, second.readings) == (1, 1)
    assert first.burning_ms == 10 * M
    assert first.dim_pct_ms == 80 * 10 * M  # the dim level known
    assert first.baseline_mw_ms == 100_000 * 10 * M
    assert first.gap
    assert second.gap
    assert first.method == "counter"


def test_a_wrap_and_a_reset_are_flagged_and_counted_once() -> None:
    h = START
    samples = [
        Sample(h, 2.0**32 - 10, 40.0, True),
        Sample(h + 15 * M, 5.0, 40.0, True),  # wrapped: 5 Wh since, flagged as a reset
        Sample(h + 30 * M, 15.0, 40.0, True),
        Sample(h + 45 * M, 25.0, 40.0, True),
        Sample(h + 60 * M, 35.0, 40.0, True),
    ]
    (row,) = compute(
        h, h + MS_PER_H, {"a": samples}, {"a": INVENTORY["a"]}, max_interval_ms=MAX_INTERVAL
    )
    assert row.counter_mwh == 35_000
    assert row.verified_mwh == 30_000
    assert (row.resets, row.gap, row.readings) == (1, True, 4)


def test_a_break_longer_than_max_interval_counts_no_energy() -> None:
    h = START
    samples = [Sample(h, 100.0, 40.0, True), Sample(h + 7 * MS_PER_H, 380.0, 40.0, True)]
    rows = compute(
        h, h + 8 * MS_PER_H, {"a": samples}, {"a": INVENTORY["a"]}, max_interval_ms=MAX_INTERVAL
    )
    assert sum(r.counter_mwh for r in rows) == 0
    assert all(r.gap for r in rows)


def test_the_line_round_trips() -> None:
    (row,) = compute(
        START,
        START + MS_PER_H,
        {"a": [Sample(START - Q, 1.0, 40.0, True), Sample(START + Q, 11.0 / 3, 40.0, True)]},
        {"a": INVENTORY["a"]},
        max_interval_ms=MAX_INTERVAL,
    )
    text = line(row)
    series, fields, time = text.split(" ")
    assert series == "energy_hourly,circuit=C01,device_id=a,zone=north"
    assert int(time) == START
    record: dict[str, object] = {"time": START, "device_id": "a", "zone": "north", "circuit": "C01"}
    for pair in fields.split(","):
        key, value = pair.split("=")
        if value.endswith("i"):
            record[key] = int(value[:-1])
        elif value in ("true", "false"):
            record[key] = value == "true"
        elif value.startswith('"'):
            record[key] = value.strip('"')
        else:
            record[key] = float(value)
    assert from_record(record) == row


def test_an_onboarding_just_after_midnight_keeps_the_day_flagged() -> None:
    # Device a reports from 00:10 on 29 March only: the day's first ten minutes are a stretch
    # without readings that began before the period, so "missing" (flagged) for the raw report;
    # the rollup hour 00:00 must say so too, though the stretch inside it is short.
    midnight = to_ms(datetime(2026, 3, 29, tzinfo=LONDON))
    samples = [
        Sample(t, 1000.0 + (t - midnight) / MS_PER_H * 40, 40.0, True)
        for t in range(midnight + 10 * M, midnight + 30 * MS_PER_H, Q)
    ]
    readings = {"a": samples, "b": [], "c": []}
    start, end = START, to_ms(datetime(2026, 3, 30, tzinfo=LONDON))  # 29 March: 23 h
    rollups = _rollups(readings, [START, midnight, end])
    raw = _raw(readings, start, end, LONDON)
    via = _via_rollups(readings, rollups, start, end, LONDON)
    north = [r for r in raw.rows("zone_day") if r.key == "north"]
    assert [r.gap for r in north] == [True, True]
    same_rows(via.rows("zone_day"), raw.rows("zone_day"))


def test_daily_rollups_take_whole_civil_days_inside_one_bin() -> None:
    spring = to_ms(datetime(2026, 3, 29, tzinfo=LONDON))
    days = whole_days(spring - 5 * MS_PER_H, spring + 60 * MS_PER_H, LONDON)
    assert [(b - a) // MS_PER_H for a, b in days] == [23, 24]  # 29 March is 23 h long
    assert days[0][0] == spring
    assert days_touching(spring + MS_PER_H, spring + 2 * MS_PER_H, LONDON) == [days[0]]
    # a report from 28 March 00:00 to 31 March 00:00 by day: the 28th and the 30th are too
    # close to the ends (the longest gap), the 29th is taken; by half-hours nothing is
    start, end = (
        to_ms(datetime(2026, 3, 28, tzinfo=LONDON)),
        to_ms(datetime(2026, 3, 31, tzinfo=LONDON)),
    )
    by_day = [day_edges(start, end, LONDON)[0]]
    assert candidate_days(start, end, by_day, 1.5 * Q, LONDON) == [days[0]]
    kolkata = ZoneInfo("Asia/Kolkata")
    assert candidate_days(start, end, by_day, 1.5 * Q, kolkata) == []  # days cut by London's
    chosen = plan(start, end, by_day, 1.5 * Q, set(range(start, end, MS_PER_H)), [days[0]])
    assert not any(days[0][0] <= h < days[0][1] for h in chosen.hours)
    assert chosen.raw == [(start, start + MS_PER_H), (end - MS_PER_H, end)]
