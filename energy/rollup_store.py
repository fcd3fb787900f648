"""Hourly rollups in InfluxDB: built from raw telemetry, written, and read back into a report.

- ``read_range`` pushes into a builder the telemetry of ``[start, end)`` and each device's nearest
  reading on either side within ``max_interval_ms`` (two ``ORDER BY time DESC LIMIT 1`` /
  ``LIMIT 1`` queries per series instead of ``max_interval_ms`` of readings), which is all an
  hour's figures depend on (``energy.rollup``).
- ``build`` (re)computes the rollups of whole hours and writes them to the rollup retention policy:
  a point per device-hour, at the hour's start, so a rebuild overwrites (never doubles).
- ``feed_report`` fills a report builder from rollups for the whole hours ``energy.rollup.plan``
  allows and from raw readings for the rest: the partial hours at the period's ends, hours across
  a bin's edge (half-hours for settlement, days of a zone with a half-hour offset) and hours whose
  rollups are incomplete (a device without its point); in the whole hours near the ends, only the
  luminaires in doubt there are read raw (``energy.rollup_edges``). A raw range for every
  luminaire within one window is read ``PART_DEVICES`` luminaires at a time (``_read_raw_part``).

Clock: every time here is a reading's ``ts`` (Unix ms); nothing reads the wall clock.
"""

from __future__ import annotations

import bisect
import contextlib
import math
from array import array
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from energy.counters import MS_PER_H, Sample
from energy.inventory import Luminaire
from energy.queries import Series, checked, select, stream, windows
from energy.report import ReportBuilder
from energy.retention import RetentionError, post_statement
from energy.rollup import (
    BASELINE,
    COMPLETE_FIELD,
    DAY_MEASUREMENT,
    DAY_SUMMED,
    MEASUREMENT,
    SUMMED,
    add_sums,
    candidate_days,
    ceil_hour,
    day_line,
    days_touching,
    floor_hour,
    line,
    merge,
    plan,
    rollup_builder,
    rollups,
)
from energy.rollup_edges import (
    DEVICE_BATCH,
    RAW_DEVICES_MAX,
    EdgeHours,
    Silent,
    around,
    edge_hours,
    edge_ms,
    group_clean,
    group_reported,
    group_usable,
    members,
    raw_runs,
    silent_devices,
)
from energy.rollup_groups import (
    GROUP_DAILY,
    GROUP_HOURLY,
    ZONE_DAILY,
    Group,
    GroupCheck,
    add_group_sums,
    expected_groups,
    groupable,
    into_statement,
)
from energy.rollup_months import (
    MONTH_MEASUREMENT,
    candidate_months,
    last_day_statement,
    months_touching,
    take,
)
from energy.rollup_months import into_statement as month_into_statement
from energy.source import COLUMNS, Pushes, push_series
from influx.client import InfluxWriter
from influx.errors import InfluxRejectedError

log = structlog.get_logger("luxtel.rollups")

WRITE_BATCH = 5000
GROUP_BATCH = 100
"""(zone, circuit) pairs named in one filtered query."""
DEVICE_HOURS = 50_000
"""Device-hours built at once: a few tens of MB of tallies and lines."""
PART_DEVICES = 5_000
"""Luminaires tallied at once when a report reads a raw range for every luminaire
(``_read_raw_part``): a builder of that many at a time (~650 bytes each), not of the whole
inventory (65 MB at 100,000)."""


@dataclass(frozen=True, slots=True)
class RollupConfig:
    """Where the rollups live and the arithmetic they were made with."""

    retention_policy: str = "rollups"
    gap_factor: float = 1.5
    max_interval_ms: float = 12 * MS_PER_H
    tz: str = "UTC"
    """The city's civil time, for the daily rollups."""


def _in_time(statement: str, order_desc: bool) -> str:
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
    async for series in stream(writer, _in_time(before, order_desc=True)):
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
    async for series in stream(writer, _in_time(after, order_desc=False)):
        read += push_series(builder, series)
    return read


async def latest_reading_ms(writer: InfluxWriter, since_ms: int) -> int | None:
    """The ts of the latest telemetry reading at or after ``since_ms`` (None: none)."""
    far = since_ms + 100 * 365 * 24 * MS_PER_H
    statement = select(
        "telemetry", COLUMNS, since_ms, far, retention_policy=writer.target.retention_policy
    )
    latest = None
    async for series in stream(writer, _in_time(statement, order_desc=True)):
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


async def _luminaire_rows(
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
        statement = _sums_statement(config, a, b, (), select_list, '"device_id"')
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


@dataclass(slots=True)
class Sources:
    """Where a report's figures came from."""

    rollup_months: int = 0
    """Civil months read from ``energy_monthly`` (their days are not counted in
    ``rollup_days``)."""
    rollup_days: int = 0
    rollup_hours: int = 0
    raw_ranges: list[tuple[int, int]] = field(default_factory=list)
    incomplete_hours: int = 0
    """Hours that could have come from rollups but lacked a device's point."""
    readings: int = 0
    rollup_rows: int = 0
    """Sums InfluxDB answered (one per device, or per (zone, circuit), per run of hours per
    axis)."""
    edge_ms: float = 0.0
    """How far from the report's ends a luminaire's hours may need its raw readings: the
    longest gap of those silent around the period (0 when every luminaire reported just outside
    it, ``energy.rollup_edges``)."""
    group_days: int = 0
    group_hours: int = 0
    """Of ``rollup_days`` and ``rollup_hours``, those read per (zone, circuit)."""
    edge_hours: int = 0
    """Whole hours within ``edge_ms`` of the ends read from rollups for every luminaire but
    ``silent`` (``energy.rollup_edges``)."""
    silent: list[str] = field(default_factory=list)
    """The luminaires whose raw readings were read in those hours."""
    silent_hours: int = 0
    """Luminaire-hours read raw there."""
    edge_group_sums: int = 0
    edge_device_sums: int = 0
    """Sums read for those hours per (zone, circuit) and per luminaire."""


def _sums_statement(
    config: RollupConfig,
    a: int,
    b: int,
    zones: Sequence[str],
    select_list: str,
    group: str,
    measurement: str = MEASUREMENT,
    groups: Sequence[Group] = (),
) -> str:
    where = [f"time >= {a * 1_000_000}", f"time < {b * 1_000_000}"]
    if zones:
        where.append("(" + " OR ".join(f"\"zone\" = '{checked('zone', z)}'" for z in zones) + ")")
    if groups:
        where.append("(" + " OR ".join(_group_term(g) for g in groups) + ")")
    source = f'"{checked("retention policy", config.retention_policy)}"."{measurement}"'
    # Every name passed `checked` and the times are integers: nothing is quoted through.
    return f"SELECT {select_list} FROM {source} WHERE {' AND '.join(where)} GROUP BY {group}"  # noqa: S608


def _group_term(group: Group) -> str:
    zone, circuit = checked("zone", group[0]), checked("circuit", group[1])
    return f"(\"zone\" = '{zone}' AND \"circuit\" = '{circuit}')"


def _group_batches(wanted: Collection[Group], every: Collection[Group]) -> list[Sequence[Group]]:
    """Filters naming ``wanted`` groups, ``GROUP_BATCH`` a query; one without a filter when
    they are all the groups there are."""
    if not wanted:
        return []
    if set(every) <= set(wanted):
        return [()]
    ordered = sorted(wanted)
    return [ordered[i : i + GROUP_BATCH] for i in range(0, len(ordered), GROUP_BATCH)]


async def _add_runs(
    writer: InfluxWriter,
    builder: ReportBuilder,
    spans: Sequence[tuple[int, int]],
    config: RollupConfig,
    zones: Sequence[str],
    measurement: str,
) -> int:
    """Add each device's sums over each run of consecutive ``spans`` inside one bin, per
    axis; returns the device-sums added."""
    select_list = ", ".join(
        [f'sum("{name}") AS "{name}"' for name in SUMMED]
        + ['max("via_counter") AS "via_counter"', 'max("via_power") AS "via_power"']
    )
    added = 0
    for name, axis in builder.axes.items():
        for a, b, index in _runs(axis.edges, spans):
            statement = _sums_statement(
                config, a, b, zones, select_list, '"device_id"', measurement
            )
            async for series in stream(writer, statement):
                device_id = series.tags.get("device_id", "")
                for values in series.values:
                    sums = dict(zip(series.columns, values, strict=True))
                    added += add_sums(builder, name, index, device_id, sums)
    return added


async def _read_back_days(
    writer: InfluxWriter,
    builder: ReportBuilder,
    days: list[tuple[int, int]],
    config: RollupConfig,
    zones: Sequence[str],
) -> tuple[list[tuple[int, int]], int]:
    """Add the daily rollups of ``days`` where every device of the inventory has a point
    summing all the day's hours; returns the days used and the device-sums added."""
    if not days:
        return [], 0
    wanted = len(builder.inventory)
    found: dict[int, tuple[int, int]] = {}
    statement = _sums_statement(
        config,
        days[0][0],
        days[-1][1],
        zones,
        f'count("{COMPLETE_FIELD}"), min("hours")',
        "time(1h)",
        DAY_MEASUREMENT,
    )
    try:
        async for series in stream(writer, statement):
            for t, n, least in series.values:
                found[int(t)] = (int(n or 0), int(least or 0))
    except InfluxRejectedError as error:
        if "retention policy not found" in error.message:
            return [], 0
        raise
    used = [(a, b) for a, b in days if found.get(floor_hour(a)) == (wanted, (b - a) // MS_PER_H)]
    added = await _add_runs(writer, builder, used, config, zones, DAY_MEASUREMENT)
    return used, added


_CHECKED = ("n_lo", "n_hi", "crc_lo", "crc_hi")


async def _group_check(
    writer: InfluxWriter,
    builder: ReportBuilder,
    spans: Sequence[tuple[int, int]],
    config: RollupConfig,
    zones: Sequence[str],
    measurement: str,
) -> bool:
    """Whether every (zone, circuit) point of ``measurement`` over ``spans`` (first to last)
    holds the luminaires and ``inventory_crc`` of the report's inventory (``GroupCheck``)."""
    select_list = (
        'min("luminaires") AS "n_lo", max("luminaires") AS "n_hi", '
        'min("inventory_crc") AS "crc_lo", max("inventory_crc") AS "crc_hi"'
    )
    statement = _sums_statement(
        config, spans[0][0], spans[-1][1], zones, select_list, '"zone", "circuit"', measurement
    )
    groups: dict[tuple[str, str], tuple[int, int, int, int]] = {}
    async for series in stream(writer, statement):
        group = (series.tags.get("zone", ""), series.tags.get("circuit", ""))
        for values in series.values:
            row = dict(zip(series.columns, values, strict=True))
            n_lo, n_hi, crc_lo, crc_hi = (int(row.get(k) or 0) for k in _CHECKED)
            groups[group] = (n_lo, n_hi, crc_lo, crc_hi)
    return GroupCheck(groups).agrees(builder.inventory)


async def _add_group_runs(
    writer: InfluxWriter,
    builder: ReportBuilder,
    spans: Sequence[tuple[int, int]],
    config: RollupConfig,
    zones: Sequence[str],
    measurement: str,
) -> int:
    """Add each (zone, circuit)'s sums over each run of consecutive ``spans`` inside one bin,
    per axis; returns the group-sums added."""
    select_list = ", ".join(
        [f'sum("{name}") AS "{name}"' for name in (*SUMMED, *BASELINE)]
        + ['max("via_counter") AS "via_counter"', 'max("via_power") AS "via_power"']
    )
    added = 0
    for name, axis in builder.axes.items():
        for a, b, index in _runs(axis.edges, spans):
            statement = _sums_statement(
                config, a, b, zones, select_list, '"zone", "circuit"', measurement
            )
            async for series in stream(writer, statement):
                group = (series.tags.get("zone", ""), series.tags.get("circuit", ""))
                for values in series.values:
                    add_group_sums(
                        builder, name, index, group, dict(zip(series.columns, values, strict=True))
                    )
                    added += 1
    return added


def _runs(edges: Sequence[int], spans: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Consecutive ``spans`` merged while inside one bin of ``edges``: (start, end, bin)."""
    merged: list[tuple[int, int, int]] = []
    for a, b in sorted(spans):
        index = bisect.bisect_right(edges, a) - 1
        if merged and merged[-1][1] == a and merged[-1][2] == index:
            merged[-1] = (merged[-1][0], b, index)
        else:
            merged.append((a, b, index))
    return merged


async def _per_time(
    writer: InfluxWriter,
    spans: Sequence[tuple[int, int]],
    config: RollupConfig,
    zones: Sequence[str],
    select_list: str,
    measurement: str,
) -> dict[int, tuple[int, ...]]:
    """``select_list`` per hour (``GROUP BY time(1h)``) over ``spans`` (first to last); {} when
    the rollup policy does not exist."""
    found: dict[int, tuple[int, ...]] = {}
    statement = _sums_statement(
        config, spans[0][0], spans[-1][1], zones, select_list, "time(1h)", measurement
    )
    try:
        async for series in stream(writer, statement):
            for t, *values in series.values:
                found[int(t)] = tuple(int(v or 0) for v in values)
    except InfluxRejectedError as error:
        if "retention policy not found" in error.message:
            return {}
        raise
    return found


async def _silent_at(
    writer: InfluxWriter,
    builder: ReportBuilder,
    outside: int | None,
    inside: int | None,
    config: RollupConfig,
    zones: Sequence[str],
) -> frozenset[str]:
    """The luminaires of the report's inventory not known to have reported at one end: none
    of a group whose ``energy_group_hourly`` point (holding exactly the inventory's members)
    says every member reported in the hour ``outside`` or flags nothing in the hour ``inside``;
    in the other groups, those whose own ``energy_hourly`` point (under their inventory tags)
    says neither (``energy.rollup_edges``). An hour given as None is not asked about."""
    inventory = builder.inventory
    hours = [h for h in (outside, inside) if h is not None]
    if not hours:
        return frozenset(inventory)
    lo, hi = min(hours), max(hours) + MS_PER_H
    select_list = (
        'sum("reporting") AS "reporting", sum("flagged") AS "flagged", '
        'sum("luminaires") AS "luminaires", sum("inventory_crc") AS "inventory_crc"'
    )
    statement = _sums_statement(
        config, lo, hi, zones, select_list, 'time(1h), "zone", "circuit" fill(none)', GROUP_HOURLY
    )
    reported: dict[Group, tuple[int, int, int]] = {}
    clean: dict[Group, tuple[int, int, int]] = {}
    try:
        async for series in stream(writer, statement):
            group = (series.tags.get("zone", ""), series.tags.get("circuit", ""))
            for values in series.values:
                row = dict(zip(series.columns, values, strict=True))
                t = int(row["time"])
                n, crc = int(row.get("luminaires") or 0), int(row.get("inventory_crc") or 0)
                if t == outside:
                    reported[group] = (int(row.get("reporting") or 0), n, crc)
                if t == inside and row.get("flagged") is not None:
                    clean[group] = (int(row["flagged"]), n, crc)
    except InfluxRejectedError as error:
        if "retention policy not found" in error.message:
            return frozenset(inventory)
        raise
    cleared = group_reported(inventory, reported) | group_clean(inventory, clean)
    every = members(inventory)
    doubt = [g for g in every if g not in cleared]
    heard: set[str] = set()
    for batch in _group_batches(doubt, every):
        statement = _sums_statement(
            config,
            lo,
            hi,
            zones,
            '"reported", "flagged"',
            '"device_id", "zone", "circuit"',
            MEASUREMENT,
            batch,
        )
        async for lum, row in _luminaire_rows(writer, statement, inventory):
            t = int(row["time"])
            if t == outside and int(row.get("reported") or 0):
                heard.add(lum.device_id)
            if t == inside and row.get("flagged") is not None and int(row["flagged"]) == 0:
                heard.add(lum.device_id)
    return silent_devices(inventory, cleared, heard)


async def _silent_around(
    writer: InfluxWriter, builder: ReportBuilder, config: RollupConfig, zones: Sequence[str]
) -> Silent:
    """Who is not known to have reported just before the report's start and just after its
    end (``energy.rollup_edges.around``: the hours just outside the period, and its own first
    and last whole hours)."""
    hours = around(builder.start_ms, builder.end_ms, builder.max_interval_ms)
    return Silent(
        await _silent_at(writer, builder, hours.before, hours.first, config, zones),
        await _silent_at(writer, builder, hours.after, hours.last, config, zones),
    )


def _stretches(hours: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for h in sorted(hours):
        if out and out[-1][1] == h:
            out[-1] = (out[-1][0], h + MS_PER_H)
        else:
            out.append((h, h + MS_PER_H))
    return out


@dataclass(slots=True)
class EdgeRead:
    """How a report's edge hours were read (``_read_edge_hours``)."""

    hours: set[int] = field(default_factory=set)
    """Edge hours read from rollups for every luminaire but ``raw``'s."""
    raw: dict[int, set[str]] = field(default_factory=dict)
    """Per edge hour, the luminaires to read raw there."""
    group_sums: int = 0
    device_sums: int = 0


async def _read_edge_hours(
    writer: InfluxWriter,
    builder: ReportBuilder,
    edges: EdgeHours,
    config: RollupConfig,
    zones: Sequence[str],
) -> EdgeRead:
    """Add the edge hours (``energy.rollup_edges``) from rollups: per (zone, circuit) from
    ``energy_group_hourly`` where the report's rows group by zone or circuit, the group has no
    silent member and its point holds exactly the inventory's members, else per luminaire from
    ``energy_hourly`` (the silent ones left out); returns the luminaires left to read raw per
    hour. Nothing is added, and no hour counts as read, when more than ``RAW_DEVICES_MAX`` would
    be left raw."""
    inventory = builder.inventory
    every, wanted = members(inventory), expected_groups(inventory)
    stretches = _stretches(edges.hours)
    group_select = ", ".join(
        [f'sum("{name}") AS "{name}"' for name in (*SUMMED, *BASELINE)]
        + ['max("via_counter") AS "via_counter"', 'max("via_power") AS "via_power"']
        + ['sum("luminaires") AS "luminaires"', 'sum("inventory_crc") AS "inventory_crc"']
    )
    # the sums go to a builder of their own (its tallies: bounded by groups × bins), merged
    # into the report's only if few enough luminaires are left raw
    scratch = builder.part(inventory)
    group_sums = device_sums = 0
    need: dict[int, set[str]] = {}
    if not groupable(builder):  # rows per luminaire: its own hourly points
        for h in edges.hours:
            need[h] = set(inventory) - edges.silent[h]
        stretches = []
    for a, b in stretches:
        found: dict[tuple[int, Group], dict[str, float]] = {}
        statement = _sums_statement(
            config,
            a,
            b,
            zones,
            group_select,
            'time(1h), "zone", "circuit" fill(none)',
            GROUP_HOURLY,
        )
        try:
            async for series in stream(writer, statement):
                group = (series.tags.get("zone", ""), series.tags.get("circuit", ""))
                for values in series.values:
                    row = dict(zip(series.columns, values, strict=True))
                    found[(int(row["time"]), group)] = row
        except InfluxRejectedError as error:
            if "retention policy not found" not in error.message:
                raise
        for h in range(a, b, MS_PER_H):
            quiet = edges.silent[h]
            for group, ids in every.items():
                point = found.get((h, group))
                usable = (
                    point is not None
                    and point.get(COMPLETE_FIELD) is not None
                    and group_usable(
                        wanted,
                        group,
                        int(point.get("luminaires") or 0),
                        int(point.get("inventory_crc") or 0),
                    )
                )
                if point is not None and usable and not ids & quiet:
                    for name, axis in scratch.axes.items():
                        index = bisect.bisect_right(axis.edges, h) - 1
                        add_group_sums(scratch, name, index, group, point)
                    group_sums += 1
                else:
                    need.setdefault(h, set()).update(ids - quiet)
    got: dict[int, set[str]] = {}
    needed_groups = {
        (inventory[d].zone, inventory[d].circuit) for ids in need.values() for d in ids
    }
    device_select = ", ".join(f'"{name}"' for name in (*SUMMED, "via_counter", "via_power"))
    for a, b in _stretches(list(need)):
        for batch in _group_batches(needed_groups, every):
            statement = _sums_statement(
                config,
                a,
                b,
                zones,
                device_select,
                '"device_id", "zone", "circuit"',
                MEASUREMENT,
                batch,
            )
            async for lum, row in _luminaire_rows(writer, statement, inventory):
                t = int(row["time"])
                if row.get(COMPLETE_FIELD) is None:
                    continue  # an older point: read raw
                if lum.device_id in need.get(t, ()) and lum.device_id not in got.get(t, ()):
                    got.setdefault(t, set()).add(lum.device_id)
                    for name, axis in scratch.axes.items():
                        index = bisect.bisect_right(axis.edges, t) - 1
                        add_sums(scratch, name, index, lum.device_id, row)
                    device_sums += 1
    raw = {h: set(edges.silent[h]) | (need.get(h, set()) - got.get(h, set())) for h in edges.hours}
    if len(set().union(*raw.values())) > RAW_DEVICES_MAX:
        return EdgeRead()
    merge(builder, scratch)
    return EdgeRead(set(edges.hours), raw, group_sums, device_sums)


async def _read_raw_devices(
    writer: InfluxWriter,
    builder: ReportBuilder,
    read: EdgeRead,
    zones: Sequence[str],
    window_ms: int,
) -> int:
    """Read the raw readings of the luminaires ``read.raw`` names, hour runs by hour runs,
    with queries restricted to them (``DEVICE_BATCH`` a query); each run's tallies are those
    of a raw report of the whole period over that run, for those luminaires only."""
    total = 0
    for a, b, ids in raw_runs(sorted(read.hours), read.raw):
        part = builder.part({d: builder.inventory[d] for d in ids}, (a, b))
        total += await read_range(
            writer,
            part,
            a,
            b,
            max_interval_ms=builder.max_interval_ms,
            zones=zones,
            devices=ids,
            window_ms=window_ms,
        )
        part.finish()
        merge(builder, part)
    return total


async def _read_back_group_days(
    writer: InfluxWriter,
    builder: ReportBuilder,
    days: list[tuple[int, int]],
    config: RollupConfig,
    zones: Sequence[str],
) -> tuple[list[tuple[int, int]], int]:
    """Add the (zone, circuit) days of ``days`` holding every luminaire of the inventory with
    all the day's hours, when every group agrees with the inventory (``GroupCheck``); returns
    the days used and the group-sums added."""
    if not days:
        return [], 0
    wanted = len(builder.inventory)
    select_list = f'sum("luminaires"), sum("hours"), count("luminaires"), count("{COMPLETE_FIELD}")'
    found = await _per_time(writer, days, config, zones, select_list, GROUP_DAILY)
    used = [
        (a, b)
        for a, b in days
        if _complete(found.get(floor_hour(a)), (wanted, wanted * ((b - a) // MS_PER_H)))
    ]
    if not used or not await _group_check(writer, builder, used, config, zones, GROUP_DAILY):
        return [], 0
    return used, await _add_group_runs(writer, builder, used, config, zones, GROUP_DAILY)


def _complete(found: tuple[int, ...] | None, wanted: tuple[int, ...]) -> bool:
    """Whether a group level's sums at one time (``wanted``'s figures, then how many group
    points there are and how many of them hold ``COMPLETE_FIELD``) are ``wanted`` and come from
    points of this schema only (an older point, with float figures, is not read)."""
    if found is None or len(found) != len(wanted) + 2:
        return False
    return found[: len(wanted)] == wanted and found[-2] == found[-1]


async def _read_back_group_hours(
    writer: InfluxWriter,
    builder: ReportBuilder,
    hours: list[int],
    config: RollupConfig,
    zones: Sequence[str],
) -> tuple[set[int], int]:
    """As ``_read_back_group_days``, for whole hours of ``energy_group_hourly``."""
    if not hours:
        return set(), 0
    wanted = len(builder.inventory)
    spans = [(h, h + MS_PER_H) for h in sorted(hours)]
    select_list = f'sum("luminaires"), count("luminaires"), count("{COMPLETE_FIELD}")'
    found = await _per_time(writer, spans, config, zones, select_list, GROUP_HOURLY)
    spans = [(h, h + MS_PER_H) for h in sorted(hours) if _complete(found.get(h), (wanted,))]
    if not spans or not await _group_check(writer, builder, spans, config, zones, GROUP_HOURLY):
        return set(), 0
    added = await _add_group_runs(writer, builder, spans, config, zones, GROUP_HOURLY)
    return {a for a, _ in spans}, added


async def _read_back(
    writer: InfluxWriter,
    builder: ReportBuilder,
    hours: list[int],
    config: RollupConfig,
    zones: Sequence[str],
) -> tuple[set[int], int]:
    """Add the rollups of ``hours`` to ``builder``, summed by InfluxDB: first which hours
    hold a point for as many devices as the inventory has (``count`` per hour), then, per axis,
    each device's sums over each run of such hours inside one bin. Returns the hours used and
    the device-sums added."""
    if not hours:
        return set(), 0
    wanted = len(builder.inventory)
    counts: dict[int, int] = {}
    stretches: list[tuple[int, int]] = []  # consecutive candidate hours: one count query each
    for h in sorted(hours):
        if stretches and stretches[-1][1] == h:
            stretches[-1] = (stretches[-1][0], h + MS_PER_H)
        else:
            stretches.append((h, h + MS_PER_H))
    try:
        for a, b in stretches:
            statement = _sums_statement(
                config, a, b, zones, f'count("{COMPLETE_FIELD}")', "time(1h)"
            )
            async for series in stream(writer, statement):
                for t, n in series.values:
                    counts[int(t)] = int(n or 0)
    except InfluxRejectedError as error:
        if "retention policy not found" in error.message:
            return set(), 0  # no rollups were ever made here: all raw
        raise
    used = {h for h in hours if counts.get(h) == wanted}
    spans = [(h, h + MS_PER_H) for h in sorted(used)]
    return used, await _add_runs(writer, builder, spans, config, zones, MEASUREMENT)


class _Kept:
    """One reading per device (a ``LIMIT 1`` look-up's answer) kept compactly (~70 bytes a
    device with its id, where a ``Sample`` and its numbers take ~180) until the devices' turn
    comes, then handed out in ascending device order, whatever order InfluxDB answered in
    (``ORDER BY time DESC`` reverses the series too). Only the devices of ``only`` are kept
    (None: all)."""

    def __init__(self, only: Collection[str] | None) -> None:
        self.only = only
        self.ids: list[str] = []
        self.t = array("q")
        self.values = array("d")
        """energy, power, dim per reading; NaN for none."""
        self.lamp = bytearray()
        """0 off, 1 on, 2 none."""
        self.order: list[int] = []
        self.next = 0

    def push(self, device_id: str, sample: Sample) -> None:
        if self.only is not None and device_id not in self.only:
            return
        self.ids.append(device_id)
        self.t.append(sample.t_ms)
        for value in (sample.energy_wh, sample.power_w, sample.dim_pct):
            self.values.append(math.nan if value is None else value)
        self.lamp.append(2 if sample.lamp_on is None else int(sample.lamp_on))

    def sort(self) -> None:
        self.order = sorted(range(len(self.ids)), key=self.ids.__getitem__)

    def push_upto(self, part: Pushes, last: str | None) -> None:
        """Push into ``part`` the readings of the devices up to ``last`` (None: all left), in
        device order."""
        order, ids = self.order, self.ids
        while self.next < len(order) and (last is None or ids[order[self.next]] <= last):
            i = order[self.next]
            energy, power, dim = (
                None if math.isnan(v) else v for v in self.values[3 * i : 3 * i + 3]
            )
            lamp = None if self.lamp[i] == 2 else bool(self.lamp[i])
            part.push(ids[i], Sample(self.t[i], energy, power, lamp, dim))
            self.next += 1


class _Rows:
    """Readings pushed, kept per device in the order pushed."""

    def __init__(self) -> None:
        self.by: dict[str, list[Sample]] = {}

    def push(self, device_id: str, sample: Sample) -> None:
        self.by.setdefault(device_id, []).append(sample)


class _Cursor:
    """A query's answer grouped by device, taken device range by device range (InfluxDB answers
    ``GROUP BY "device_id"`` in ascending device order; a device out of order is refused)."""

    def __init__(self, series: AsyncIterator[Series]) -> None:
        self._series = series
        self._head: Series | None = None
        self._done = False
        self._last = ""

    async def take_upto(self, last: str | None) -> AsyncIterator[Series]:
        """The pieces of series of the devices up to ``last`` (None: all left)."""
        while True:
            if self._head is None and not self._done:
                try:
                    self._head = await anext(self._series)
                except StopAsyncIteration:
                    self._done = True
            head = self._head
            if head is None:
                return
            device = head.tags.get("device_id", "")
            if last is not None and device > last:
                return
            if device < self._last:
                raise ValueError(f"InfluxDB answered {device!r} after {self._last!r}")
            self._last, self._head = device, None
            yield head


async def _read_raw_part(
    writer: InfluxWriter,
    builder: ReportBuilder,
    a: int,
    b: int,
    zones: Sequence[str],
    window_ms: int,
) -> int:
    """Add ``[a, b)`` read raw for every luminaire (tallied only there: ``accept``); returns
    the readings read. Longer than one window: as ``read_range`` reads it, every luminaire at
    once. Within one window, ``PART_DEVICES`` luminaires at a time, and with one query over all
    series fewer than ``read_range``'s three (InfluxDB 1.x pays ~50 µs a series per query):

    - the window is read from ``margin`` before ``a`` (the longest report interval of the
      inventory), so a luminaire reporting on time has its reading before ``a`` there: no
      look-up for it;
    - the look-up after ``b`` (``LIMIT 1``) is read first and kept compactly (``_Kept``); the
      window's answer is then taken device range by device range (it comes in ascending device
      order), each luminaire's rows pushed as they come;
    - the luminaires without a reading in the margin have their readings held and their last
      one before it looked up afterwards (by name when at most ``RAW_DEVICES_MAX``, else for
      every series), kept compactly too.
    """
    inventory = builder.inventory

    if b - a > window_ms:
        part = builder.part(inventory, (a, b))
        read = await read_range(
            writer,
            part,
            a,
            b,
            max_interval_ms=builder.max_interval_ms,
            zones=zones,
            window_ms=window_ms,
        )
        part.finish()
        merge(builder, part)
        return read
    rp, reach = writer.target.retention_policy, int(builder.max_interval_ms)
    longest = max((lum.report_interval_s * 1000 for lum in inventory.values()), default=0)
    margin = int(min(reach, longest))

    def statement(lo: int, hi: int, devices: Sequence[str] = ()) -> str:
        return select(
            "telemetry",
            COLUMNS,
            lo,
            hi,
            zones=zones,
            devices=devices,
            group_by_device=True,
            retention_policy=rp,
        )

    read = 0
    held = _Rows()
    """The luminaires without a reading in the margin: their readings from ``a`` on."""
    after = _Kept(None)
    async for series in stream(writer, _in_time(statement(b, b + reach + 1), order_desc=False)):
        read += push_series(after, series)
    after.sort()
    inside = stream(writer, statement(a - margin, b))
    async with contextlib.aclosing(inside):
        cursor = _Cursor(inside)
        ordered = sorted(inventory)
        for i in range(0, max(len(ordered), 1), PART_DEVICES):
            ids = ordered[i : i + PART_DEVICES]
            last = None if i + PART_DEVICES >= len(ordered) else ids[-1]
            # the slice's luminaires but those held, taken out as found (before ``finish``)
            devices = {d: inventory[d] for d in ids}
            part = builder.part(devices, (a, b))
            pre: dict[str, list[Any]] = {}
            """Per luminaire of the slice, its last reading in the margin, until pushed."""
            on: set[str] = set()
            """Luminaires whose reading before ``a`` was pushed."""
            columns: list[str] = []
            async for series in cursor.take_upto(last):
                read += len(series.values)
                columns = series.columns
                device = series.tags.get("device_id", "")
                at = series.columns.index("time")
                times = [row[at] for row in series.values]
                k = bisect.bisect_left(times, a)
                if k:
                    pre[device] = series.values[k - 1]
                rows = series.values[k:]
                if not rows:
                    continue
                if device not in on and device in pre:
                    rows = [pre.pop(device), *rows]
                    on.add(device)
                if device in on or device not in devices:
                    push_series(part, replace(series, values=rows))
                else:
                    push_series(held, replace(series, values=rows))
            for device, row in pre.items():  # a reading in the margin, none from a on
                push_series(part, Series("", {"device_id": device}, columns, [row]))
                on.add(device)
            following = _Rows()
            after.push_upto(following, last)
            for device, samples in following.by.items():
                target = part if device in on or device not in devices else held
                for sample in samples:
                    target.push(device, sample)
            for d in ids:
                if d not in on:
                    held.by.setdefault(d, [])
                    del devices[d]
            part.finish()
            merge(builder, part)
    held_by = held.by
    if not held_by:
        return read
    before = _Kept(held_by)
    lacking = sorted(held_by)
    batches = (
        [lacking[i : i + DEVICE_BATCH] for i in range(0, len(lacking), DEVICE_BATCH)]
        if len(lacking) <= RAW_DEVICES_MAX
        else [[]]
    )
    for batch in batches:
        look_up = _in_time(statement(a - reach, a - margin, batch), order_desc=True)
        async for series in stream(writer, look_up):
            read += push_series(before, series)
    before.sort()
    for i in range(0, len(lacking), PART_DEVICES):
        ids = lacking[i : i + PART_DEVICES]
        part = builder.part({d: inventory[d] for d in ids}, (a, b))
        before.push_upto(part, ids[-1])
        for d in ids:
            for sample in held_by[d]:
                part.push(d, sample)
        part.finish()
        merge(builder, part)
    return read


async def feed_report(
    writer: InfluxWriter,
    builder: ReportBuilder,
    config: RollupConfig,
    *,
    zones: Sequence[str] = (),
    window_ms: int = MS_PER_H * 24,
    advance: Callable[[int, int], None] | None = None,
) -> Sources:
    """Fill ``builder`` (made with ``config``'s gap factor and max interval) from rollups
    where they can stand for the raw readings, and from raw readings elsewhere; the caller
    then calls ``builder.finish()``. ``advance(ms, points)`` as the parts are read."""
    start, end = builder.start_ms, builder.end_ms
    edge = max(
        (lum.report_interval_s * 1000 * builder.gap_factor for lum in builder.inventory.values()),
        default=0.0,
    )
    axes = [axis.edges for axis in builder.axes.values()]
    sources = Sources()
    silent = await _silent_around(writer, builder, config, zones)
    edge = edge_ms(builder.inventory, silent.any, builder.gap_factor)
    sources.edge_ms = edge
    days = candidate_days(start, end, axes, edge, ZoneInfo(config.tz))
    group_days: list[tuple[int, int]] = []
    if groupable(builder):
        group_days, rows = await _read_back_group_days(writer, builder, days, config, zones)
        sources.rollup_rows += rows
    rest = [d for d in days if d not in set(group_days)]
    months: list[tuple[int, int]] = []
    for a, b in candidate_months(start, end, axes, edge, ZoneInfo(config.tz)):
        if any(a <= d < b for d, _ in group_days):
            continue
        added = await take(writer, builder, (a, b), config.retention_policy, zones)
        if added:
            months.append((a, b))
            sources.rollup_rows += added
    rest = [(a, b) for a, b in rest if not any(x <= a < y for x, y in months)]
    device_days, rows = await _read_back_days(writer, builder, rest, config, zones)
    sources.rollup_rows += rows
    sources.rollup_months = len(months)
    used_days = sorted(group_days + device_days + months)
    sources.rollup_days = len(group_days) + len(device_days)
    sources.group_days = len(group_days)
    every_hour = set(range(floor_hour(start), end, MS_PER_H))
    candidates = plan(start, end, axes, edge, every_hour, used_days)
    group_hours: set[int] = set()
    if groupable(builder):
        group_hours, rows = await _read_back_group_hours(
            writer, builder, candidates.hours, config, zones
        )
        sources.rollup_rows += rows
    rest_hours = [h for h in candidates.hours if h not in group_hours]
    device_hours, rows = await _read_back(writer, builder, rest_hours, config, zones)
    used = group_hours | device_hours
    sources.rollup_rows += rows
    sources.rollup_hours, sources.group_hours = len(used), len(group_hours)
    sources.incomplete_hours = len(candidates.hours) - len(used)
    edge_read = EdgeRead()
    if edge > 0:
        edges = edge_hours(start, end, axes, edge, silent)
        # an end where too many were silent (a report up to now) is read raw for everyone
        edges.hours[:] = [h for h in edges.hours if len(edges.silent[h]) <= RAW_DEVICES_MAX]
        edge_read = await _read_edge_hours(writer, builder, edges, config, zones)
        sources.rollup_rows += edge_read.group_sums + edge_read.device_sums
        sources.edge_group_sums = edge_read.group_sums
        sources.edge_device_sums = edge_read.device_sums
    sources.edge_hours = len(edge_read.hours)
    sources.silent = sorted(set().union(*edge_read.raw.values()))
    sources.silent_hours = sum(len(ids) for ids in edge_read.raw.values())
    if advance is not None:
        advance(sum(b - a for a, b in used_days) + len(used) * MS_PER_H, sources.rollup_rows)
    final = plan(start, end, axes, 0.0, used | edge_read.hours, used_days)
    sources.raw_ranges = final.raw
    for a, b in final.raw:
        read = await _read_raw_part(writer, builder, a, b, zones, window_ms)
        sources.readings += read
        if advance is not None:
            advance(b - a, read)
    sources.readings += await _read_raw_devices(writer, builder, edge_read, zones, window_ms)
    return sources
