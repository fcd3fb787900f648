"""Feeds a report from InfluxDB: telemetry read window by window into a ``ReportBuilder``.

The window reaches ``lookback_ms`` before the period and after it, so the intervals that cross
the period's edges have both their readings and can be shared (``energy.counters``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from energy.counters import Sample
from energy.queries import Series, select, stream, windows
from energy.report import ReportBuilder
from influx.client import InfluxWriter

COLUMNS = ("energy_wh", "power_w", "lamp_on", "dim_pct")


_NUMBERS = (float, int)
"""Exact classes only: ``bool`` is an ``int`` subclass and must not pass as a number."""


def _number(value: Any) -> float | None:
    return float(value) if value.__class__ in _NUMBERS else None


class Pushes(Protocol):
    """What readings are pushed into: a ``ReportBuilder``, or a collector of them."""

    def push(self, device_id: str, sample: Sample) -> None: ...


def push_series(builder: Pushes, series: Series) -> int:
    """Push one device's piece of an answer (columns ``time`` and ``COLUMNS``) into
    ``builder``; returns the readings pushed."""
    device_id = series.tags.get("device_id", "")
    at = {name: i for i, name in enumerate(series.columns)}
    it, ie, ip, il, idim = (
        at["time"],
        at["energy_wh"],
        at["power_w"],
        at["lamp_on"],
        at["dim_pct"],
    )
    push = builder.push
    numbers = _NUMBERS
    for row in series.values:
        lamp_on, energy, power, dim = row[il], row[ie], row[ip], row[idim]
        push(
            device_id,
            Sample(
                int(row[it]),
                float(energy) if energy.__class__ in numbers else None,
                float(power) if power.__class__ in numbers else None,
                lamp_on if lamp_on.__class__ is bool else None,
                float(dim) if dim.__class__ in numbers else None,
            ),
        )
    return len(series.values)


async def feed(
    writer: InfluxWriter,
    builder: ReportBuilder,
    *,
    zones: Sequence[str] = (),
    lookback_ms: int,
    window_ms: int,
    advance: Callable[[int, int], None] | None = None,
) -> int:
    """Push every telemetry reading of the period (and its margins) into ``builder``; returns
    how many were read. ``advance(ms, points)`` is called after each window."""
    start, end = builder.start_ms - lookback_ms, builder.end_ms + lookback_ms
    read = 0
    for a, b in windows(start, end, window_ms):
        before = read
        statement = select(
            "telemetry",
            COLUMNS,
            a,
            b,
            zones=zones,
            group_by_device=True,
            retention_policy=writer.target.retention_policy,
        )
        async for series in stream(writer, statement):
            read += push_series(builder, series)
        if advance is not None:
            advance(b - a, read - before)
    return read
