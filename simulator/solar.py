"""Dusk and dawn at a luminaire's own location, from the astral library.

A lamp is lit while the sun is below the horizon: from astral's sunset to astral's next sunrise
(upper limb, with refraction, i.e. the times published in almanacs). Per local day, the dark part
is one or two intervals; polar days and nights are handled by the sun's elevation at noon.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

from astral import Observer
from astral.sun import elevation, noon, sunrise, sunset

from simulator.clock import from_ms, local_day, local_midnight_ms, to_ms

DarkIntervals = tuple[tuple[int, int], ...]

_HORIZON_DEG = -0.833


def solar_timezone(lon: float) -> tzinfo:
    """A fixed offset of round(lon / 15) hours: the local day of a place when no zone is given."""
    return timezone(timedelta(hours=max(-12, min(14, round(lon / 15.0)))))


def dark_intervals(lat: float, lon: float, day: date, tz: tzinfo) -> DarkIntervals:
    """The parts of local day ``day`` (in ``tz``) when the sun is down at (lat, lon), in Unix ms."""
    observer = Observer(latitude=lat, longitude=lon)
    start = local_midnight_ms(day, tz)
    end = local_midnight_ms(day + timedelta(days=1), tz)
    rise: int | None
    fall: int | None
    try:
        rise = min(max(to_ms(sunrise(observer, day, tz)), start), end)
    except ValueError:
        rise = None
    try:
        fall = min(max(to_ms(sunset(observer, day, tz)), start), end)
    except ValueError:
        fall = None
    if rise is None and fall is None:
        below = elevation(observer, noon(observer, day)) < _HORIZON_DEG
        return ((start, end),) if below else ()
    if fall is None:
        assert rise is not None
        return ((start, rise),)
    if rise is None:
        return ((fall, end),)
    if rise < fall:
        return tuple((a, b) for a, b in ((start, rise), (fall, end)) if a < b)
    return ((fall, rise),)


def lit_window(
    lat: float, lon: float, day: date, tz: tzinfo | None = None
) -> tuple[datetime, datetime]:
    """Switch-on at sunset of local day ``day`` and switch-off at the next sunrise, both in UTC.

    ``tz`` sets which civil day ``day`` is (default: the solar time zone of ``lon``). Raises
    ``ValueError`` when the sun does not set that evening or does not rise the next morning.
    """
    zone = tz or solar_timezone(lon)
    day_start = local_midnight_ms(day, zone)
    day_end = local_midnight_ms(day + timedelta(days=1), zone)
    next_end = local_midnight_ms(day + timedelta(days=2), zone)
    evening = dark_intervals(lat, lon, day, zone)
    morning = dark_intervals(lat, lon, day + timedelta(days=1), zone)
    if not evening or evening[-1][1] != day_end or evening[-1][0] == day_start:
        raise ValueError(f"the sun does not set on {day} at ({lat}, {lon})")
    if not morning or morning[0][0] != day_end or morning[0][1] == next_end:
        raise ValueError(f"the sun does not rise after {day} at ({lat}, {lon})")
    return from_ms(evening[-1][0]).astimezone(UTC), from_ms(morning[0][1]).astimezone(UTC)


def is_dark(lat: float, lon: float, t_ms: int, tz: tzinfo) -> bool:
    day, _, _ = local_day(t_ms, tz)
    return any(a <= t_ms < b for a, b in dark_intervals(lat, lon, day, tz))
