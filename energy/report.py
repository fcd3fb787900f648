"""The energy auditor's report: readings in, one row per device, circuit, zone, day or month out.

Readings are pushed device by device in time order (``ReportBuilder.push``); each pair of
consecutive readings becomes an interval (``energy.counters``), shared over the bins of every
*axis* the builder keeps — the rows the auditor asked for, and beside them the zone × day table
for the plot and the circuit × half-hour table for settlement. Memory holds one reading per
device and one tally per (group, bin), never the series.

Per row: metered kWh (all the energy the counters show, or the power integral where a device has
no counter — ``method`` says which), burning hours, mean dim level, baseline kWh (the inventory's
``baseline_power_w`` over the same burning hours), savings, CO₂ avoided, completeness and a flag.
Burning hours, baseline and savings are over the *verified* intervals only (see
``energy.completeness``): ``savings_kwh = baseline_kwh − verified_kwh``, so a gap can hide
consumption from neither side of the subtraction and is never reported as a saving.

Every tally is integers (``energy.counters``: mWh, ms, %·ms; the baseline in mW·ms), so tallies
summed in any order — per hour, per group, per day, by InfluxDB — are the same integers, and a
row prints the same digits whichever way its tally was made. Rounding happens once, in ``_row``:
kWh = mWh / 10^6 (6 decimals, a mWh); the baseline to the nearest mWh, halves up (``div_round``),
and the savings from that rounded baseline, so ``savings_kwh = baseline_kwh − verified_kwh``
holds exactly in the printed figures.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from energy.completeness import completeness_pct, expected_readings, gap_ms
from energy.counters import (
    FLAGGED,
    MS_PER_H,
    CounterStream,
    Interval,
    Sample,
    milli,
    part,
    shares,
    uncovered,
)
from energy.inventory import Luminaire

GRID_FACTOR_KG_PER_KWH = 0.5703
"""China's 2022 national average grid emission factor (Ministry of Ecology and Environment,
published 2024), kg CO₂ per kWh; set the city's own with ``--grid-factor``."""

By = Literal["device", "circuit", "zone", "day", "month"]
ALL = "*"


MW_MS_PER_MWH = MS_PER_H
"""1 mWh = 1 mW for an hour = 3,600,000 mW·ms: the unit of a baseline before it is rounded."""


def baseline_mw(lum: Luminaire) -> int:
    """The luminaire's baseline power in whole mW (``energy.counters.milli``)."""
    return milli(lum.baseline_power_w)


@dataclass(slots=True)
class Tally:
    """What is known of one (group, bin); filled by ``add``. Every figure an integer
    (``energy.counters``): mWh, ms, %·ms, and the baseline in mW·ms (each luminaire's baseline
    mW × its verified burning ms, exact; rounded to the mWh only when printed, ``_row``)."""

    readings: int = 0
    counter_mwh: int = 0
    power_mwh: int = 0
    methods: set[str] = field(default_factory=set)
    verified_mwh: int = 0
    burn_ms: int = 0
    dim_ms: int = 0
    baseline_mw_ms: int = 0
    flagged: int = 0
    resets: int = 0

    def add(self, iv: Interval, x: int, y: int, baseline_mw: int) -> None:
        """Add the share of ``[x, y)`` of ``iv`` (``energy.counters.part``)."""
        whole = x <= iv.start_ms and iv.end_ms <= y
        t0, t1 = iv.start_ms, iv.end_ms
        energy = iv.energy_mwh if whole else part(iv.energy_mwh, t0, t1, x, y)
        if iv.method == "counter":
            self.counter_mwh += energy
        elif iv.method == "power":
            self.power_mwh += energy
        if iv.method != "none":
            self.methods.add(iv.method)
        if iv.kind == "ok":
            on_ms = iv.on_ms if whole else part(iv.on_ms, t0, t1, x, y)
            self.verified_mwh += energy
            self.burn_ms += on_ms
            self.dim_ms += iv.dim_on_ms if whole else part(iv.dim_on_ms, t0, t1, x, y)
            self.baseline_mw_ms += baseline_mw * on_ms
        elif iv.kind in FLAGGED:
            self.flagged += 1

    def merge(self, t: Tally) -> None:
        """Add another tally (of the same group and bin, another part of it)."""
        self.readings += t.readings
        self.counter_mwh += t.counter_mwh
        self.power_mwh += t.power_mwh
        self.methods |= t.methods
        self.verified_mwh += t.verified_mwh
        self.burn_ms += t.burn_ms
        self.dim_ms += t.dim_ms
        self.baseline_mw_ms += t.baseline_mw_ms
        self.flagged += t.flagged
        self.resets += t.resets


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the report; kWh, hours and kg rounded for people, not for sums."""

    key: str
    period: str
    devices: int
    method: str
    readings: int
    expected: float
    completeness_pct: float | None
    metered_kwh: float
    verified_kwh: float
    unverified_kwh: float
    burning_h: float
    mean_dim_pct: float | None
    baseline_kwh: float
    savings_kwh: float
    savings_pct: float | None
    co2_avoided_kg: float
    resets: int
    gap: bool


@dataclass(frozen=True, slots=True)
class Axis:
    """Rows by ``group_of(luminaire)`` (``ALL`` for one group) and by the bins of ``edges``."""

    group_of: Callable[[Luminaire], str]
    edges: list[int]
    labels: list[str]
    by: str = ""
    """Which inventory column ``group_of`` reads: ``zone``, ``circuit``, ``device_id``, or
    ``ALL`` for one group; empty when it is something else. Rollups per (zone, circuit) can
    stand for per-device ones only on axes by zone, circuit or ``ALL``."""


def _group(by: By) -> Callable[[Luminaire], str]:
    if by == "device":
        return lambda lum: lum.device_id
    if by == "circuit":
        return lambda lum: lum.circuit
    if by == "zone":
        return lambda lum: lum.zone
    return lambda _lum: ALL


_Bin = tuple[int, int, Tally]
"""A bin's ``[start, end)`` and its tally."""


@dataclass(slots=True)
class _Device:
    lum: Luminaire
    stream: CounterStream
    groups: list[tuple[str, Axis, str]]
    """(axis name, axis, this device's group on it), one per axis."""
    bins: list[_Bin | None]
    """The bin each axis last used, per axis."""


class ReportBuilder:
    """Accumulates the tallies of several axes over ``[start_ms, end_ms)``."""

    def __init__(
        self,
        start_ms: int,
        end_ms: int,
        inventory: Mapping[str, Luminaire],
        axes: Mapping[str, Axis],
        *,
        gap_factor: float = 1.5,
        max_interval_ms: float = math.inf,
        accept: tuple[int, int] | None = None,
    ) -> None:
        if end_ms <= start_ms:
            raise ValueError("the report period must end after it starts")
        self.start_ms, self.end_ms = start_ms, end_ms
        self.inventory = inventory
        self.axes = dict(axes)
        self.gap_factor = gap_factor
        self.max_interval_ms = max_interval_ms
        self.accept = accept
        """Only ``[accept[0], accept[1])`` of the period is tallied here (readings, shares of
        intervals, resets): the part a report reads raw when the rest comes from rollups."""
        self.tallies: dict[str, dict[tuple[str, int], Tally]] = {name: {} for name in axes}
        self.streams: dict[str, CounterStream] = {}
        self.unknown: set[str] = set()
        self.duplicates = 0
        self._devices: dict[str, _Device] = {}

    def part(
        self, inventory: Mapping[str, Luminaire], accept: tuple[int, int] | None = None
    ) -> ReportBuilder:
        """A builder of the same period, axes and counter settings over ``inventory`` (some of
        this one's luminaires), tallying ``accept`` only: a part read on its own, then merged
        (``energy.rollup.merge``)."""
        return ReportBuilder(
            self.start_ms,
            self.end_ms,
            inventory,
            self.axes,
            gap_factor=self.gap_factor,
            max_interval_ms=self.max_interval_ms,
            accept=accept,
        )

    def _tally(self, axis: str, group: str, index: int) -> Tally:
        table = self.tallies[axis]
        tally = table.get((group, index))
        if tally is None:
            tally = table[(group, index)] = Tally()
        return tally

    def _device(self, device_id: str) -> _Device | None:
        device = self._devices.get(device_id)
        if device is None:
            lum = self.inventory.get(device_id)
            if lum is None:
                self.unknown.add(device_id)
                return None
            gap = gap_ms(lum.report_interval_s, self.gap_factor)
            stream = CounterStream(gap, self.max_interval_ms)
            self.streams[device_id] = stream
            groups = [(name, axis, axis.group_of(lum)) for name, axis in self.axes.items()]
            device = self._devices[device_id] = _Device(lum, stream, groups, [None] * len(groups))
        return device

    def _bin(self, device: _Device, k: int, t_ms: int) -> _Bin | None:
        """The bin of axis ``k`` holding ``t_ms`` for this device, remembered: a device's
        readings and intervals mostly fall in the bin of the one before."""
        cached = device.bins[k]
        if cached is not None and cached[0] <= t_ms < cached[1]:
            return cached
        name, axis, group = device.groups[k]
        index = bisect.bisect_right(axis.edges, t_ms) - 1
        if not 0 <= index < len(axis.edges) - 1:
            return None
        found = (axis.edges[index], axis.edges[index + 1], self._tally(name, group, index))
        device.bins[k] = found
        return found

    def push(self, device_id: str, sample: Sample) -> None:
        """One reading of one device; a device's readings must come in time order."""
        device = self._device(device_id)
        if device is None:
            return
        stream = device.stream
        before = stream.duplicates
        interval = stream.push(sample)
        if stream.duplicates != before:
            return
        lo, hi = self.accept or (self.start_ms, self.end_ms)
        if self.start_ms <= sample.t_ms < self.end_ms and lo <= sample.t_ms < hi:
            for k in range(len(device.groups)):
                found = self._bin(device, k, sample.t_ms)
                if found is not None:
                    found[2].readings += 1
        if interval is not None:
            self._account(device, interval)

    def account(self, lum: Luminaire, iv: Interval) -> None:
        """Share one interval of ``lum`` over the bins of every axis."""
        device = self._device(lum.device_id)
        if device is not None:
            self._account(device, iv)

    def _account(self, device: _Device, iv: Interval) -> None:
        baseline = baseline_mw(device.lum)
        accept = self.accept
        lo, hi = accept or (self.start_ms, self.end_ms)
        for k, (name, axis, group) in enumerate(device.groups):
            cached = device.bins[k]
            if (
                accept is None
                and cached is not None
                and cached[0] <= iv.start_ms
                and iv.end_ms <= cached[1]
            ):
                # the common case: inside one bin
                cached[2].add(iv, iv.start_ms, iv.end_ms, baseline)
            else:
                for index, x, y in shares(iv.start_ms, iv.end_ms, axis.edges, accept):
                    self._tally(name, group, index).add(iv, x, y, baseline)
            if iv.kind == "reset" and max(self.start_ms, lo) < iv.end_ms <= min(self.end_ms, hi):
                index = bisect.bisect_left(axis.edges, iv.end_ms) - 1
                self._tally(name, group, index).resets += 1

    def finish(self, *, closed: bool = False) -> None:
        """Account the stretches without readings: whole devices, and the period's edges.

        ``closed``: the reader looked ``max_interval_ms`` around the period and found nothing
        there, so a stretch without readings at an edge is ``missing`` however short its part
        inside the period (the hourly rollups); otherwise one shorter than a gap is an ``edge``
        (a report up to now, whose next readings have not come yet)."""
        for device_id, lum in self.inventory.items():
            gap = -1.0 if closed else gap_ms(lum.report_interval_s, self.gap_factor)
            stream = self.streams.get(device_id)
            if stream is None or stream.last is None or stream.first_ms is None:
                self.account(lum, uncovered(self.start_ms, self.end_ms, gap))
                continue
            self.duplicates += stream.duplicates
            if stream.first_ms > self.start_ms:
                self.account(lum, uncovered(self.start_ms, min(stream.first_ms, self.end_ms), gap))
            if stream.last.t_ms < self.end_ms:
                self.account(lum, uncovered(max(stream.last.t_ms, self.start_ms), self.end_ms, gap))

    def rows(self, axis: str, grid_factor: float = GRID_FACTOR_KG_PER_KWH) -> list[Row]:
        """The rows of one axis, by group then bin; every (group, bin) of the inventory."""
        return list(self.iter_rows(axis, grid_factor))

    def iter_rows(self, axis: str, grid_factor: float = GRID_FACTOR_KG_PER_KWH) -> Iterator[Row]:
        """``rows`` one at a time (a report by device of a city is 100,000 of them: written out
        as they come, never all held)."""
        spec = self.axes[axis]
        rate: dict[str, float] = {}
        count: dict[str, int] = {}
        for lum in self.inventory.values():
            group = spec.group_of(lum)
            rate[group] = rate.get(group, 0.0) + expected_readings(1.0, lum.report_interval_s)
            count[group] = count.get(group, 0) + 1
        for group in sorted(rate):
            for index, label in enumerate(spec.labels):
                span = spec.edges[index + 1] - spec.edges[index]
                tally = self.tallies[axis].get((group, index)) or Tally()
                expected = span * rate[group]
                key = label if group == ALL else group
                period = label if group != ALL or len(spec.labels) > 1 else key
                yield _row(key, period, count[group], tally, expected, grid_factor)


def div_round(n: int, d: int) -> int:
    """``n / d`` to the nearest integer, halves up (``d`` > 0), in integers."""
    return (2 * n + d) // (2 * d)


def kwh(mwh: int) -> float:
    """Integer mWh as kWh: the float nearest the 6-decimal figure (``round`` to 6 places of a
    correctly rounded quotient; the same integer always prints the same digits)."""
    return round(mwh / 1_000_000, 6)


def _row(key: str, period: str, devices: int, t: Tally, expected: float, grid_factor: float) -> Row:
    metered = t.counter_mwh + t.power_mwh
    baseline = div_round(t.baseline_mw_ms, MW_MS_PER_MWH)
    savings = baseline - t.verified_mwh
    method = "+".join(sorted(t.methods)) or "none"
    return Row(
        key=key,
        period=period,
        devices=devices,
        method=method,
        readings=t.readings,
        expected=round(expected, 1),
        completeness_pct=_round(completeness_pct(t.readings, expected), 2),
        metered_kwh=kwh(metered),
        verified_kwh=kwh(t.verified_mwh),
        unverified_kwh=kwh(metered - t.verified_mwh),
        burning_h=round(t.burn_ms / MS_PER_H, 6),
        mean_dim_pct=_round(t.dim_ms / t.burn_ms if t.burn_ms > 0 else None, 2),
        baseline_kwh=kwh(baseline),
        savings_kwh=kwh(savings),
        savings_pct=_round(100 * savings / baseline if baseline > 0 else None, 2),
        co2_avoided_kg=round(savings * grid_factor / 1_000_000, 6),
        resets=t.resets,
        gap=t.flagged > 0,
    )


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
