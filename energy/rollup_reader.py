"""A report filled from the rollups where they can stand for the raw readings, and from raw
readings elsewhere (``feed_report``), and where its figures came from (``Sources``).

The order: who is silent around the period (``energy.rollup_edge_reads``); the whole days and
civil months (per (zone, circuit), ``energy_monthly``, per luminaire); the whole hours
(``energy.rollup_sums``); the edge hours; then the raw ranges left (``energy.rollup_raw``) and
the silent luminaires' raw hours.

Clock: every time here is a reading's ``ts`` (Unix ms); nothing reads the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from energy.counters import MS_PER_H
from energy.report import ReportBuilder
from energy.rollup import candidate_days, floor_hour, plan
from energy.rollup_edge_reads import EdgeRead, read_edge_hours, read_raw_devices, silent_around
from energy.rollup_edges import RAW_DEVICES_MAX, edge_hours, edge_ms
from energy.rollup_groups import groupable
from energy.rollup_months import candidate_months, take
from energy.rollup_raw import read_raw_part
from energy.rollup_store import RollupConfig
from energy.rollup_sums import (
    read_back_days,
    read_back_group_days,
    read_back_group_hours,
    read_back_hours,
)
from influx.client import InfluxWriter


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
    silent = await silent_around(writer, builder, config, zones)
    edge = edge_ms(builder.inventory, silent.any, builder.gap_factor)
    sources.edge_ms = edge
    days = candidate_days(start, end, axes, edge, ZoneInfo(config.tz))
    group_days: list[tuple[int, int]] = []
    if groupable(builder):
        group_days, rows = await read_back_group_days(writer, builder, days, config, zones)
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
    device_days, rows = await read_back_days(writer, builder, rest, config, zones)
    sources.rollup_rows += rows
    sources.rollup_months = len(months)
    used_days = sorted(group_days + device_days + months)
    sources.rollup_days = len(group_days) + len(device_days)
    sources.group_days = len(group_days)
    every_hour = set(range(floor_hour(start), end, MS_PER_H))
    candidates = plan(start, end, axes, edge, every_hour, used_days)
    group_hours: set[int] = set()
    if groupable(builder):
        group_hours, rows = await read_back_group_hours(
            writer, builder, candidates.hours, config, zones
        )
        sources.rollup_rows += rows
    rest_hours = [h for h in candidates.hours if h not in group_hours]
    device_hours, rows = await read_back_hours(writer, builder, rest_hours, config, zones)
    used = group_hours | device_hours
    sources.rollup_rows += rows
    sources.rollup_hours, sources.group_hours = len(used), len(group_hours)
    sources.incomplete_hours = len(candidates.hours) - len(used)
    edge_read = EdgeRead()
    if edge > 0:
        edges = edge_hours(start, end, axes, edge, silent)
        # an end where too many were silent (a report up to now) is read raw for everyone
        edges.hours[:] = [h for h in edges.hours if len(edges.silent[h]) <= RAW_DEVICES_MAX]
        edge_read = await read_edge_hours(writer, builder, edges, config, zones)
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
        read = await read_raw_part(writer, builder, a, b, zones, window_ms)
        sources.readings += read
        if advance is not None:
            advance(b - a, read)
    sources.readings += await read_raw_devices(writer, builder, edge_read, zones, window_ms)
    return sources
