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

import numpy as np
from astral import Observer
from astral.sun import elevation, sunrise, sunset

_HORIZON_DEG = -0.833
_FAR_MIN = 1e6
"""Minutes reported when an event is not within two days (polar day or night)."""
_DAY_S = 86400.0
_ONE_DAY = timedelta(days=1)

Events = tuple[tuple[float, bool], ...]
"""(epoch seconds, is_sunrise), sorted."""


def _events_on(observer: Observer, day: date) -> Events:
    """The sunrise and sunset of one UTC date (either may not happen: polar day or night)."""
    out: list[tuple[float, bool]] = []
    for is_rise, compute in ((True, sunrise), (False, sunset)):
        try:
            out.append((compute(observer, day, tzinfo=UTC).timestamp(), is_rise))
        except ValueError:
            continue
    return tuple(out)


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
        `facts` reads for a time of that date, kept as `facts` keeps it."""
        day = self._current
        if day is None or day.start != start:
            day = self._current = self._day(datetime.fromtimestamp(start, UTC).date())
        table = self._tables.get(start)
        if table is None:
            self._tables = {start: day.table()}
            table = self._tables[start]
        return table

    def _day(self, day: date) -> _Day:
        wanted = (day - _ONE_DAY, day, day + _ONE_DAY)
        kept = self._dates
        dates = {d: kept[d] if d in kept else _events_on(self._observer, d) for d in wanted}
        self._dates = dates
        return _Day.of(day, tuple(event for d in wanted for event in dates[d]))


@lru_cache(maxsize=1024)
def _clock(lat: float, lon: float) -> SunClock:
    return SunClock(lat, lon)


def sun_facts(lat: float, lon: float, at: datetime) -> dict[str, bool | float]:
    """`is_day` and minutes after/before the nearest sunrise and sunset, at (lat, lon) and `at`."""
    return _clock(lat, lon).facts(at)
