"""Rollups per (zone, circuit): the level a city's reports and dashboard read.

A report by zone, circuit, day or month of 100,000 luminaires summing per-device rollups makes
InfluxDB 1.x touch 100,000 series × ten fields per query (``bench/README.md``: ~150 s a month).
The groups of such a report are unions of (zone, circuit) pairs, so luxtel also keeps

- ``energy_group_hourly``: per (zone, circuit) per hour, the sums of the luminaires' hourly points;
- ``energy_group_daily``: per (zone, circuit) per civil day (at local midnight), the sums of their
  daily points;
- ``energy_zone_daily``: per zone per civil day, the sums of its (zone, circuit) days (the energy
  dashboard's bars: one point per zone per day, no aggregation left to do).

Each is computed *inside* InfluxDB (``SELECT sum(…) INTO … GROUP BY "zone", "circuit"``, see
``into_statement``) over the hours or days just (re)built, so luxtel reads few rows and a late
reading that rebuilds a device's hour or day rebuilds its group's too (``energy.rollup_store``).
Tags: ``zone`` and ``circuit`` (bounded: from the inventory). Fields: the sums of ``SUMMED``,
``metered_mwh``, ``baseline_mwh`` and ``baseline_rest`` (each luminaire's own baseline over its
verified burning time, ``energy.rollup.BASELINE``), ``expected``, ``inventory_crc``; ``max`` of
``via_counter``/``via_power``; ``luminaires`` (points summed that hold ``COMPLETE_FIELD``: a
point of the older float schema is not counted, so its group never looks complete) and, daily,
``hours`` (Σ the luminaires' hours), hourly, ``reporting`` (luminaires with a reading in the
hour).

**The report's edges.** A raw report calls a stretch without readings at its start (end) an
``edge``, not ``missing``, only for a luminaire with no reading in the look-back before its start
(after its end). ``energy_hourly``'s ``reported`` and ``energy_group_hourly``'s ``reporting``
say who reported in the last whole hour ending by the report's start and the first beginning
from its end, and their ``flagged`` who reported on past the period's own first and last whole
hours (an unflagged hour); only the luminaires neither says so of (the *silent*) have their
hours within their gap of that end read raw, with queries naming them; their groups' other
members come from their own hourly points there, every other group from its group hours
(``energy.rollup_edges``). For a month of a city with a few silent luminaires that is a few
series read raw instead of 100,000 read three times at each end (~30 s of a 57 s report at
100,000 luminaires, ``bench/README.md``).

**When a group sum may stand for its luminaires** (``GroupCheck``): a report reads a span from a
group level only if, for every time in it, the groups hold as many luminaires as the inventory
(and, daily, all their hours), and every group's ``luminaires`` and ``inventory_crc`` (Σ CRC-32
of device, zone, circuit and baseline W, ``energy.rollup.inventory_crc``) are those of the
inventory the report reads. A moved luminaire, an edited baseline or a missing point therefore
sends the report back to the per-device rollups (which take the baseline from the inventory
read now), never to a wrong figure.

**Exactness.** Every level holds integer sums (InfluxDB integer fields: mWh, ms, %·ms, the
baseline as whole mWh plus a rest in mW·ms) of the same per-interval integer shares the raw report
adds (``energy.counters``); InfluxDB's ``sum()`` of integers is exact in any order, so a row from
any level is the raw report's row, digit for digit. The largest sums stay far inside int64: a
year of 100,000 luminaires is ~3·10^17 %·ms of dimming, ~2·10^14 mWh.

Clock: every time here is a reading's ``ts`` (Unix ms); nothing reads the wall clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from energy.inventory import Luminaire
from energy.queries import checked
from energy.report import ALL, ReportBuilder
from energy.rollup import (
    BASELINE,
    COMPLETE_FIELD,
    DAY_MEASUREMENT,
    MEASUREMENT,
    SUMMED,
    add_summed,
    baseline_of,
    inventory_crc,
    tally_of,
)

GROUP_HOURLY = "energy_group_hourly"
GROUP_DAILY = "energy_group_daily"
ZONE_DAILY = "energy_zone_daily"
GROUPABLE = frozenset(("zone", "circuit", ALL))
"""Axes a group level can feed (``Axis.by``)."""
GROUP_SUMMED = (*SUMMED, "metered_mwh", *BASELINE, "expected", "inventory_crc")

Group = tuple[str, str]
"""(zone, circuit)"""


def groupable(builder: ReportBuilder) -> bool:
    """Whether every axis of the report groups luminaires by zone, circuit or not at all."""
    return all(axis.by in GROUPABLE for axis in builder.axes.values())


def expected_groups(inventory: Mapping[str, Luminaire]) -> dict[Group, tuple[int, int]]:
    """Per (zone, circuit) of the inventory: its luminaires and Σ of their ``inventory_crc``."""
    out: dict[Group, tuple[int, int]] = {}
    for lum in inventory.values():
        n, crc = out.get((lum.zone, lum.circuit), (0, 0))
        out[(lum.zone, lum.circuit)] = (n + 1, crc + inventory_crc(lum))
    return out


def _select_list(daily_source: bool) -> str:
    """The sums of a group point, from per-device points (``luminaires`` counts them) or, with
    ``daily_source`` false and ``luminaires`` present, from group points."""
    parts = [f'sum("{name}") AS "{name}"' for name in GROUP_SUMMED]
    parts += ['max("via_counter") AS "via_counter"', 'max("via_power") AS "via_power"']
    if daily_source:
        parts.append('sum("hours") AS "hours"')
    else:
        parts.append('sum("reported") AS "reporting"')
    return ", ".join(parts)


def into_statement(
    retention_policy: str, level: str, start_ms: int, end_ms: int, *, hourly: bool = False
) -> str:
    """``SELECT sum(…) INTO`` ``level`` over ``[start_ms, end_ms)`` of its source level: hourly
    from ``energy_hourly`` (``GROUP BY time(1h)``; ``start_ms``, ``end_ms`` whole hours), daily
    from ``energy_daily`` and per zone from ``energy_group_daily`` (one civil day: InfluxDB
    stamps an aggregate without ``GROUP BY time`` with the range's start, local midnight)."""
    rp = f'"{checked("retention policy", retention_policy)}"'
    if level == GROUP_HOURLY:
        source, group = MEASUREMENT, 'time(1h), "zone", "circuit" fill(none)'
        select = _select_list(daily_source=False) + f', count("{COMPLETE_FIELD}") AS "luminaires"'
    elif level == GROUP_DAILY:
        source, group = DAY_MEASUREMENT, '"zone", "circuit"'
        select = _select_list(daily_source=True) + f', count("{COMPLETE_FIELD}") AS "luminaires"'
    elif level == ZONE_DAILY:
        source, group = GROUP_DAILY, '"zone"'
        select = _select_list(daily_source=True) + ', sum("luminaires") AS "luminaires"'
    else:
        raise ValueError(f"unknown rollup level {level!r}")
    where = f"time >= {start_ms * 1_000_000} AND time < {end_ms * 1_000_000}"
    # the names are constants or passed `checked`, the times integers: nothing is quoted through
    return (
        f'SELECT {select} INTO {rp}."{level}" FROM {rp}."{source}" '  # noqa: S608
        f"WHERE {where} GROUP BY {group}"
    )


@dataclass(frozen=True, slots=True)
class GroupCheck:
    """What InfluxDB said of a group level over a span: per group, the least and most
    ``luminaires`` and ``inventory_crc`` of its points."""

    groups: dict[Group, tuple[int, int, int, int]]

    def agrees(self, inventory: Mapping[str, Luminaire]) -> bool:
        """Every group found is one of the inventory with its luminaires and CRC at every
        point (a group missing at some time shows in the per-time counts instead)."""
        wanted = expected_groups(inventory)
        for group, (n_lo, n_hi, crc_lo, crc_hi) in self.groups.items():
            expect = wanted.get(group)
            if expect is None or not n_lo == n_hi == expect[0] or not crc_lo == crc_hi == expect[1]:
                return False
        return True


def add_group_sums(
    builder: ReportBuilder, axis: str, index: int, group: Group, sums: Mapping[str, object]
) -> None:
    """Add one (zone, circuit)'s sums over a run of bin ``index`` of ``axis`` to the builder;
    the baseline is the group's own sum (checked against the inventory by ``GroupCheck``)."""
    spec = builder.axes[axis]
    key = (group[0] if spec.by == "zone" else group[1] if spec.by == "circuit" else ALL, index)
    tally = tally_of(builder, axis, key)
    add_summed(tally, sums)
    tally.baseline_mw_ms += baseline_of(sums)
