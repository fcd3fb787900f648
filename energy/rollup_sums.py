"""A report's whole days and whole hours read back from the rollup levels, summed by InfluxDB
(or, per luminaire over a few points each, read plainly and summed by ``energy.rollup_rows``):
per luminaire (``energy_daily``, ``energy_hourly``) or, when the report's rows group by zone or
circuit and every group agrees with the inventory, per (zone, circuit) (``energy_group_daily``,
``energy_group_hourly``). A level is used for a span only when it holds every luminaire of the
inventory there with all the span's hours.

Clock: every time here is a reading's ``ts`` (Unix ms).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from energy.counters import MS_PER_H
from energy.queries import stream
from energy.report import ReportBuilder
from energy.rollup import (
    BASELINE,
    COMPLETE_FIELD,
    DAY_MEASUREMENT,
    MEASUREMENT,
    SUMMED,
    add_sums,
    floor_hour,
    within_one_bin,
)
from energy.rollup_groups import GROUP_DAILY, GROUP_HOURLY, GroupCheck, add_group_sums
from energy.rollup_rows import PLAIN_POINTS, DeviceSums, add_kept, hour_stretches, read_plain
from energy.rollup_statements import sums_statement
from energy.rollup_store import RollupConfig
from influx.client import InfluxWriter
from influx.errors import InfluxRejectedError


async def _add_runs(
    writer: InfluxWriter,
    builder: ReportBuilder,
    spans: Sequence[tuple[int, int]],
    config: RollupConfig,
    zones: Sequence[str],
    measurement: str,
) -> int:
    """Add each device's sums over each run of consecutive ``spans`` inside one bin, per
    axis; returns the device-sums added. A run of at most ``PLAIN_POINTS`` spans is read as
    plain rows summed here (``energy.rollup_rows``), a longer one summed by InfluxDB."""
    select_list = _sums_select(SUMMED)
    spans_of = sorted(spans)
    starts = [a for a, _ in spans_of]
    added = 0
    for name, axis in builder.axes.items():
        for a, b, index in _runs(axis.edges, spans):
            run = spans_of[bisect.bisect_left(starts, a) : bisect.bisect_left(starts, b)]
            if len(run) <= PLAIN_POINTS:
                kept = await read_plain(writer, run, config, measurement, zones)
                added += add_kept(builder, name, index, kept)
                continue
            statement = sums_statement(config, a, b, zones, select_list, '"device_id"', measurement)
            async for series in stream(writer, statement):
                device_id = series.tags.get("device_id", "")
                for values in series.values:
                    sums = dict(zip(series.columns, values, strict=True))
                    added += add_sums(builder, name, index, device_id, sums)
    return added


def _sums_select(summed: Sequence[str]) -> str:
    """The select list of a run's sums: each of ``summed`` summed, and whether any hour used
    the counter or the power integral."""
    return ", ".join(
        [f'sum("{name}") AS "{name}"' for name in summed]
        + ['max("via_counter") AS "via_counter"', 'max("via_power") AS "via_power"']
    )


def _one_read(builder: ReportBuilder, spans: Sequence[tuple[int, int]]) -> bool:
    """Whether ``spans`` (sorted) are few enough a luminaire to read plainly (``PLAIN_POINTS``)
    and lie in one bin of every axis: then one plain read both says which spans hold every
    luminaire and sums them, with no ``count`` query first (InfluxDB pays per series for that
    too: 28.7 s of its CPU over 30 days of 100,000 luminaires' daily points, session 8)."""
    if not spans or len(spans) > PLAIN_POINTS:
        return False
    a, b = spans[0][0], spans[-1][1]
    return all(within_one_bin(axis.edges, a, b) for axis in builder.axes.values())


async def _read_checked(
    writer: InfluxWriter,
    spans: Sequence[tuple[int, int]],
    config: RollupConfig,
    zones: Sequence[str],
    measurement: str,
    extra: Sequence[str] = (),
) -> DeviceSums | None:
    """``spans`` read plainly (``energy.rollup_rows``); None when the rollup policy does not
    exist (no rollups were ever made here: all raw)."""
    try:
        return await read_plain(writer, spans, config, measurement, zones, extra)
    except InfluxRejectedError as error:
        if "retention policy not found" in error.message:
            return None
        raise


async def _add_kept(
    writer: InfluxWriter,
    builder: ReportBuilder,
    spans: Sequence[tuple[int, int]],
    used: Sequence[tuple[int, int]],
    kept: DeviceSums,
    config: RollupConfig,
    zones: Sequence[str],
    measurement: str,
) -> int:
    """Add ``kept`` (the sums over every one of ``spans``) when they are all ``used``; else
    read and add the ``used`` ones again (a span lacking a luminaire's point is left to the
    other readers)."""
    if len(used) == len(spans):
        added = 0
        for name, axis in builder.axes.items():
            index = bisect.bisect_right(axis.edges, spans[0][0]) - 1
            added += add_kept(builder, name, index, kept)
        return added
    return await _add_runs(writer, builder, used, config, zones, measurement)


async def read_back_days(
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
    if _one_read(builder, days):
        kept = await _read_checked(writer, days, config, zones, DAY_MEASUREMENT, ("hours",))
        if kept is None:
            return [], 0
        used = [(a, b) for a, b in days if kept.found(a) == (wanted, (b - a) // MS_PER_H)]
        added = await _add_kept(writer, builder, days, used, kept, config, zones, DAY_MEASUREMENT)
        return used, added
    found: dict[int, tuple[int, int]] = {}
    statement = sums_statement(
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
    statement = sums_statement(
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
    select_list = _sums_select((*SUMMED, *BASELINE))
    added = 0
    for name, axis in builder.axes.items():
        for a, b, index in _runs(axis.edges, spans):
            statement = sums_statement(
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
    statement = sums_statement(
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


async def read_back_group_days(
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


async def read_back_group_hours(
    writer: InfluxWriter,
    builder: ReportBuilder,
    hours: list[int],
    config: RollupConfig,
    zones: Sequence[str],
) -> tuple[set[int], int]:
    """As ``read_back_group_days``, for whole hours of ``energy_group_hourly``."""
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


async def read_back_hours(
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
    every = [(h, h + MS_PER_H) for h in sorted(hours)]
    if _one_read(builder, every):
        kept = await _read_checked(writer, every, config, zones, MEASUREMENT)
        if kept is None:
            return set(), 0
        spans = [(a, b) for a, b in every if kept.found(a)[0] == wanted]
        added = await _add_kept(writer, builder, every, spans, kept, config, zones, MEASUREMENT)
        return {a for a, _ in spans}, added
    counts: dict[int, int] = {}
    try:
        for a, b in hour_stretches(hours):  # consecutive candidate hours: one count query each
            statement = sums_statement(
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
