"""Sums per (zone, circuit) against the raw report, over open-ended readings: hourly rollups made
over any split of the period from readings in any order, summed per device per civil day and per
group per hour and per day in any order (as InfluxDB's ``SELECT sum() INTO`` may), then read as
``energy.rollup_reader.feed_report`` reads them, give the raw report's rows whichever luminaires
were silent around the period (their own edge hours read raw, their groups' other members from
their hourly points, every other group from its group hours; a luminaire counts as silent at an
end unless the hour just outside says it reported or the period's own first / last whole hour
flags nothing for it): the same keys, counts and
flags, float sums within 1e-9, and printed figures within one unit of their last digit (sums in
another order can move a figure that lies on a rounding boundary, as hypothesis found with a
baseline of 0.0493885 kWh)."""

from __future__ import annotations

import bisect
import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from zoneinfo import ZoneInfo

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from energy.counters import MS_PER_H, Sample
from energy.periods import day_edges, whole
from energy.report import ALL, MW_MS_PER_MWH, Axis, ReportBuilder, Tally
from energy.rollup import Rollup, add_sums, candidate_days, ceil_hour, floor_hour, merge, plan
from energy.rollup_edges import Silent, around, edge_hours, edge_ms, raw_runs
from energy.rollup_groups import add_group_sums, expected_groups
from tests.test_energy_rollup import (
    GAP_FACTOR,
    INVENTORY,
    MAX_INTERVAL,
    START,
    M,
    Q,
    _case,
    _rollups,
    _window,
)


def _axes(start: int, end: int, tz: ZoneInfo) -> dict[str, Axis]:
    return {
        "zone": Axis(lambda lum: lum.zone, *whole(start, end), by="zone"),
        "circuit": Axis(lambda lum: lum.circuit, *whole(start, end), by="circuit"),
        "zone_day": Axis(lambda lum: lum.zone, *day_edges(start, end, tz), by="zone"),
        "day": Axis(lambda _l: ALL, *day_edges(start, end, tz), by=ALL),
    }


def _raw(
    readings: Mapping[str, Sequence[Sample]],
    start: int,
    end: int,
    tz: ZoneInfo,
    accept: tuple[int, int] | None = None,
    devices: Collection[str] | None = None,
) -> ReportBuilder:
    """The raw report (over ``accept`` only, of ``devices`` only, when given)."""
    inventory = {d: lum for d, lum in INVENTORY.items() if devices is None or d in devices}
    builder = ReportBuilder(
        start,
        end,
        inventory,
        _axes(start, end, tz),
        gap_factor=GAP_FACTOR,
        max_interval_ms=MAX_INTERVAL,
        accept=accept,
    )
    lo, hi = accept or (start, end)
    for device_id, samples in readings.items():
        if device_id not in inventory:
            continue
        for sample in sorted(_window(samples, lo, hi), key=lambda s: s.t_ms):
            builder.push(device_id, sample)
    builder.finish()
    return builder


def _sum(parts: Iterable[Mapping[str, int]], rng: random.Random) -> dict[str, int]:
    """Field by field, in a shuffled order; ``via_*`` by max, as the INTO statements do."""
    shuffled = list(parts)
    rng.shuffle(shuffled)
    out: dict[str, int] = {}
    for part in shuffled:
        for name, value in part.items():
            if name.startswith("via_"):
                out[name] = max(out.get(name, 0), value)
            else:
                out[name] = out.get(name, 0) + value
    return out


def _fields(row: Rollup) -> dict[str, int]:
    """The integer fields of the row's line, as InfluxDB holds them."""
    whole, rest = divmod(row.baseline_mw_ms, MW_MS_PER_MWH)
    return {
        "readings": row.readings,
        "counter_mwh": row.counter_mwh,
        "power_mwh": row.power_mwh,
        "verified_mwh": row.verified_mwh,
        "burning_ms": row.burning_ms,
        "dim_pct_ms": row.dim_pct_ms,
        "baseline_mwh": whole,
        "baseline_rest": rest,
        "flagged": row.flagged,
        "resets": row.resets,
        "via_counter": int("counter" in row.method),
        "via_power": int("power" in row.method),
    }


def _add(builder: ReportBuilder, a: int, group: tuple[str, str], sums: dict[str, int]) -> None:
    for name, axis in builder.axes.items():
        add_group_sums(builder, name, bisect.bisect_right(axis.edges, a) - 1, group, sums)


def _assert_same(via: ReportBuilder, raw: ReportBuilder, axis: str) -> None:
    """Every tally is the raw one, flags aside (``flagged`` counts intervals, which a split
    cuts in pieces; only whether it is 0 shows), and every printed row is the raw one."""
    keys = set(via.tallies[axis]) | set(raw.tallies[axis])
    for key in keys:
        x, y = via.tallies[axis].get(key) or Tally(), raw.tallies[axis].get(key) or Tally()
        assert (x.flagged > 0) == (y.flagged > 0), (axis, key)
        assert replace(x, flagged=0) == replace(y, flagged=0), (axis, key)
    assert via.rows(axis) == raw.rows(axis)


def _reported(readings: Mapping[str, Sequence[Sample]], hour: int) -> frozenset[str]:
    """What ``energy_hourly``'s ``reported`` says of ``hour``: the luminaires with a reading."""
    return frozenset(
        d
        for d, samples in readings.items()
        if any(hour <= r.t_ms < hour + MS_PER_H for r in samples)
    )


def _clean(hours: Mapping[int, Sequence[Rollup]], hour: int | None) -> frozenset[str]:
    """What ``energy_hourly``'s ``flagged`` says of ``hour``: the luminaires it flags nothing
    for (none when there is no such hour inside the period)."""
    if hour is None:
        return frozenset()
    return frozenset(r.device_id for r in hours.get(hour, ()) if r.flagged == 0)


LUMINAIRES = st.frozensets(st.sampled_from(sorted(INVENTORY)))


def _steady(first: int, last: int, step: int) -> list[Sample]:
    """A lit luminaire reading every ``step`` from ``first`` to ``last``, no gap."""
    return [
        Sample(t, 1000.0 + 40.0 * (t - first) / MS_PER_H, 40.0, True)
        for t in range(first, last + 1, step)
    ]


SILENT_B = (  # b silent until 10 min into the period (an edge, not a gap); a and c all along
    {
        "a": _steady(START - 3 * MS_PER_H, START + 9 * MS_PER_H, Q),
        "b": _steady(START + 10 * M, START + 9 * MS_PER_H, Q),
        "c": _steady(START - 3 * MS_PER_H, START + 9 * MS_PER_H, MS_PER_H),
    },
    START,
    START + 6 * MS_PER_H,
    [START, START + 7 * MS_PER_H],
    "Europe/London",
    0,
)


UP_TO_NOW = (  # every luminaire reports past the end, but nothing says so outside the period
    {
        "a": _steady(START - 3 * MS_PER_H, START + 9 * MS_PER_H, Q),
        "b": _steady(START - 3 * MS_PER_H + 7 * M, START + 9 * MS_PER_H, Q),
        "c": _steady(START - 3 * MS_PER_H, START + 9 * MS_PER_H, MS_PER_H),
    },
    START,
    START + 6 * MS_PER_H,
    [START, START + 7 * MS_PER_H],
    "Europe/London",
    0,
)
STOPPED_B = (  # b's last reading 15 min before the end (an edge for the raw report): in doubt
    {**UP_TO_NOW[0], "b": _steady(START - 3 * MS_PER_H, START + 6 * MS_PER_H - 10 * M, Q)},
    *UP_TO_NOW[1:],
)
EVERY = frozenset(INVENTORY)


@settings(max_examples=150, deadline=None)
@given(_case(), st.randoms(use_true_random=False), LUMINAIRES, LUMINAIRES)
@example(SILENT_B, random.Random(0), frozenset(), frozenset()).via("b's raw rows carry no gap")
@example(UP_TO_NOW, random.Random(0), EVERY, frozenset()).via("up to now, none in doubt")
@example(STOPPED_B, random.Random(0), EVERY, frozenset()).via("b's last hour is flagged")
def test_reports_from_group_sums_print_the_raw_rows(
    case: tuple[dict[str, list[Sample]], int, int, list[int], str, int],
    rng: random.Random,
    heard_before: frozenset[str],
    heard_after: frozenset[str],
) -> None:
    readings, start, end, cuts, tz_name, seed = case
    tz = ZoneInfo(tz_name)
    before, after = floor_hour(start) - MS_PER_H, ceil_hour(end)
    readings = {  # a reading of some luminaires in the hours just outside the period
        d: [
            *s,
            *([Sample(before + 1_800_000, None, 0.0, False)] if d in heard_before else []),
            *([Sample(after + 60_000, None)] if d in heard_after else []),
        ]
        for d, s in readings.items()
    }
    shuffled = {d: random.Random(seed).sample(s, len(s)) for d, s in readings.items()}
    rollups = list(_rollups(shuffled, cuts).values())  # any arrival order, any split
    hours: dict[int, list[Rollup]] = {}
    for row in rollups:
        hours.setdefault(row.hour_ms, []).append(row)
    axes = _axes(start, end, tz)
    edges = [axis.edges for axis in axes.values()]
    inside = around(start, end, MAX_INTERVAL)  # the period's own first and last whole hours
    silent = Silent(
        frozenset(INVENTORY) - _reported(readings, before) - _clean(hours, inside.first),
        frozenset(INVENTORY) - _reported(readings, after) - _clean(hours, inside.last),
    )
    edge = edge_ms(INVENTORY, silent.any, GAP_FACTOR)
    event(f"{len(silent.any)} luminaire(s) silent around the period")
    days = [
        (a, b)
        for a, b in candidate_days(start, end, edges, edge, tz)
        if all(h in hours for h in range(a, b, MS_PER_H))
    ]
    chosen = plan(start, end, edges, edge, set(hours), days)
    at_edges = edge_hours(start, end, edges, edge, silent)
    via = ReportBuilder(
        start, end, INVENTORY, axes, gap_factor=GAP_FACTOR, max_interval_ms=MAX_INTERVAL
    )
    groups = expected_groups(INVENTORY)
    for a, b in days:  # per device per day, then per group: energy_daily, energy_group_daily
        per_device = {
            d: _sum(
                (_fields(r) for h in range(a, b, MS_PER_H) for r in hours[h] if r.device_id == d),
                rng,
            )
            for d in INVENTORY
        }
        for zone, circuit in groups:
            members = [
                s
                for d, s in per_device.items()
                if (INVENTORY[d].zone, INVENTORY[d].circuit) == (zone, circuit)
            ]
            _add(via, a, (zone, circuit), _sum(members, rng))
    for h in chosen.hours:  # energy_group_hourly
        for zone, circuit in groups:
            members = [_fields(r) for r in hours[h] if (r.zone, r.circuit) == (zone, circuit)]
            _add(via, h, (zone, circuit), _sum(members, rng))
    for h in at_edges.hours:  # a group without a silent member whole, else its other members
        quiet = at_edges.silent[h]
        for zone, circuit in groups:
            rows = [r for r in hours[h] if (r.zone, r.circuit) == (zone, circuit)]
            if not any(r.device_id in quiet for r in rows):
                _add(via, h, (zone, circuit), _sum((_fields(r) for r in rows), rng))
                continue
            for r in rows:
                if r.device_id not in quiet:
                    for name, spec in via.axes.items():
                        index = bisect.bisect_right(spec.edges, h) - 1
                        add_sums(via, name, index, r.device_id, _fields(r))
    for a, b, devices in raw_runs(at_edges.hours, at_edges.silent):  # the silent ones, raw
        merge(via, _raw(readings, start, end, tz, accept=(a, b), devices=devices))
    for a, b in plan(start, end, edges, 0.0, {*chosen.hours, *at_edges.hours}, days).raw:
        merge(via, _raw(readings, start, end, tz, accept=(a, b)))
    raw = _raw(readings, start, end, tz)
    for axis in axes:
        _assert_same(via, raw, axis)
