"""The hours at a report's ends, decided per luminaire: which are read from the group hours,
which from a luminaire's own hourly points, and which luminaires' readings are read raw there.

Pure functions; no I/O, no clock. Every time is a reading's ``ts`` (Unix ms).

**Why per luminaire.** A raw report calls a stretch without readings at its start (end) an
``edge`` (not flagged) when shorter than the luminaire's gap, where a rollup hour, made with
readings on both sides in view, calls it ``missing`` (``energy.rollup``). That can only happen to
a luminaire with no reading in the look-back before the start (after the end): a *silent* one.
Its stretch then lies within its own gap of the end, so only the whole hours within ``edge_ms``
(the longest gap of the silent luminaires) of that end need its raw readings. Every other
luminaire's hourly points there equal the raw report's figures (the intervals straddling the
boundary are shared in proportion in both, from the same two readings), and so does any sum of
them: a (zone, circuit) with no silent member may be read from ``energy_group_hourly``, a group
with one from its other members' ``energy_hourly`` points, the silent members raw, with a query
restricted to them.

**Who is not silent** (``Around``; either says so):

- *outside*: its hourly point of the last whole hour ending by the start says ``reported`` (a
  reading there is within 2 h of the start, inside the look-back when ``max_interval_ms`` ≥ 2 h),
  at the end likewise with the first whole hour from the end;
- *inside*: its hourly point of the period's first whole hour flags nothing (``flagged`` 0), at
  the end likewise with the last whole hour. A luminaire without a reading in the look-back
  before the start has a stretch without readings at the start of its rollups (``missing``,
  flagged in every hour it touches), or a break interval there (flagged too); an unflagged
  first whole hour therefore means a reading before it, in the look-back, joined to it, and the
  raw report's stretch at the start, if any, lies in the partial hour before it, which is read
  raw anyway. At the end likewise: an unflagged last whole hour means a reading after it, at or
  after the end's hour. This is what clears a report *up to now*: nothing has been rolled up
  after its end, but the last closed hour was closed (or rebuilt, ``energy.upkeep``) with the
  readings that came after it, so it flags nothing for a luminaire that went on reporting.

Any doubt (no point, an old point without ``reported``, a flag for any reason) makes it silent.
Both are per group first (``energy_group_hourly``'s ``reporting`` and ``flagged`` sums, when the
group point holds exactly the inventory's members), then per luminaire in the other groups.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from energy.counters import MS_PER_H
from energy.inventory import Luminaire
from energy.rollup import ceil_hour, floor_hour, within_one_bin
from energy.rollup_groups import Group, expected_groups

RAW_DEVICES_MAX = 2_000
"""Silent luminaires beyond which a report reads its edge hours raw for everyone (one query
over every series costs less than this many filtered ones)."""
DEVICE_BATCH = 200
"""Luminaires named in one filtered raw query (``device_id = … OR …``)."""


@dataclass(frozen=True, slots=True)
class Around:
    """The hours whose rollups say who is not silent at a report's ends: ``before`` (the last
    whole hour ending by the start) and ``after`` (the first beginning from the end), outside;
    ``first`` and ``last``, the period's first and last whole hours, inside. None: no such hour
    (outside: the look-back is under 2 h, so a reading there may lie beyond it; inside: the
    period holds no whole hour)."""

    before: int | None
    first: int | None
    last: int | None
    after: int | None


def around(start_ms: int, end_ms: int, max_interval_ms: float) -> Around:
    first, last = ceil_hour(start_ms), floor_hour(end_ms) - MS_PER_H
    whole = first + MS_PER_H <= end_ms
    outside = max_interval_ms >= 2 * MS_PER_H
    return Around(
        floor_hour(start_ms) - MS_PER_H if outside else None,
        first if whole else None,
        last if whole else None,
        ceil_hour(end_ms) if outside else None,
    )


@dataclass(frozen=True, slots=True)
class Silent:
    """The luminaires not known to have reported just before the start and just after the
    end of a report."""

    at_start: frozenset[str]
    at_end: frozenset[str]

    @property
    def any(self) -> frozenset[str]:
        return self.at_start | self.at_end


def edge_ms(inventory: Mapping[str, Luminaire], silent: Iterable[str], gap_factor: float) -> float:
    """The longest gap of the ``silent`` luminaires (0 with none): how far from a report's
    ends their raw readings may differ from their rollups."""
    return max(
        (inventory[d].report_interval_s * 1000 * gap_factor for d in silent if d in inventory),
        default=0.0,
    )


@dataclass(frozen=True, slots=True)
class EdgeHours:
    """The whole hours within ``edge_ms`` of a report's ends, each inside one bin of every
    axis, and the luminaires silent at each (at the start's side, the end's, or both)."""

    hours: list[int]
    silent: dict[int, frozenset[str]]


def edge_hours(
    start_ms: int, end_ms: int, axes: Iterable[Sequence[int]], edge: float, silent: Silent
) -> EdgeHours:
    """The hours ``energy.rollup.plan`` leaves out for being within ``edge`` of an end (it
    reads from rollups only hours in ``[ceil_hour(start + edge), floor_hour(end - edge))``)."""
    first, last = ceil_hour(int(start_ms + edge)), floor_hour(int(end_ms - edge))
    edge_lists = [list(edges) for edges in axes]
    hours: list[int] = []
    quiet: dict[int, frozenset[str]] = {}
    for hour in range(ceil_hour(start_ms), floor_hour(end_ms), MS_PER_H):
        if first <= hour < last:
            continue
        if not all(within_one_bin(edges, hour, hour + MS_PER_H) for edges in edge_lists):
            continue
        hours.append(hour)
        who: frozenset[str] = frozenset()
        if hour < first:
            who |= silent.at_start
        if hour >= last:
            who |= silent.at_end
        quiet[hour] = who
    return EdgeHours(hours, quiet)


def members(inventory: Mapping[str, Luminaire]) -> dict[Group, set[str]]:
    out: dict[Group, set[str]] = {}
    for lum in inventory.values():
        out.setdefault((lum.zone, lum.circuit), set()).add(lum.device_id)
    return out


def silent_devices(
    inventory: Mapping[str, Luminaire],
    groups_reported: Collection[Group],
    devices_reported: Collection[str],
) -> frozenset[str]:
    """The luminaires of the inventory neither in a group whose every member reported (by its
    group hour, ``groups_reported``) nor themselves known to have reported."""
    return frozenset(
        d
        for d, lum in inventory.items()
        if (lum.zone, lum.circuit) not in groups_reported and d not in devices_reported
    )


def group_reported(
    inventory: Mapping[str, Luminaire], rows: Mapping[Group, tuple[int, int, int]]
) -> set[Group]:
    """The groups whose hour (``reporting``, ``luminaires``, ``inventory_crc``) says that every
    luminaire the inventory puts there reported, and holds exactly those luminaires."""
    wanted = expected_groups(inventory)
    return {
        g
        for g, (reporting, n, crc) in rows.items()
        if g in wanted and reporting == n == wanted[g][0] and crc == wanted[g][1]
    }


def group_clean(
    inventory: Mapping[str, Luminaire], rows: Mapping[Group, tuple[int, int, int]]
) -> set[Group]:
    """The groups whose hour (``flagged``, ``luminaires``, ``inventory_crc``) flags nothing
    and holds exactly the luminaires the inventory puts there."""
    wanted = expected_groups(inventory)
    return {
        g
        for g, (flagged, n, crc) in rows.items()
        if g in wanted and flagged == 0 and (n, crc) == wanted[g]
    }


def group_usable(
    wanted: Mapping[Group, tuple[int, int]], group: Group, luminaires: int, crc: int
) -> bool:
    """Whether a group hour holds exactly the luminaires the inventory puts in ``group``
    (``wanted``: ``expected_groups`` of the inventory)."""
    return wanted.get(group) == (luminaires, crc)


def raw_runs(
    hours: Sequence[int], raw: Mapping[int, Collection[str]]
) -> list[tuple[int, int, list[str]]]:
    """Consecutive hours with the same luminaires to read raw, merged: (start, end, devices
    sorted), in batches of at most ``DEVICE_BATCH``; hours with none are left out."""
    merged: list[tuple[int, int, frozenset[str]]] = []
    for hour in sorted(hours):
        who = frozenset(raw.get(hour, ()))
        if not who:
            continue
        if merged and merged[-1][1] == hour and merged[-1][2] == who:
            merged[-1] = (merged[-1][0], hour + MS_PER_H, who)
        else:
            merged.append((hour, hour + MS_PER_H, who))
    out = []
    for a, b, who in merged:
        ordered = sorted(who)
        for i in range(0, len(ordered), DEVICE_BATCH):
            out.append((a, b, ordered[i : i + DEVICE_BATCH]))
    return out
