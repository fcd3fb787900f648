"""A report's ends read from the rollups (the decisions are ``energy.rollup_edges``'): who is
not known to have reported around the period, the whole hours near its ends read from rollups
for every luminaire but those, and those luminaires' raw readings there.

Clock: every time here is a reading's ``ts`` (Unix ms).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from energy.counters import MS_PER_H
from energy.queries import stream
from energy.report import ReportBuilder
from energy.rollup import BASELINE, COMPLETE_FIELD, MEASUREMENT, SUMMED, add_sums, merge
from energy.rollup_edges import (
    RAW_DEVICES_MAX,
    EdgeHours,
    Silent,
    around,
    group_clean,
    group_reported,
    group_usable,
    members,
    raw_runs,
    silent_devices,
)
from energy.rollup_groups import GROUP_HOURLY, Group, add_group_sums, expected_groups, groupable
from energy.rollup_rows import hour_stretches
from energy.rollup_statements import group_batches, sums_statement
from energy.rollup_store import RollupConfig, luminaire_rows, read_range
from influx.client import InfluxWriter
from influx.errors import InfluxRejectedError


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
    statement = sums_statement(
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
    for batch in group_batches(doubt, every):
        statement = sums_statement(
            config,
            lo,
            hi,
            zones,
            '"reported", "flagged"',
            '"device_id", "zone", "circuit"',
            MEASUREMENT,
            batch,
        )
        async for lum, row in luminaire_rows(writer, statement, inventory):
            t = int(row["time"])
            if t == outside and int(row.get("reported") or 0):
                heard.add(lum.device_id)
            if t == inside and row.get("flagged") is not None and int(row["flagged"]) == 0:
                heard.add(lum.device_id)
    return silent_devices(inventory, cleared, heard)


async def silent_around(
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


@dataclass(slots=True)
class EdgeRead:
    """How a report's edge hours were read (``read_edge_hours``)."""

    hours: set[int] = field(default_factory=set)
    """Edge hours read from rollups for every luminaire but ``raw``'s."""
    raw: dict[int, set[str]] = field(default_factory=dict)
    """Per edge hour, the luminaires to read raw there."""
    group_sums: int = 0
    device_sums: int = 0


async def read_edge_hours(
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
    stretches = hour_stretches(edges.hours)
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
        statement = sums_statement(
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
    for a, b in hour_stretches(need):
        for batch in group_batches(needed_groups, every):
            statement = sums_statement(
                config,
                a,
                b,
                zones,
                device_select,
                '"device_id", "zone", "circuit"',
                MEASUREMENT,
                batch,
            )
            async for lum, row in luminaire_rows(writer, statement, inventory):
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


async def read_raw_devices(
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
