"""Sums per (zone, circuit) against the raw report, over open-ended readings: hourly rollups made
over any split of the period from readings in any order, summed per device per civil day and per
group per hour and per day in any order (as InfluxDB's ``SELECT sum() INTO`` may), then read as
``energy.rollup_store.feed_report`` reads them (every whole hour, when every luminaire reported
just outside the period), give the raw report's rows: the same keys, counts and flags, and
figures equal to float rounding (`tests.energy_rows`: sums in another order can move a figure
that lies within ~1e-12 of a rounding boundary by one unit of its 6th decimal, as hypothesis
found with a baseline of 0.0493885 kWh)."""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from hypothesis import event, given, settings
from hypothesis import strategies as st

from energy.counters import MS_PER_H, Sample
from energy.periods import day_edges, whole
from energy.report import ALL, Axis, ReportBuilder
from energy.rollup import Rollup, candidate_days, ceil_hour, floor_hour, merge, plan
from energy.rollup_groups import add_group_sums, expected_groups
from tests.energy_rows import same_rows
from tests.test_energy_rollup import GAP_FACTOR, INVENTORY, MAX_INTERVAL, _case, _rollups, _window


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
) -> ReportBuilder:
    builder = ReportBuilder(
        start,
        end,
        INVENTORY,
        _axes(start, end, tz),
        gap_factor=GAP_FACTOR,
        max_interval_ms=MAX_INTERVAL,
        accept=accept,
    )
    lo, hi = accept or (start, end)
    for device_id, samples in readings.items():
        for sample in sorted(_window(samples, lo, hi), key=lambda s: s.t_ms):
            builder.push(device_id, sample)
    builder.finish()
    return builder


def _sum(parts: Iterable[Mapping[str, float]], rng: random.Random) -> dict[str, float]:
    """Field by field, in a shuffled order; ``via_*`` by max, as the INTO statements do."""
    shuffled = list(parts)
    rng.shuffle(shuffled)
    out: dict[str, float] = {}
    for part in shuffled:
        for name, value in part.items():
            if name.startswith("via_"):
                out[name] = max(out.get(name, 0), value)
            else:
                out[name] = out.get(name, 0) + value
    return out


def _fields(row: Rollup) -> dict[str, float]:
    return {
        "readings": row.readings,
        "counter_wh": row.counter_wh,
        "power_wh": row.power_wh,
        "verified_wh": row.verified_wh,
        "burning_h": row.burning_h,
        "dim_pct_h": row.dim_pct_h,
        "baseline_wh": row.baseline_wh,
        "flagged": row.flagged,
        "resets": row.resets,
        "via_counter": int("counter" in row.method),
        "via_power": int("power" in row.method),
    }


def _add(builder: ReportBuilder, a: int, group: tuple[str, str], sums: dict[str, float]) -> None:
    for name, axis in builder.axes.items():
        add_group_sums(builder, name, bisect.bisect_right(axis.edges, a) - 1, group, sums)


@settings(max_examples=100, deadline=None)
@given(_case(), st.randoms(use_true_random=False), st.booleans())
def test_reports_from_group_sums_print_the_raw_rows(
    case: tuple[dict[str, list[Sample]], int, int, list[int], str, int],
    rng: random.Random,
    pad: bool,
) -> None:
    readings, start, end, cuts, tz_name, seed = case
    tz = ZoneInfo(tz_name)
    before, after = floor_hour(start) - MS_PER_H, ceil_hour(end)
    if pad:  # a reading of each luminaire in the hours just outside the period
        readings = {
            d: [*s, Sample(before + 1_800_000, None, 0.0, False), Sample(after + 60_000, None)]
            for d, s in readings.items()
        }
    shuffled = {d: random.Random(seed).sample(s, len(s)) for d, s in readings.items()}
    rollups = list(_rollups(shuffled, cuts).values())  # any arrival order, any split
    hours: dict[int, list[Rollup]] = {}
    for row in rollups:
        hours.setdefault(row.hour_ms, []).append(row)
    axes = _axes(start, end, tz)
    edges = [axis.edges for axis in axes.values()]
    edge = max(lum.report_interval_s for lum in INVENTORY.values()) * 1000 * GAP_FACTOR
    if all(
        any(before <= r.t_ms < before + MS_PER_H for r in readings[d])
        and any(after <= r.t_ms < after + MS_PER_H for r in readings[d])
        for d in INVENTORY
    ):  # what energy_group_hourly's "reporting" says: the report's edges need no raw hours
        edge = 0.0
        event("every luminaire reported around the period")
    days = [
        (a, b)
        for a, b in candidate_days(start, end, edges, edge, tz)
        if all(h in hours for h in range(a, b, MS_PER_H))
    ]
    chosen = plan(start, end, edges, edge, set(hours), days)
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
    for a, b in chosen.raw:
        merge(via, _raw(readings, start, end, tz, accept=(a, b)))
    raw = _raw(readings, start, end, tz)
    for axis in axes:
        same_rows(via.rows(axis), raw.rows(axis))
