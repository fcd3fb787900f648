"""The counter arithmetic: hand-computed tables, and properties over open-ended readings."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from energy.counters import (
    MS_PER_H,
    Sample,
    counter_step,
    energy_between,
    intervals,
    milli,
    part,
    shares,
)
from energy.integrate import trapezoid_mwh
from energy.periods import day_edges, half_hour_edges, month_edges, to_ms

M = 60_000  # one minute in ms
GAP = 1.5 * 15 * M  # 15-minute interval


def s(minute: int, wh: float | None, on: bool = True, p: float | None = 100.0) -> Sample:
    return Sample(minute * M, wh, p, on, 100 if on else 0)


@pytest.mark.parametrize(
    ("before", "after", "energy", "reset"),
    [
        (1000.0, 1025.0, 25_000, False),  # a step
        (1000.0, 1000.0, 0, False),  # lamp off
        (1000.0, 3.0, 3_000, True),  # a fall is a reset: 3 Wh since the restart
        (1000.0, 0.0, 0, True),  # reset to exactly zero
        (2.0**32 - 5, 7.0, 7_000, True),  # a 2^32 Wh wrap reads as a reset, flagged
        (2.0**32 - 0.0015, 2.0**32 - 0.0005, 1, False),  # mWh kept near 2^32 Wh
        (0.0004, 0.0005, 1, False),  # each value rounded to the mWh once, halves up
    ],
)
def test_counter_step(before: float, after: float, energy: int, reset: bool) -> None:
    assert counter_step(milli(before), milli(after)) == (energy, reset)


@pytest.mark.parametrize(
    ("samples", "energy", "kinds"),
    [
        # onboarding: the first reading's lifetime of 50,000 Wh is not consumption
        ([s(0, 50_000), s(15, 50_025), s(30, 50_050)], 50_000, ["ok", "ok"]),
        # duplicates (same instant) count once, in any order
        ([s(15, 25), s(0, 0), s(15, 25), s(30, 50)], 50_000, ["ok", "ok"]),
        # a reset between readings: 10 Wh since the restart, the rest unknown
        ([s(0, 900), s(15, 925), s(30, 10), s(45, 35)], 60_000, ["ok", "reset", "ok"]),
        # a 2^32 Wh wrap: 7 Wh since it, flagged as a reset
        ([s(0, 2.0**32 - 30), s(15, 2.0**32 - 5), s(30, 7)], 32_000, ["ok", "reset"]),
        # a gap of an hour: the counter still gives its energy, flagged
        ([s(0, 0), s(15, 25), s(75, 125)], 125_000, ["ok", "gap"]),
        # no counter: the power's trapezoid, 100 W for 15 min = 25 Wh
        ([s(0, None), s(15, None)], 25_000, ["ok"]),
        # no counter and no power: nothing known
        ([s(0, None, p=None), s(15, None, p=None)], 0, ["missing"]),
    ],
)
def test_intervals(samples: list[Sample], energy: int, kinds: list[str]) -> None:
    ivs = intervals(samples, GAP)
    assert [iv.kind for iv in ivs] == kinds
    assert sum(iv.energy_mwh for iv in ivs) == energy


def test_values_no_register_holds_are_read_as_absent() -> None:
    """A counter or power of 2^40 or more (or NaN) is no reading's: the interval falls back to
    the power, or to nothing known; a dim level outside 0–100 % is unknown (100 % assumed)."""
    lit = [Sample(0, 0.0, 100.0, True, 250), Sample(15 * M, 2.0**40, 100.0, True, 250)]
    (iv,) = intervals(lit, GAP)
    assert (iv.method, iv.energy_mwh, iv.dim_on_ms) == ("power", 25_000, 100 * 15 * M)
    (iv,) = intervals([Sample(0, 1e300, 2.0**41), Sample(15 * M, 5.0, math.nan)], GAP)
    assert (iv.method, iv.energy_mwh, iv.kind) == ("none", 0, "missing")


def test_burning_time_at_dusk_comes_from_the_energy() -> None:
    # Off at 0, on at 15 with 100 W; 10 Wh drawn: lit for 6 of the 15 minutes.
    (iv,) = intervals([s(0, 0, on=False, p=0), s(15, 10, on=True, p=100)], GAP)
    assert iv.on_ms == 6 * M
    assert iv.dim_on_ms == 100 * 6 * M
    both = intervals([s(0, 0), s(15, 25)], GAP)[0]
    assert both.on_ms == 15 * M
    neither = intervals([s(0, 0, on=False, p=0), s(15, 0, on=False, p=0)], GAP)[0]
    assert neither.on_ms == 0


def test_a_period_boundary_mid_interval_shares_by_time() -> None:
    # 30 Wh over [0, 15 min); the boundary at 5 min takes a third before, two thirds after.
    ivs = intervals([s(0, 100), s(15, 130)], GAP)
    assert energy_between(ivs, 0, 5 * M) == 10_000
    assert energy_between(ivs, 5 * M, 60 * M) == 20_000
    assert list(shares(0, 15 * M, [0, 5 * M, 60 * M])) == [(0, 0, 5 * M), (1, 5 * M, 15 * M)]
    assert list(shares(0, 15 * M, [20 * M, 30 * M])) == []


def test_shares_are_telescoping_floors_at_the_cut_points() -> None:
    # 10 mWh over 3 ms: F(t) = floor(10 t / 3) = 0, 3, 6, 10 at t = 0..3
    assert [part(10, 0, 3, t, t + 1) for t in range(3)] == [3, 3, 4]
    assert part(10, 0, 3, 0, 2) == 6  # whichever way [0, 2) is split
    assert part(10, 0, 3, -5, 99) == 10  # clamped to the interval
    assert part(10, 0, 3, 3, 9) == 0


def test_integrate() -> None:
    assert trapezoid_mwh(100_000, 0, 36 * M) == 30_000
    assert trapezoid_mwh(1, 0, MS_PER_H) == 1  # 0.5 mWh: halves up
    assert trapezoid_mwh(1, 0, MS_PER_H - 1) == 0


LONDON = ZoneInfo("Europe/London")


def test_days_follow_the_wall_clock_across_dst() -> None:
    # Europe/London: clocks go forward on 29 March 2026 (23 h) and back on 25 October (25 h).
    start = to_ms(datetime(2026, 3, 28, tzinfo=LONDON))
    end = to_ms(datetime(2026, 3, 31, tzinfo=LONDON))
    edges, labels = day_edges(start, end, LONDON)
    assert labels == ["2026-03-28", "2026-03-29", "2026-03-30"]
    assert [(b - a) / 3_600_000 for a, b in itertools.pairwise(edges)] == [24, 23, 24]
    autumn = to_ms(datetime(2026, 10, 25, tzinfo=LONDON))
    edges, _ = day_edges(autumn, autumn + 25 * 3_600_000, LONDON)
    assert edges == [autumn, autumn + 25 * 3_600_000]
    _, periods = half_hour_edges(autumn, autumn + 25 * 3_600_000, LONDON)
    assert periods[0] == "2026-10-25/01"
    assert periods[-1] == "2026-10-25/50"  # 50 settlement periods on the long day
    _, months = month_edges(start, to_ms(datetime(2026, 5, 2, tzinfo=UTC)), LONDON)
    assert months == ["2026-03", "2026-04", "2026-05"]


def test_energy_on_the_short_day_is_its_23_hours() -> None:
    # 10 W all the time, a reading every 15 min over the spring-forward weekend.
    start = to_ms(datetime(2026, 3, 28, tzinfo=LONDON))
    end = to_ms(datetime(2026, 3, 31, tzinfo=LONDON))
    samples = [Sample(t, (t - start) / 3_600_000 * 10) for t in range(start, end + 1, 15 * M)]
    ivs = intervals(samples, GAP)
    edges, _ = day_edges(start, end, LONDON)
    per_day = [energy_between(ivs, a, b) for a, b in itertools.pairwise(edges)]
    assert per_day == [240_000, 230_000, 240_000]


@st.composite
def _readings(draw: st.DrawFn) -> list[Sample]:
    n = draw(st.integers(2, 40))
    times = sorted(draw(st.lists(st.integers(0, 10_000 * M), min_size=n, max_size=n)))
    counters = draw(
        st.lists(
            st.floats(0, 1e6, allow_nan=False) | st.floats(2.0**32 - 1e3, 2.0**32),
            min_size=n,
            max_size=n,
        )
    )
    return [Sample(t, e) for t, e in zip(times, counters, strict=True)]


@given(_readings(), st.lists(st.integers(0, 10_000 * M), max_size=30))
def test_splitting_a_period_never_changes_the_total(samples: list[Sample], cuts: list[int]) -> None:
    ivs = intervals(samples, GAP)
    start, end = 0, 10_000 * M
    edges = sorted({start, end, *cuts})
    parts = [energy_between(ivs, a, b) for a, b in itertools.pairwise(edges)]
    whole = energy_between(ivs, start, end)
    assert sum(parts) == whole
    assert whole == sum(iv.energy_mwh for iv in ivs)
    assert all(iv.energy_mwh >= 0 for iv in ivs)


@given(
    st.integers(0, 2**42),
    st.integers(-(10**12), 10**12),
    st.integers(1, 10**8),
    st.lists(st.integers(-(10**12), 10**12), max_size=20),
)
def test_a_share_depends_only_on_its_cut_points(
    total: int, t0: int, dt: int, cuts: list[int]
) -> None:
    t1 = t0 + dt
    points = sorted({t0, t1, *(min(max(c, t0), t1) for c in cuts)})
    shares_ = [part(total, t0, t1, x, y) for x, y in itertools.pairwise(points)]
    assert sum(shares_) == total
    assert all(share >= 0 for share in shares_)
    # any coarser split: its share is the sum of the finer ones it covers
    for x, y in itertools.combinations(points, 2):
        inside = [p for p in points if x <= p <= y]
        assert part(total, t0, t1, x, y) == sum(
            part(total, t0, t1, a, b) for a, b in itertools.pairwise(inside)
        )


@given(_readings(), st.sampled_from(["Europe/London", "Asia/Shanghai", "America/New_York"]))
def test_the_sum_over_days_equals_the_total(samples: list[Sample], tz: str) -> None:
    ivs = intervals(samples, GAP)
    start, end = 0, 10_000 * M
    edges, _ = day_edges(start, end, ZoneInfo(tz))
    days = [energy_between(ivs, a, b) for a, b in itertools.pairwise(edges)]
    assert sum(days) == energy_between(ivs, start, end)
