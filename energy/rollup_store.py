"""Hourly rollups in InfluxDB: built from raw telemetry, written, and read back into a report.

- ``read_range`` pushes into a builder the telemetry of ``[start, end)`` and each device's nearest
  reading on either side within ``max_interval_ms`` (two ``ORDER BY time DESC LIMIT 1`` /
  ``LIMIT 1`` queries per series instead of ``max_interval_ms`` of readings), which is all an
  hour's figures depend on (``energy.rollup``).
- ``build`` (re)computes the rollups of whole hours and writes them to the rollup retention policy:
  a point per device-hour, at the hour's start, so a rebuild overwrites (never doubles).

Reading a report back from them is ``energy.rollup_reader`` (``feed_report``).

Clock: every time here is a reading's ``ts`` (Unix ms); nothing reads the wall clock.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from energy.counters import MS_PER_H
from energy.inventory import Luminaire
from energy.queries import select, stream, windows
from energy.report import ReportBuilder
from energy.retention import RetentionError, post_statement
from energy.rollup import (
    COMPLETE_FIELD,
    DAY_MEASUREMENT,
    DAY_SUMMED,
    MEASUREMENT,
    ceil_hour,
    day_line,
    days_touching,
    floor_hour,
    line,
    rollup_builder,
    rollups,
)
from energy.rollup_groups import GROUP_DAILY, GROUP_HOURLY, ZONE_DAILY, into_statement
from energy.rollup_months import MONTH_MEASUREMENT, last_day_statement, months_touching
from energy.rollup_months import into_statement as month_into_statement
from energy.rollup_statements import sums_statement
from energy.source import COLUMNS, push_series
from influx.client import InfluxWriter

log = structlog.get_logger("luxtel.rollups")

WRITE_BATCH = 5000
DEVICE_HOURS = 50_000
"""Device-hours built at once: a few tens of MB of tallies and lines."""
PART_DEVICES = 5_000
"""Luminaires tallied at once when a report reads a raw range for every luminaire
(``energy.rollup_raw.read_raw_part``): a builder of that many at a time (~650 bytes each), not
of the whole inventory (65 MB at 100,000)."""


@dataclass(frozen=True, slots=True)
class RollupConfig:
    """Where the rollups live and the arithmetic they were made with."""

    retention_policy: str = "rollups"
    gap_factor: float = 1.5
    max_interval_ms: float = 12 * MS_PER_H
    tz: str = "UTC"
    """The city's civil time, for the daily rollups."""


def in_time(statement: str, order_desc: bool) -> str:
    suffix = " ORDER BY time DESC LIMIT 1" if order_desc else " LIMIT 1"
    return statement + suffix


async def read_range(
    writer: InfluxWriter,
    builder: ReportBuilder,
    start_ms: int,
    end_ms: int,
    *,
    max_interval_ms: float,
    zones: Sequence[str] = (),
    devices: Sequence[str] = (),
    window_ms: int = MS_PER_H * 24,
) -> int:
    """Push into ``builder`` each device's last reading before ``start_ms`` (within
    ``max_interval_ms``), every reading of ``[start_ms, end_ms)``, then each device's first
    reading from ``end_ms`` on (within ``max_interval_ms``); returns the readings read. Only
    ``devices`` when given (a filter on the ``device_id`` tag)."""
    rp = writer.target.retention_policy
    reach = int(max_interval_ms)
    read = 0
    before = select(
        "telemetry",
        COLUMNS,
        start_ms - reach,
        start_ms,
        zones=zones,
        devices=devices,
        group_by_device=True,
        retention_policy=rp,
    )
    async for series in stream(writer, in_time(before, order_desc=True)):
        read += push_series(builder, series)
    for a, b in windows(start_ms, end_ms, window_ms):
        statement = select(
            "telemetry",
            COLUMNS,
            a,
            b,
            zones=zones,
            devices=devices,
            group_by_device=True,
            retention_policy=rp,
        )
        async for series in stream(writer, statement):
            read += push_series(builder, series)
    after = select(
        "telemetry",
        COLUMNS,
        end_ms,
        end_ms + reach + 1,
        zones=zones,
        devices=devices,
        group_by_device=True,
        retention_policy=rp,
    )
    async for series in stream(writer, in_time(after, order_desc=False)):
        read += push_series(builder, series)
    return read


async def latest_reading_ms(writer: InfluxWriter, since_ms: int) -> int | None:
    """The ts of the latest telemetry reading at or after ``since_ms`` (None: none)."""
    far = since_ms + 100 * 365 * 24 * MS_PER_H
    statement = select(
        "telemetry", COLUMNS, since_ms, far, retention_policy=writer.target.retention_policy
    )
    latest = None
    async for series in stream(writer, in_time(statement, order_desc=True)):
        for values in series.values:
            t = int(values[series.columns.index("time")])
            latest = t if latest is None else max(latest, t)
    return latest


def chunk_hours(devices: int) -> int:
    """Hours per build or read-back step: ``DEVICE_HOURS`` device-hours, 1 to 168."""
    return max(1, min(168, DEVICE_HOURS // max(devices, 1)))


@dataclass(slots=True)
class Built:
    """What a build did: rows written, readings read, and the hours its intervals reached
    outside the range (``reach``: earliest and latest reading pushed)."""

    rows: int = 0
    readings: int = 0
    reach: tuple[int, int] | None = None
    days: int = 0
    """Daily points written."""


async def build(
    writer: InfluxWriter,
    inventory: Mapping[str, Luminaire],
    start_ms: int,
    end_ms: int,
    config: RollupConfig,
    *,
    advance: Callable[[int, int], None] | None = None,
) -> Built:
    """(Re)compute and write the rollups of the whole hours over ``[start_ms, end_ms)``
    (widened to the hour), in steps of ``chunk_hours``; ``advance(ms, rows)`` after each."""
    start_ms, end_ms = floor_hour(start_ms), ceil_hour(end_ms)
    target = replace(writer.target, retention_policy=config.retention_policy)
    step = chunk_hours(len(inventory)) * MS_PER_H
    done = Built()
    lo, hi = start_ms, end_ms
    async with InfluxWriter(target) as out:
        for a, b in windows(start_ms, end_ms, step):
            builder = rollup_builder(
                a,
                b,
                inventory,
                gap_factor=config.gap_factor,
                max_interval_ms=config.max_interval_ms,
            )
            done.readings += await read_range(
                writer, builder, a, b, max_interval_ms=config.max_interval_ms
            )
            for s in builder.streams.values():
                if s.first_ms is not None and s.last is not None:
                    lo, hi = min(lo, s.first_ms), max(hi, s.last.t_ms)
            rows = rollups(builder)
            lines = [line(row) for row in rows]
            for i in range(0, len(lines), WRITE_BATCH):
                await out.write(lines[i : i + WRITE_BATCH])
            await into_level(writer, config, GROUP_HOURLY, a, b)
            done.rows += len(rows)
            if advance is not None:
                advance(b - a, len(rows))
        done.days = await build_days(writer, out, inventory, start_ms, end_ms, config)
    done.reach = (lo, hi)
    return done


async def luminaire_rows(
    writer: InfluxWriter, statement: str, inventory: Mapping[str, Luminaire]
) -> AsyncIterator[tuple[Luminaire, dict[str, Any]]]:
    """The rows of a query grouped by device, zone and circuit, each with its luminaire: only
    those whose tags are the inventory's now (a point under a luminaire's old zone or circuit,
    left by an inventory edit not yet rebuilt, is not its)."""
    async for series in stream(writer, statement):
        lum = inventory.get(series.tags.get("device_id", ""))
        tags = (series.tags.get("zone", ""), series.tags.get("circuit", ""))
        if lum is None or (lum.zone, lum.circuit) != tags:
            continue
        for values in series.values:
            yield lum, dict(zip(series.columns, values, strict=True))


async def delete_range(
    writer: InfluxWriter, start_ms: int, end_ms: int, config: RollupConfig
) -> None:
    """Delete the hourly rollups of the hours over ``[start_ms, end_ms)``, the daily ones of
    the days touching it and the monthly ones of their months (before a rebuild after an
    inventory edit moved a luminaire to another zone or circuit: its points under the old tags
    would stay beside the new ones).
    The per-group levels of the same hours and days go too. These measurements exist only in
    the rollup policy, so nothing else is touched."""
    a, b = floor_hour(start_ms), ceil_hour(end_ms)
    days = days_touching(a, b, ZoneInfo(config.tz))
    spans = [(MEASUREMENT, a, b), (GROUP_HOURLY, a, b)]
    if days:
        spans += [(m, days[0][0], days[-1][1]) for m in (DAY_MEASUREMENT, GROUP_DAILY, ZONE_DAILY)]
        months = months_touching(days, ZoneInfo(config.tz))
        spans.append((MONTH_MEASUREMENT, months[0][0], months[-1][1]))
    for measurement, x, y in spans:
        # integers and constants only
        statement = f'DELETE FROM "{measurement}" WHERE time >= {x}ms AND time < {y}ms'  # noqa: S608
        await post_statement(writer, statement)


async def build_days(
    writer: InfluxWriter,
    out: InfluxWriter,
    inventory: Mapping[str, Luminaire],
    start_ms: int,
    end_ms: int,
    config: RollupConfig,
    *,
    complete: bool = False,
) -> int:
    """(Re)write the daily rollups of every civil day touching ``[start_ms, end_ms)`` (with
    ``complete``: only those ending by ``end_ms``): each device's sums over the day's hourly
    points, summed by InfluxDB, then the day's sums per (zone, circuit) and per zone
    (``energy.rollup_groups``, computed by InfluxDB from the daily points just written), then
    the monthly points of their months whose last day is there (``_build_months``); returns
    the per-device daily points."""
    select_list = ", ".join(
        [f'sum("{name}") AS "{name}"' for name in DAY_SUMMED]
        + ['max("via_counter") AS "via_counter"', 'max("via_power") AS "via_power"']
        + [f'count("{COMPLETE_FIELD}") AS "hours"']
        + ['min("inventory_crc") AS "crc_lo"', 'max("inventory_crc") AS "crc_hi"']
    )
    written = 0
    rebuilt: list[tuple[int, int]] = []
    for a, b in days_touching(start_ms, end_ms, ZoneInfo(config.tz)):
        if complete and b > end_ms:
            continue
        rebuilt.append((a, b))
        statement = sums_statement(config, a, b, (), select_list, '"device_id"')
        lines = []
        async for series in stream(writer, statement):
            lum = inventory.get(series.tags.get("device_id", ""))
            if lum is None:
                continue
            for values in series.values:
                lines.append(day_line(lum, a, dict(zip(series.columns, values, strict=True))))
        for i in range(0, len(lines), WRITE_BATCH):
            await out.write(lines[i : i + WRITE_BATCH])
        written += len(lines)
        for level in (GROUP_DAILY, ZONE_DAILY):
            await into_level(writer, config, level, a, b)
    await _build_months(writer, config, rebuilt)
    return written


async def _build_months(
    writer: InfluxWriter, config: RollupConfig, days: Sequence[tuple[int, int]]
) -> None:
    """(Re)write the monthly rollups (``energy.rollup_months``) of the months holding ``days``
    (just rebuilt) whose last day has daily points: the month just completed, or a past month
    a late reading reached back into. Computed by InfluxDB from the daily points, as the group
    levels are (refused: as ``into_level``)."""
    tz = ZoneInfo(config.tz)
    for a, b in months_touching(days, tz):
        statement = last_day_statement(config.retention_policy, (a, b), tz)
        closed = False
        async for series in stream(writer, statement):
            closed = closed or any(int(values[1] or 0) for values in series.values)
        if not closed:
            continue
        try:
            await post_statement(writer, month_into_statement(config.retention_policy, a, b))
        except RetentionError as error:
            log.warning(
                "rollup_month_level_refused",
                error=str(error),
                action="reports read the daily rollups",
            )
            statement = f'DELETE FROM "{MONTH_MEASUREMENT}" WHERE time >= {a}ms AND time < {b}ms'  # noqa: S608
            with contextlib.suppress(RetentionError):
                await post_statement(writer, statement)


async def into_level(
    writer: InfluxWriter, config: RollupConfig, level: str, a: int, b: int
) -> None:
    """Compute ``level`` over ``[a, b)`` inside InfluxDB (``into_statement``, POSTed).

    Refused (an InfluxDB without ``SELECT … INTO``, e.g. 2.x's v1 API): a warning, the level's
    points of the span deleted where InfluxDB allows it, and the build carries on; reports then
    read the per-luminaire rollups (the level is absent or fails their checks). InfluxDB away:
    ``InfluxUnavailableError`` as from any query, and the build is tried again."""
    try:
        await post_statement(writer, into_statement(config.retention_policy, level, a, b))
    except RetentionError as error:
        log.warning(
            "rollup_group_level_refused",
            level=level,
            error=str(error),
            action="reports read the per-luminaire rollups",
        )
        statement = f'DELETE FROM "{level}" WHERE time >= {a}ms AND time < {b}ms'  # noqa: S608
        with contextlib.suppress(RetentionError):
            await post_statement(writer, statement)
