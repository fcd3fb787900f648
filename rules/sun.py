"""The sun at a luminaire's place and time, for conditions: `sun.is_day`, minutes since sunset…

Sunrise and sunset are astral's (upper limb with refraction: the almanac times), the same the
simulator switches its lamps by. Events are computed per (place, UTC day) and cached, so a
reading costs a dictionary look-up and a bisection, not an astronomical computation.
"""

import bisect
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from astral import Observer
from astral.sun import elevation, sunrise, sunset

_HORIZON_DEG = -0.833
_FAR_MIN = 1e6
"""Minutes reported when an event is not within two days (polar day or night)."""

Events = tuple[tuple[float, bool], ...]
"""(epoch seconds, is_sunrise), sorted."""


@lru_cache(maxsize=65536)
def _events(lat: float, lon: float, day: date) -> Events:
    observer = Observer(latitude=lat, longitude=lon)
    out: list[tuple[float, bool]] = []
    for offset in (-1, 0, 1):
        moment = day + timedelta(days=offset)
        for is_rise, compute in ((True, sunrise), (False, sunset)):
            try:
                out.append((compute(observer, moment, tzinfo=UTC).timestamp(), is_rise))
            except ValueError:
                continue
    return tuple(sorted(set(out)))


def sun_facts(lat: float, lon: float, at: datetime) -> dict[str, bool | float]:
    """`is_day` and minutes after/before the nearest sunrise and sunset, at (lat, lon) and `at`."""
    t = at.timestamp()
    events = _events(round(lat, 6), round(lon, 6), at.astimezone(UTC).date())
    times = [e[0] for e in events]
    i = bisect.bisect_right(times, t)
    previous = events[i - 1] if i > 0 else None
    if previous is not None:
        is_day = previous[1]
    elif i < len(events):
        is_day = not events[i][1]
    else:
        is_day = elevation(Observer(latitude=lat, longitude=lon), at) > _HORIZON_DEG

    def since(rise: bool) -> float:
        for when, kind in reversed(events[:i]):
            if kind is rise:
                return (t - when) / 60
        return _FAR_MIN

    def until(rise: bool) -> float:
        for when, kind in events[i:]:
            if kind is rise:
                return (when - t) / 60
        return _FAR_MIN

    return {
        "is_day": is_day,
        "minutes_after_sunset": since(False),
        "minutes_before_sunrise": until(True),
        "minutes_after_sunrise": since(True),
        "minutes_before_sunset": until(False),
    }
