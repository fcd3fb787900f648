"""The sun facts, held to a plain computation from astral (what `rules.evaluation.sun` did per
reading
before it kept a day per place): any place, any time, and one clock carried across UTC days,
forwards and backwards, so a kept day can never answer for another."""

import bisect
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from astral import Observer
from astral.sun import elevation, sunrise, sunset
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.evaluation.sun import MAX_EVENTS, SunClock, events_on, sun_facts, sun_tables, tables_of

FAR_MIN = 1e6
EPOCH_DATE = date(1970, 1, 1)


def reference(lat: float, lon: float, at: datetime) -> dict[str, bool | float]:
    """The events of the UTC day and the days either side, then the nearest of each kind."""
    observer = Observer(latitude=round(lat, 6), longitude=round(lon, 6))
    day = at.astimezone(UTC).date()
    events: set[tuple[float, bool]] = set()
    for offset in (-1, 0, 1):
        moment: date = day + timedelta(days=offset)
        for is_rise, compute in ((True, sunrise), (False, sunset)):
            try:
                events.add((compute(observer, moment, tzinfo=UTC).timestamp(), is_rise))
            except ValueError:
                continue
    ordered = sorted(events)
    t = at.timestamp()
    i = bisect.bisect_right([e[0] for e in ordered], t)
    if i > 0:
        is_day = ordered[i - 1][1]
    elif i < len(ordered):
        is_day = not ordered[i][1]
    else:
        is_day = elevation(Observer(latitude=lat, longitude=lon), at) > -0.833
    before, after = ordered[:i], ordered[i:]

    def since(rise: bool) -> float:
        return next(((t - w) / 60 for w, kind in reversed(before) if kind is rise), FAR_MIN)

    def until(rise: bool) -> float:
        return next(((w - t) / 60 for w, kind in after if kind is rise), FAR_MIN)

    return {
        "is_day": is_day,
        "minutes_after_sunset": since(False),
        "minutes_before_sunrise": until(True),
        "minutes_after_sunrise": since(True),
        "minutes_before_sunset": until(False),
    }


moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None)
@given(
    st.floats(min_value=-89.0, max_value=89.0),
    st.floats(min_value=-180.0, max_value=180.0),
    moments,
)
def test_facts_anywhere_anytime(lat: float, lon: float, at: datetime) -> None:
    assert sun_facts(lat, lon, at) == reference(lat, lon, at)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([(31.23, 121.47), (51.5, -0.12), (-33.9, 151.2), (78.2, 15.6), (64.1, -21.9)]),
    moments,
    st.lists(st.floats(min_value=-3000, max_value=3000), min_size=1, max_size=12),
)
def test_one_clock_across_days(
    place: tuple[float, float], start: datetime, steps: list[float]
) -> None:
    """A luminaire's clock asked about times hours apart, across midnight UTC both ways (and
    polar day and night at 78° N), answers as a fresh computation does."""
    clock = SunClock(*place)
    at = start
    for minutes in steps:
        at += timedelta(minutes=minutes)
        assert clock.facts(at) == reference(*place, at), at


@pytest.mark.parametrize("place", [(31.23, 121.47), (40.7, -74.0), (69.6, 18.9)])
def test_a_kept_day_never_answers_for_another(place: tuple[float, float]) -> None:
    """Hour by hour over four days and back, then around midnight UTC to the second: a clock
    that kept answering from the day it first computed would be wrong within a day."""
    clock = SunClock(*place)
    midnight = datetime(2026, 1, 10, tzinfo=UTC)
    hours = [*range(-24, 72), *range(72, -24, -5)]
    times = [midnight + timedelta(hours=h) for h in hours]
    times += [midnight + timedelta(seconds=s) for s in (-1, 0, 1, -1, 86399, 86400, 86401)]
    for at in times:
        assert clock.facts(at) == reference(*place, at), at


def astral_events(observer: Observer, day: date) -> tuple[tuple[float, bool], ...]:
    out = []
    for is_rise, compute in ((True, sunrise), (False, sunset)):
        try:
            out.append((compute(observer, day, tzinfo=UTC).timestamp(), is_rise))
        except ValueError:
            continue
    return tuple(out)


places = st.tuples(
    st.floats(-90, 90) | st.sampled_from([66.0, 67.5, 78.22, -78.0, 89.9, 0.0]),
    st.floats(-180, 180),
    st.dates(date(1990, 1, 1), date(2100, 12, 31)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(places, min_size=1, max_size=40))
def test_a_dates_events_are_astrals_to_the_bit(cases: list[tuple[float, float, date]]) -> None:
    """`events_on` computes many places' events at once, with astral's steps on arrays; its
    times are astral's own, exactly, polar days and nights too."""
    lat = np.array([round(c[0], 6) for c in cases])
    lon = np.array([round(c[1], 6) for c in cases])
    day = np.array([(c[2] - EPOCH_DATE).days for c in cases], dtype=np.int64)
    rises, sets = events_on(lat, lon, day)
    for i, (la, lo, d) in enumerate(cases):
        got = tuple(
            (float(t), is_rise)
            for t, is_rise in ((rises[i], True), (sets[i], False))
            if not np.isnan(t)
        )
        observer = Observer(latitude=round(la, 6), longitude=round(lo, 6))
        assert got == astral_events(observer, d), (la, lo, d)


def reference_table(lat: float, lon: float, day: date) -> list[np.ndarray]:
    """A date's events (astral's, of it and the dates either side) in order, and per span
    between them whether it is day and the events around it, as `SunTable` holds them."""
    observer = Observer(latitude=round(lat, 6), longitude=round(lon, 6))
    events = sorted(
        {e for offset in (-1, 0, 1) for e in astral_events(observer, day + timedelta(offset))}
    )
    times = np.full(MAX_EVENTS, np.inf)
    times[: len(events)] = [t for t, _ in events]
    is_day = np.full(MAX_EVENTS + 1, 2, dtype=np.int8)
    around = np.full((4, MAX_EVENTS + 1), np.nan)
    for i in range(len(events) + 1):
        before, after = events[:i], events[i:]
        if before:
            is_day[i] = before[-1][1]
        elif after:
            is_day[i] = not after[0][1]
        for j, found in enumerate(
            (
                [t for t, rise in before if not rise][-1:],
                [t for t, rise in after if rise][:1],
                [t for t, rise in before if rise][-1:],
                [t for t, rise in after if not rise][:1],
            )
        ):
            if found:
                around[j, i] = found[0]
    return [times, is_day, around]


@settings(max_examples=100, deadline=None)
@given(st.lists(places, min_size=1, max_size=20))
def test_tables_are_the_events_in_order(cases: list[tuple[float, float, date]]) -> None:
    """`sun_tables`, column-wise, orders the three dates' events and finds the events around
    each span as a plain walk over astral's events does."""
    lat = np.array([round(c[0], 6) for c in cases])
    lon = np.array([round(c[1], 6) for c in cases])
    day = np.array([(c[2] - EPOCH_DATE).days for c in cases], dtype=np.int64)
    tables = sun_tables(lat, lon, day)
    for i, case in enumerate(cases):
        got = tables.row(i)
        want = reference_table(*case)
        for got_part, want_part in zip((got.times, got.is_day, got.events), want, strict=True):
            np.testing.assert_array_equal(got_part, want_part)


@settings(max_examples=40, deadline=None)
@given(st.lists(places, min_size=1, max_size=12))
def test_tables_computed_together_are_each_ones_own(
    cases: list[tuple[float, float, date]],
) -> None:
    """`tables_of` computes the tables a chunk's clocks lack at once, and keeps them: each is
    the one its clock computes alone."""
    clocks = [SunClock(lat, lon) for lat, lon, _ in cases]
    starts = [(d - EPOCH_DATE).days * 86400.0 for _, _, d in cases]
    together = tables_of(clocks, starts)
    assert [c.kept(s) for c, s in zip(clocks, starts, strict=True)] == together
    for (lat, lon, _), start, table in zip(cases, starts, together, strict=True):
        alone = SunClock(lat, lon).table(start)
        for part in ("times", "is_day", "events"):
            np.testing.assert_array_equal(getattr(table, part), getattr(alone, part))
