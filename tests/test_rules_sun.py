"""The sun facts, held to a plain computation from astral (what `rules.evaluation.sun` did per
reading
before it kept a day per place): any place, any time, and one clock carried across UTC days,
forwards and backwards, so a kept day can never answer for another."""

import bisect
from datetime import UTC, date, datetime, timedelta

import pytest
from astral import Observer
from astral.sun import elevation, sunrise, sunset
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.evaluation.sun import SunClock, sun_facts

FAR_MIN = 1e6


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


@settings(max_examples=2000, deadline=None)
@given(
    lat=st.floats(-90, 90) | st.sampled_from([66.0, 67.5, 78.22, -78.0, 89.9, 0.0]),
    lon=st.floats(-180, 180),
    day=st.dates(date(1990, 1, 1), date(2100, 12, 31)),
)
def test_a_dates_events_are_astrals_to_the_bit(lat: float, lon: float, day: date) -> None:
    """`_events_on` shares the first step of astral's transit between the events and the
    luminaires of a date; its times are astral's own, exactly, polar days and nights too."""
    from rules.evaluation.sun import _events_on

    observer = Observer(latitude=round(lat, 6), longitude=round(lon, 6))
    assert _events_on(observer, day) == astral_events(observer, day)
