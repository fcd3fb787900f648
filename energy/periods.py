"""Period boundaries: the edges of days, months and half-hours in a city's civil time.

An edge list ``[e0, e1, …, en]`` (Unix ms) makes bins ``[e_i, e_{i+1})``; the first and last
edges are the report's own start and end, so a report from mid-day has a short first day. Days
follow the wall clock, so a day in which the clocks change lasts 23 or 25 hours.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MS_PER_S = 1000
HALF_HOUR_MS = 30 * 60 * 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(t: datetime) -> int:
    """An aware datetime as Unix milliseconds."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{t.isoformat()} has no UTC offset")
    delta = t - EPOCH
    return (delta.days * 86_400 + delta.seconds) * MS_PER_S + delta.microseconds // 1000


def from_ms(t_ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=t_ms)


def rfc3339(t_ms: int) -> str:
    """``2026-03-01T00:15:00.000Z``."""
    return from_ms(t_ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t_ms % 1000:03d}Z"


def local_midnight_ms(day: date, tz: ZoneInfo) -> int:
    return to_ms(datetime.combine(day, time(0), tzinfo=tz))


def _local_date(t_ms: int, tz: ZoneInfo) -> date:
    return from_ms(t_ms).astimezone(tz).date()


def day_edges(start_ms: int, end_ms: int, tz: ZoneInfo) -> tuple[list[int], list[str]]:
    """Edges of the civil days over ``[start_ms, end_ms)`` and each bin's date (ISO)."""
    edges, labels = [start_ms], [_local_date(start_ms, tz).isoformat()]
    day = _local_date(start_ms, tz) + timedelta(days=1)
    while (t := local_midnight_ms(day, tz)) < end_ms:
        if t > start_ms:
            edges.append(t)
            labels.append(day.isoformat())
        day += timedelta(days=1)
    edges.append(end_ms)
    return edges, labels


def month_edges(start_ms: int, end_ms: int, tz: ZoneInfo) -> tuple[list[int], list[str]]:
    """Edges of the civil months over ``[start_ms, end_ms)`` and each bin's ``YYYY-MM``."""
    first = _local_date(start_ms, tz)
    edges, labels = [start_ms], [f"{first.year:04d}-{first.month:02d}"]
    year, month = first.year, first.month
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        t = local_midnight_ms(date(year, month, 1), tz)
        if t >= end_ms:
            break
        edges.append(t)
        labels.append(f"{year:04d}-{month:02d}")
    edges.append(end_ms)
    return edges, labels


def half_hour_edges(start_ms: int, end_ms: int, tz: ZoneInfo) -> tuple[list[int], list[str]]:
    """Half-hour edges over ``[start_ms, end_ms)``; labels ``YYYY-MM-DD/NN``: the local
    settlement day and its period number, 1 from local midnight (46 or 50 periods on the days
    the clocks change)."""
    edges = [start_ms]
    t = (start_ms // HALF_HOUR_MS + 1) * HALF_HOUR_MS
    while t < end_ms:
        edges.append(t)
        t += HALF_HOUR_MS
    edges.append(end_ms)
    labels = []
    for t in edges[:-1]:
        day = _local_date(t, tz)
        number = (t - local_midnight_ms(day, tz)) // HALF_HOUR_MS + 1
        labels.append(f"{day.isoformat()}/{number:02d}")
    return edges, labels


def whole(start_ms: int, end_ms: int) -> tuple[list[int], list[str]]:
    """The whole report period as one bin."""
    return [start_ms, end_ms], [f"{rfc3339(start_ms)}/{rfc3339(end_ms)}"]
