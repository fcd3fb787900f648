"""Time as the simulator holds it: integer milliseconds since the Unix epoch, UTC.

Integers keep the energy integral exact (power in centiwatts × duration in ms is an integer) and
make every timestamp land exactly on the millisecond a payload's ``ts`` shows.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, tzinfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS_PER_S = 1000
MS_PER_DAY = 86_400_000


def to_ms(t: datetime) -> int:
    """An aware datetime as Unix milliseconds, rounded to the nearest millisecond."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(
            f"naive datetime {t.isoformat()}: the simulator only takes UTC-aware times"
        )
    delta = t - EPOCH
    return delta.days * MS_PER_DAY + delta.seconds * MS_PER_S + (delta.microseconds + 500) // 1000


def from_ms(t_ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=t_ms)


_minute_cache: dict[int, str] = {}


def rfc3339(t_ms: int) -> str:
    """``2026-06-21T11:01:04.568Z``: RFC 3339, UTC, millisecond precision."""
    minute, rest = divmod(t_ms, 60_000)
    prefix = _minute_cache.get(minute)
    if prefix is None:
        if len(_minute_cache) > 4096:
            _minute_cache.clear()
        tm = time.gmtime(minute * 60)
        prefix = (
            f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:{tm.tm_min:02d}:"
        )
        _minute_cache[minute] = prefix
    seconds, ms = divmod(rest, 1000)
    return f"{prefix}{seconds:02d}.{ms:03d}Z"


def local_midnight_ms(day: date, tz: tzinfo) -> int:
    return to_ms(datetime(day.year, day.month, day.day, tzinfo=tz))


def local_day(t_ms: int, tz: tzinfo) -> tuple[date, int, int]:
    """The local date holding ``t_ms`` and its bounds ``[start_ms, end_ms)`` (23–25 h with DST)."""
    day = from_ms(t_ms).astimezone(tz).date()
    start = local_midnight_ms(day, tz)
    if t_ms < start:
        day -= timedelta(days=1)
        start = local_midnight_ms(day, tz)
    end = local_midnight_ms(day + timedelta(days=1), tz)
    if t_ms >= end:
        day += timedelta(days=1)
        start, end = end, local_midnight_ms(day + timedelta(days=1), tz)
    return day, start, end
