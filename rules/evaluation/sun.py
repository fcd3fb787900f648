"""The sun at a luminaire's place and time, for conditions: `sun.is_day`, minutes since sunset…

Sunrise and sunset are astral's (upper limb with refraction: the almanac times), the same the
simulator switches its lamps by. A time's facts come from the sunrises and sunsets of its UTC
date and the dates either side. A `SunClock` (one per luminaire) keeps those events in order,
with what holds between each two (day or night, the events either side), as a `SunTable` per
date, so a reading costs a bisection and four subtractions.

The events are astral's `sunrise` and `sunset`, to the bit (`tests/test_rules_sun.py`), but
computed for many places and dates at once (`sun_tables`): astral's own steps, in its order, on
numpy arrays, each transcendental function still `math`'s (numpy's `arcsin`, `arccos` and `tan`
differ from the C library's in the last bit). Astral took ~60 µs an event, six events (three
dates) for each luminaire's first date, which was a tenth of the rules process's CPU on
`bench/run --mode batch` (every luminaire new: `python -m bench.rules_loop --mode batch
--readings 300000`); the columns (`rules.evaluation.columns`) ask for the tables of all the
luminaires of a chunk that lack one in one call.
"""

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TypeVar

import numpy as np
from astral import Observer, refraction_at_zenith
from astral.julian import julianday, julianday_to_juliancentury
from astral.sun import SUN_APPARENT_RADIUS, elevation, eq_of_time, sun_declination

_HORIZON_DEG = -0.833
_FAR_MIN = 1e6
"""Minutes reported when an event is not within two days (polar day or night)."""
_DAY_S = 86400.0
_DAY_US = 86_400_000_000
_EPOCH_DATE = date(1970, 1, 1)

_ZENITH = 90.0 + SUN_APPARENT_RADIUS
_REFRACTION = refraction_at_zenith(_ZENITH)
_DEG = math.pi / 180.0
"""`math.radians`' factor (CPython multiplies by it)."""
_RAD = 180.0 / math.pi
"""`math.degrees`' factor."""

Array = np.ndarray


def _each(function: Callable[[float], float]) -> Callable[[Array], Array]:
    """`function` (one of `math`'s) over an array, item by item: astral's results to the bit."""

    def each(values: Array) -> Array:
        return np.fromiter(map(function, values.tolist()), np.float64, len(values))

    return each


_sin, _cos, _tan, _asin = _each(math.sin), _each(math.cos), _each(math.tan), _each(math.asin)


def _acos(values: Array) -> Array:
    """`math.acos`, NaN where it raises (|value| > 1: the sun does not reach the zenith)."""
    inside = np.abs(values) <= 1.0
    out = np.full(len(values), np.nan)
    out[inside] = _each(math.acos)(values[inside])
    return out


@lru_cache(maxsize=64)
def _sun_at(jd: float) -> tuple[float, float]:
    """The sun's declination and the equation of time at a Julian day number (astral's)."""
    jc = julianday_to_juliancentury(jd)
    return sun_declination(jc), eq_of_time(jc)


def _obliquity_correction(jc: Array) -> Array:
    seconds = 21.448 - jc * (46.815 + jc * (0.00059 - jc * (0.001813)))
    e0 = 23.0 + (26.0 + (seconds / 60.0)) / 60.0
    omega = 125.04 - 1934.136 * jc
    out: Array = e0 + 0.00256 * _cos(omega * _DEG)
    return out


def _declination_and_eq_of_time(jc: Array) -> tuple[Array, Array]:
    """`astral.sun.sun_declination` and `eq_of_time` over arrays, operation for operation."""
    l0 = (280.46646 + jc * (36000.76983 + 0.0003032 * jc)) % 360.0
    m = 357.52911 + jc * (35999.05029 - 0.0001537 * jc)
    mrad = m * _DEG
    sinm = _sin(mrad)
    c = (
        sinm * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + _sin(mrad + mrad) * (0.019993 - 0.000101 * jc)
        + _sin(mrad + mrad + mrad) * 0.000289
    )
    omega = 125.04 - 1934.136 * jc
    apparent_long = l0 + c - 0.00569 - 0.00478 * _sin(omega * _DEG)
    obliquity = _obliquity_correction(jc)
    declination = _asin(_sin(obliquity * _DEG) * _sin(apparent_long * _DEG)) * _RAD

    e = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    y = _tan(obliquity * _DEG / 2.0)
    y = y * y
    sin2l0 = _sin(2.0 * (l0 * _DEG))
    cos2l0 = _cos(2.0 * (l0 * _DEG))
    sin4l0 = _sin(4.0 * (l0 * _DEG))
    sin2m = _sin(2.0 * (m * _DEG))
    etime = (
        y * sin2l0
        - 2.0 * e * sinm
        + 4.0 * e * y * sinm * cos2l0
        - 0.5 * y * y * sin4l0
        - 1.25 * e * e * sin2m
    )
    return declination, etime * _RAD * 4.0


def _transits(lat: Array, lon: Array, day: Array, rising: Array) -> Array:
    """`astral.sun.time_of_transit(observer, day, 90 + SUN_APPARENT_RADIUS, direction)` for
    observers at sea level (no elevation adjustment), step for step, as epoch microseconds
    (what astral's datetime holds); -1 where it raises ValueError. `day`: days since the epoch.
    Its first step reads the sun at the date's start, the same for every place and both
    directions: once a date (`_sun_at`)."""
    latitude = np.clip(lat, -89.8, 89.8)
    dates, inverse = np.unique(day, return_inverse=True)
    jds = [julianday(_EPOCH_DATE + timedelta(days=d)) for d in dates.tolist()]
    first = np.array([_sun_at(jd) for jd in jds], dtype=np.float64).reshape(-1, 2)
    jd = np.array(jds, dtype=np.float64)[inverse]
    declination, eqtime = first[inverse, 0], first[inverse, 1]
    sin_lat, cos_lat = _sin(latitude * _DEG), _cos(latitude * _DEG)
    cos_zenith = math.cos((_ZENITH + 0.0 + _REFRACTION) * _DEG)
    time_utc = np.zeros(len(lat))
    for step in range(2):
        if step:
            jc = (jd + time_utc / 1440.0 - 2451545.0) / 36525.0
            declination, eqtime = _declination_and_eq_of_time(jc)
        declination_rad = declination * _DEG
        h = (cos_zenith - sin_lat * _sin(declination_rad)) / (cos_lat * _cos(declination_rad))
        hourangle = _acos(h)
        hourangle = np.where(rising, hourangle, -hourangle)
        offset = (-lon - hourangle * _RAD) * 4.0 - eqtime
        offset = np.where(offset < -720.0, offset + 1440, offset)
        time_utc = 720.0 + offset
    failed = np.isnan(time_utc)
    time_utc = np.where(failed, 0.0, time_utc)
    # `astral.sun.minutes_to_timedelta`, then the date's midnight added.
    days = np.trunc(time_utc / 1440)
    seconds = (time_utc - days * 1440) * 60
    whole = np.trunc(seconds)
    micros = np.trunc((seconds - whole) * 1_000_000)
    out: Array = (
        (day + days.astype(np.int64)) * _DAY_US
        + whole.astype(np.int64) * 1_000_000
        + micros.astype(np.int64)
    )
    out[failed] = -1
    return out


def _events(lat: Array, lon: Array, day: Array, rising: Array) -> Array:
    """`astral.sun.sunrise(observer, day, tzinfo=UTC)` (or `sunset`) in epoch microseconds,
    -1 where astral raises ValueError: the transit, and when it falls on another UTC date, the
    transit of the date either side, which must fall on `day`."""
    found = _transits(lat, lon, day, rising)
    on = np.floor_divide(found, _DAY_US)
    again = (found >= 0) & (on != day)
    if again.any():
        other = day[again] + np.where(on[again] < day[again], 1, -1)
        retried = _transits(lat[again], lon[again], other, rising[again])
        ok = (retried >= 0) & (np.floor_divide(retried, _DAY_US) == day[again])
        found[again] = np.where(ok, retried, -1)
    return found


def events_on(lat: Array, lon: Array, day: Array) -> tuple[Array, Array]:
    """The sunrise and the sunset of each place (latitude, longitude: astral's observer's) on
    each UTC date (days since the epoch), as epoch seconds (what astral's `.timestamp()`
    gives), NaN where there is none (polar day or night)."""
    n = len(day)
    found = _events(
        np.concatenate([lat, lat]),
        np.concatenate([lon, lon]),
        np.concatenate([day, day]),
        np.repeat([True, False], n),
    )
    seconds = np.where(found >= 0, found / 1e6, np.nan)
    return seconds[:n], seconds[n:]


def sun_tables(lat: Array, lon: Array, day: Array) -> "SunTables":
    """The `SunTable` of each place on each UTC date (days since the epoch), as the rows of
    three arrays: the events of the date and the dates either side, in order, and per span
    between them whether it is day and the events around it (`_Day.of`'s, column-wise)."""
    n = len(day)
    three = np.concatenate([day - 1, day, day + 1])
    rises, sets = events_on(np.tile(lat, 3), np.tile(lon, 3), three)
    # Sunsets first: a stable sort then puts a sunset before a sunrise at the same time, as
    # sorting (time, is_rise) does.
    t = np.concatenate([sets.reshape(3, n).T, rises.reshape(3, n).T], axis=1)
    rise = np.repeat([[False, True]], 3, axis=1).repeat(n, axis=0)
    t = np.where(np.isnan(t), np.inf, t)
    order = np.argsort(t, axis=1, kind="stable")
    times = np.take_along_axis(t, order, axis=1)
    rise = np.take_along_axis(rise, order, axis=1)
    valid = np.isfinite(times)
    k = valid.sum(axis=1)
    spans = np.arange(MAX_EVENTS + 1)
    inside = spans[None, :] <= k[:, None]
    padded = np.concatenate([times, np.full((n, 1), np.inf)], axis=1)
    rise7 = np.concatenate([rise, np.zeros((n, 1), dtype=bool)], axis=1)
    valid7 = np.concatenate([valid, np.zeros((n, 1), dtype=bool)], axis=1)
    # Before span i: the events j < i; after it: j >= i.
    is_day = np.full((n, MAX_EVENTS + 1), 2, dtype=np.int8)
    is_day[:, 1:] = rise
    is_day[:, 0] = np.where(k > 0, ~rise[:, 0], 2)
    is_day[~inside] = 2
    events = np.full((n, 4, MAX_EVENTS + 1), np.nan)
    for row, (kind, after) in enumerate(
        ((False, False), (True, True), (True, False), (False, True))
    ):
        # last sunset, next sunrise, last sunrise, next sunset
        mine = valid7 & (rise7 == kind)
        if after:
            value = np.where(mine, padded, np.inf)
            value = np.minimum.accumulate(value[:, ::-1], axis=1)[:, ::-1]
            value = np.where(np.isinf(value), np.nan, value)
        else:
            value = np.where(mine, padded, -np.inf)
            value = np.maximum.accumulate(value, axis=1)
            shifted = np.full_like(value, -np.inf)
            shifted[:, 1:] = value[:, :-1]
            value = np.where(np.isinf(shifted), np.nan, shifted)
        events[:, row] = np.where(inside, value, np.nan)
    return SunTables(times, is_day, events)


MAX_EVENTS = 6
"""Events of three dates at most (a sunrise and a sunset each)."""


@dataclass(frozen=True, slots=True)
class SunTable:
    """One place's UTC date as arrays: `times` (its events, padded with +inf to `MAX_EVENTS`),
    per span `is_day` (0, 1; 2: None, the sun's elevation decides) and `events` (rows: last
    sunset, next sunrise, last sunrise, next sunset; NaN: none); `packed`, the three in one row
    of floats (`PACKED` long), for the columns to stack a chunk's tables at once."""

    times: np.ndarray
    is_day: np.ndarray
    events: np.ndarray
    packed: np.ndarray


PACKED = MAX_EVENTS + (MAX_EVENTS + 1) + 4 * (MAX_EVENTS + 1)
"""A `SunTable.packed` row: its times, then its is_day, then its events row by row."""


@dataclass(frozen=True, slots=True)
class SunTables:
    """`SunTable`s as the rows of three arrays (`sun_tables`)."""

    times: np.ndarray
    is_day: np.ndarray
    events: np.ndarray

    def row(self, i: int) -> SunTable:
        """Row `i`, copied (a kept table holds no other row's memory)."""
        packed = np.concatenate([self.times[i], self.is_day[i], self.events[i].ravel()])
        return SunTable(
            packed[:MAX_EVENTS],
            self.is_day[i].copy(),
            packed[2 * MAX_EVENTS + 1 :].reshape(4, MAX_EVENTS + 1),
            packed,
        )


FAR_MIN = _FAR_MIN


@dataclass(frozen=True, slots=True)
class _Day:
    """A `SunTable` as Python values, for `SunClock.facts`: the date's bounds, its events'
    times, and per span whether it is day (None: the elevation decides) and its four events
    (None: none)."""

    start: float
    end: float
    times: list[float]
    is_day: list[bool | None]
    events: list[list[float | None]]

    @classmethod
    def of(cls, start: float, table: SunTable) -> "_Day":
        times = [t for t in table.times.tolist() if t != math.inf]
        is_day = [None if d == 2 else bool(d) for d in table.is_day.tolist()]
        events = [[None if math.isnan(t) else t for t in row] for row in table.events.tolist()]
        return cls(start, start + _DAY_S, times, is_day, events)


class SunClock:
    """The sun facts at one place. Its answers depend on nothing but the place and the time:
    what it keeps (the tables of the last `KEPT_DATES` dates asked for) only saves work."""

    __slots__ = ("_current", "_tables", "lat", "lon", "observer_lat", "observer_lon")

    def __init__(self, lat: float, lon: float) -> None:
        self.lat = lat
        self.lon = lon
        self.observer_lat = round(lat, 6)
        """The latitude of the events (astral's observer's, as the simulator's)."""
        self.observer_lon = round(lon, 6)
        self._current: _Day | None = None
        self._tables: dict[float, SunTable] = {}

    def facts(self, at: datetime) -> dict[str, bool | float]:
        """`is_day` and minutes after/before the nearest sunrise and sunset, at `at`."""
        t = at.timestamp()
        day = self._current
        if day is None or not day.start <= t < day.end:
            start = (at.astimezone(UTC).date() - _EPOCH_DATE).days * _DAY_S
            day = self._current = _Day.of(start, self.table(start))
        span = bisect.bisect_right(day.times, t)
        is_day = day.is_day[span]
        if is_day is None:
            is_day = elevation(Observer(latitude=self.lat, longitude=self.lon), at) > _HORIZON_DEG
        sunset, sunrise, risen, setting = (events[span] for events in day.events)
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
        return tables_of([self], [start])[0]

    def kept(self, start: float) -> SunTable | None:
        return self._tables.get(start)

    def keep(self, start: float, table: SunTable) -> None:
        self._tables = _latest(self._tables, {start: table}, KEPT_DATES)


def tables_of(clocks: Sequence[SunClock], starts: Sequence[float]) -> list[SunTable]:
    """Each clock's `SunTable` of the UTC date starting at its start (epoch seconds), those it
    does not keep computed together (`sun_tables`) and kept."""
    out: list[SunTable | None] = [c.kept(s) for c, s in zip(clocks, starts, strict=True)]
    missing = [i for i, table in enumerate(out) if table is None]
    if missing:
        lat = np.array([clocks[i].observer_lat for i in missing], dtype=np.float64)
        lon = np.array([clocks[i].observer_lon for i in missing], dtype=np.float64)
        day = np.array([int(starts[i] // _DAY_S) for i in missing], dtype=np.int64)
        computed = sun_tables(lat, lon, day)
        for k, i in enumerate(missing):
            table = out[i] = computed.row(k)
            clocks[i].keep(starts[i], table)
    return out  # type: ignore[return-value]


KEPT_DATES = 4
"""The UTC dates a `SunClock` keeps the table of: a few, for readings that straddle a midnight
or arrive late."""

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
