"""The sun at a luminaire's place and time, for conditions: `sun.is_day`, minutes since sunset…

Sunrise and sunset are astral's (upper limb with refraction: the almanac times), the same the
simulator switches its lamps by. A time's facts come from the sunrises and sunsets of its UTC
date and the dates either side. A `SunClock` (one per luminaire) keeps those events in order,
with what holds between each two (day or night, the events either side), so a reading costs a
bisection and four subtractions; when the UTC date turns it computes only the new date's events
(astral: about 60 µs each on the 2-core test machine) and reuses the two dates it already has.
"""

import bisect
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from math import degrees
from typing import TypeVar

import numpy as np
from astral import Observer, SunDirection, refraction_at_zenith
from astral.julian import julianday, julianday_to_juliancentury
from astral.sun import (
    SUN_APPARENT_RADIUS,
    elevation,
    eq_of_time,
    hour_angle,
    minutes_to_timedelta,
    sun_declination,
)

_HORIZON_DEG = -0.833
_FAR_MIN = 1e6
"""Minutes reported when an event is not within two days (polar day or night)."""
_DAY_S = 86400.0
_ONE_DAY = timedelta(days=1)

Events = tuple[tuple[float, bool], ...]
"""(epoch seconds, is_sunrise), sorted."""


def _events_on(observer: Observer, day: date) -> Events:
    """The sunrise and sunset of one UTC date (either may not happen: polar day or night):
    `astral.sun.sunrise` and `sunset` in UTC, to the bit (`tests/test_rules_sun.py`)."""
    out: list[tuple[float, bool]] = []
    for is_rise in (True, False):
        try:
            out.append((_event(observer, day, is_rise).timestamp(), is_rise))
        except ValueError:
            continue
    return tuple(out)


_ZENITH = 90.0 + SUN_APPARENT_RADIUS
_REFRACTION = refraction_at_zenith(_ZENITH)


@lru_cache(maxsize=64)
def _sun_at(jd: float) -> tuple[float, float]:
    """The sun's declination and the equation of time at a Julian day number (astral's)."""
    jc = julianday_to_juliancentury(jd)
    return sun_declination(jc), eq_of_time(jc)


def _event(observer: Observer, day: date, is_rise: bool) -> datetime:
    """`astral.sun.sunrise(observer, day, tzinfo=UTC)` (or `sunset`) for an observer at sea
    level, by astral's own functions in its order (`time_of_transit`, and the retry on the date
    either side when the transit falls on another UTC date), but for one thing: its first step
    reads the sun at the date's start, the same for every luminaire and for both events, so it
    is computed once a date (`_sun_at`) — astral computed it again for each, which made the
    events of a luminaire's new date (six at first: three dates) most of the rules process's CPU
    on its first readings (`python -m bench.rules_loop`). ValueError where astral raises one (the
    sun does not cross the horizon that date)."""
    found = _transit(observer, day, is_rise)
    if found.date() != day:
        other = day + (_ONE_DAY if found.date() < day else -_ONE_DAY)
        found = _transit(observer, other, is_rise)
        if found.date() != day:
            raise ValueError("no such event on the date")
    return found


def _transit(observer: Observer, day: date, is_rise: bool) -> datetime:
    """`astral.sun.time_of_transit(observer, day, 90 + SUN_APPARENT_RADIUS, direction)` for
    an observer at sea level (no elevation adjustment), step for step."""
    latitude = max(-89.8, min(89.8, observer.latitude))
    direction = SunDirection.RISING if is_rise else SunDirection.SETTING
    jd = julianday(day)
    adjustment = 0.0
    time_utc = 0.0
    for step in range(2):
        if step == 0:
            declination, eqtime = _sun_at(jd + adjustment)
        else:
            jc = julianday_to_juliancentury(jd + adjustment)
            declination, eqtime = sun_declination(jc), eq_of_time(jc)
        hourangle = hour_angle(latitude, declination, _ZENITH + 0.0 + _REFRACTION, direction)
        delta = -observer.longitude - degrees(hourangle)
        offset = delta * 4.0 - eqtime
        if offset < -720.0:
            offset += 1440
        time_utc = 720.0 + offset
        adjustment = time_utc / 1440.0
    moment = datetime(day.year, day.month, day.day) + minutes_to_timedelta(time_utc)
    return moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Span:
    """The time between two consecutive events: whether it is day, and the events around it
    (None: none within the three dates)."""

    is_day: bool | None
    """None: no event at all in the three dates, the sun's elevation decides."""
    last_sunset: float | None
    next_sunrise: float | None
    last_sunrise: float | None
    next_sunset: float | None


@dataclass(frozen=True, slots=True)
class _Day:
    """One place's UTC date: the times of the events of it and the dates either side, and the
    span before, between and after them."""

    start: float
    end: float
    times: tuple[float, ...]
    spans: tuple[_Span, ...]

    def table(self) -> "SunTable":
        """The date's events and spans as rows of arrays, for `rules.evaluation.columns`."""
        times = np.full(MAX_EVENTS, np.inf)
        times[: len(self.times)] = self.times
        spans = np.full((4, MAX_EVENTS + 1), np.nan)
        is_day = np.full(MAX_EVENTS + 1, 2, dtype=np.int8)
        for i, span in enumerate(self.spans):
            is_day[i] = 2 if span.is_day is None else int(span.is_day)
            for j, event in enumerate(
                (span.last_sunset, span.next_sunrise, span.last_sunrise, span.next_sunset)
            ):
                spans[j, i] = np.nan if event is None else event
        return SunTable(times, is_day, spans)

    @classmethod
    def of(cls, day: date, events: Events) -> "_Day":
        ordered = sorted(set(events))
        spans = []
        for i in range(len(ordered) + 1):
            before, after = ordered[:i], ordered[i:]
            if before:
                is_day: bool | None = before[-1][1]
            elif after:
                is_day = not after[0][1]
            else:
                is_day = None
            spans.append(
                _Span(
                    is_day,
                    last_sunset=next((t for t, rise in reversed(before) if not rise), None),
                    next_sunrise=next((t for t, rise in after if rise), None),
                    last_sunrise=next((t for t, rise in reversed(before) if rise), None),
                    next_sunset=next((t for t, rise in after if not rise), None),
                )
            )
        start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        return cls(start, start + _DAY_S, tuple(t for t, _ in ordered), tuple(spans))


MAX_EVENTS = 6
"""Events of three dates at most (a sunrise and a sunset each)."""


@dataclass(frozen=True, slots=True)
class SunTable:
    """One place's UTC date as arrays: `times` (its events, padded with +inf to `MAX_EVENTS`),
    per span `is_day` (0, 1; 2: None, the sun's elevation decides) and `events` (rows: last
    sunset, next sunrise, last sunrise, next sunset; NaN: none)."""

    times: np.ndarray
    is_day: np.ndarray
    events: np.ndarray


FAR_MIN = _FAR_MIN


class SunClock:
    """The sun facts at one place. Its answers depend on nothing but the place and the time:
    what it keeps (the current date, the events of the dates around it) only saves work."""

    __slots__ = ("_current", "_dates", "_observer", "_tables", "lat", "lon")

    def __init__(self, lat: float, lon: float) -> None:
        self.lat = lat
        self.lon = lon
        self._observer = Observer(latitude=round(lat, 6), longitude=round(lon, 6))
        self._current: _Day | None = None
        self._dates: dict[date, Events] = {}
        self._tables: dict[float, SunTable] = {}

    def facts(self, at: datetime) -> dict[str, bool | float]:
        """`is_day` and minutes after/before the nearest sunrise and sunset, at `at`."""
        t = at.timestamp()
        day = self._current
        if day is None or not day.start <= t < day.end:
            day = self._current = self._day(at.astimezone(UTC).date())
        span = day.spans[bisect.bisect_right(day.times, t)]
        is_day = span.is_day
        if is_day is None:
            is_day = elevation(Observer(latitude=self.lat, longitude=self.lon), at) > _HORIZON_DEG
        sunset, sunrise = span.last_sunset, span.next_sunrise
        risen, setting = span.last_sunrise, span.next_sunset
        return {
            "is_day": is_day,
            "minutes_after_sunset": _FAR_MIN if sunset is None else (t - sunset) / 60,
            "minutes_before_sunrise": _FAR_MIN if sunrise is None else (sunrise - t) / 60,
            "minutes_after_sunrise": _FAR_MIN if risen is None else (t - risen) / 60,
            "minutes_before_sunset": _FAR_MIN if setting is None else (setting - t) / 60,
        }

    def table(self, start: float) -> SunTable:
        """The `SunTable` of the UTC date starting at `start` (epoch seconds, a midnight): what
        `facts` reads for a time of that date (the last `KEPT_DATES` of them kept)."""
        table = self._tables.get(start)
        if table is None:
            day = self._current
            if day is None or day.start != start:
                day = self._current = self._day(datetime.fromtimestamp(start, UTC).date())
            table = day.table()
            self._tables = _latest(self._tables, {start: table}, KEPT_DATES)
        return table

    def _day(self, day: date) -> _Day:
        """The date's `_Day`, from the events of the date and those either side; the events of
        the `KEPT_DATES` dates nearest to it are kept: a luminaire's readings on both sides of
        a UTC midnight, chunk after chunk, computed the same dates again each time (most of the
        rules process's CPU on `bench/run` run shortly after midnight UTC)."""
        wanted = (day - _ONE_DAY, day, day + _ONE_DAY)
        kept = self._dates
        dates = {d: kept[d] if d in kept else _events_on(self._observer, d) for d in wanted}
        self._dates = _latest(kept, dates, KEPT_DATES + 2)
        return _Day.of(day, tuple(event for d in wanted for event in dates[d]))


KEPT_DATES = 4
"""The UTC dates a `SunClock` keeps the table of (and the events of these and those either
side): a few, for readings that straddle a midnight or arrive late."""

_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


def _latest(kept: dict[_Key, _Value], fresh: dict[_Key, _Value], most: int) -> dict[_Key, _Value]:
    """`kept` and `fresh` (the latest used), without the least recently used beyond `most`."""
    out = {k: v for k, v in kept.items() if k not in fresh}
    out.update(fresh)
    return dict(list(out.items())[-most:]) if len(out) > most else out


@lru_cache(maxsize=1024)
def _clock(lat: float, lon: float) -> SunClock:
    return SunClock(lat, lon)


def sun_facts(lat: float, lon: float, at: datetime) -> dict[str, bool | float]:
    """`is_day` and minutes after/before the nearest sunrise and sunset, at (lat, lon) and `at`."""
    return _clock(lat, lon).facts(at)
