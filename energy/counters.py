"""The arithmetic of cumulative energy counters: readings in, intervals of known energy out.

Pure functions of the readings; no I/O, no clock.

- **Intervals**: consecutive readings of one device bound an interval; its energy is the
  non-negative difference of their counters.
- **A fall is a reset** (controller replaced or reset, or a register that wrapped): the counter
  restarted at 0, so the later reading's value is the energy since the restart, and the energy
  between the earlier reading and the restart is unknown. The interval keeps the visible part and
  is marked ``reset`` — never negative energy, never a saving.
- **Wrap**: the contract says a fall is a reset, and we follow it. A register that wraps at
  2^32 Wh (4.3 GWh) would take a 250 W lamp millennia to get there, so a wrap is read as a reset
  too: the energy up to the wrap is the unknown part, the interval is marked ``reset`` and the row
  flagged, so the auditor sees it.
- **Onboarding**: a controller's first reading carries its whole lifetime; it only opens the first
  interval and is never consumption.
- **Duplicates**: readings at the same instant are one reading (the first kept); InfluxDB stores
  a point once per series and time anyway.
- **Gaps**: an interval longer than ``gap_factor`` × the device's report interval is a ``gap``:
  the counter still gives its energy, but what happened inside it (burning hours, a reset) is
  not known.
- **Breaks**: two readings more than ``max_interval_ms`` apart (12 h by default) bound no
  interval: the stretch between them is ``missing`` (its energy unknown) and the later reading
  opens the counter anew, like an onboarding. Without this bound, whether a long silence's energy
  was counted depended on how far before a period its reader looked, so a period split in two
  could add up to more than the whole; with it, any reader that looks ``max_interval_ms`` around
  its period (the report, the hourly rollups) sees the same intervals.
- **Integers, so any split adds up exactly**: every figure of an interval is an integer — energy
  in mWh (each counter value rounded to the nearest mWh once, as it is read; the power
  integral rounded to the mWh), burning time in ms, dimming in %·ms (dim % × burning ms, rounded).
  Sums of integers do not depend on their order, so a figure summed per hour, per group, per day
  (in Python, in C, in InfluxDB's ``sum()`` of integer fields) is the same integer whichever way.
- **Period boundaries** fall inside intervals; an interval's energy, burning time and dimming are
  shared between periods **in proportion to time**, by telescoping floors at absolute cut points
  (``part``): for an interval ``[t0, t1)`` with total ``Q``, the share of ``[x, y)`` is
  ``F(y) − F(x)`` with ``F(t) = ⌊Q · (t − t0) / (t1 − t0)⌋`` (``t`` clamped to the interval), in
  integers. A share depends only on its cut points, never on how the rest of the period was split,
  and the shares of any partition of ``[t0, t1)`` add up to exactly ``Q``.
- **Burning time** of an interval: all of it when both readings say ``lamp_on``, none when neither
  does; when the lamp switched in between, the energy tells how long: ``⌊energy mWh × 3,600,000 /
  power mW of the lit reading⌋`` ms, at most the interval (half of it, floored, when that power is
  unknown or rounds to 0 mW).

**Bounds**: a counter value (Wh) or a power (W) whose magnitude is ``READABLE`` (2^40) or more,
or not a number, is read as absent (a 32-bit register holds 2^32 Wh; the contract bounds power to
5000 W), and a dim level outside 0–100 % as unknown: garbage from a faulty device then cannot
push an integer past int64 (in C, in InfluxDB's integer fields and their sums).

``energy.hour_tally`` (C) does this arithmetic operation for operation (the float → integer
roundings ``milli`` and ``round_half_up`` are the same IEEE operations there), so its figures are
the same integers.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from energy.integrate import trapezoid_mwh

MS_PER_H = 3_600_000
READABLE = 2.0**40
"""A counter value (Wh) or power (W) of this magnitude or more is read as absent."""

Kind = Literal["ok", "gap", "reset", "missing", "edge"]
"""``ok``: measured; ``gap``: too long to vouch for what happened inside; ``reset``: part of
its energy is unknown; ``missing``: no readings at all (longer than a gap); ``edge``: a stretch
without readings at the period's edge, shorter than a gap (not flagged, not verified)."""

Method = Literal["counter", "power", "none"]

UNVERIFIED: frozenset[str] = frozenset({"gap", "reset", "missing", "edge"})
FLAGGED: frozenset[str] = frozenset({"gap", "reset", "missing"})


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading as the report needs it; ``energy_wh`` None: the device has no counter."""

    t_ms: int
    energy_wh: float | None
    power_w: float | None = None
    lamp_on: bool | None = None
    dim_pct: float | None = None

    @property
    def lit(self) -> bool:
        if self.lamp_on is not None:
            return self.lamp_on
        return self.power_w is not None and self.power_w > 0


def readable(x: float | None) -> bool:
    """Whether ``x`` is a counter value or power the arithmetic takes (``READABLE``)."""
    return x is not None and -READABLE < x < READABLE


def _dim(x: float | None) -> float | None:
    return x if x is not None and 0 <= x <= 100 else None


def round_half_up(x: float) -> int:
    """The integer nearest ``x``, halves up: ``⌊x + 0.5⌋`` (one IEEE addition, as in C)."""
    return math.floor(x + 0.5)


def milli(x: float) -> int:
    """``x`` in thousandths, to the nearest (Wh → mWh, W → mW): ``⌊x · 1000 + 0.5⌋``."""
    return math.floor(x * 1000 + 0.5)


def part(total: int, t0: int, t1: int, x: int, y: int) -> int:
    """The share of ``[x, y)`` of ``total`` spread over ``[t0, t1)`` in proportion to time:
    ``F(y) − F(x)``, ``F(t) = ⌊total · (clamp(t) − t0) / (t1 − t0)⌋`` (telescoping floors at
    absolute cut points: the shares of any partition of ``[t0, t1)`` add up to ``total``)."""
    dt = t1 - t0
    x, y = min(max(x, t0), t1), min(max(y, t0), t1)
    return total * (y - t0) // dt - total * (x - t0) // dt


@dataclass(frozen=True, slots=True)
class Interval:
    """``[start_ms, end_ms)`` of one device and what is known of it, in integers."""

    start_ms: int
    end_ms: int
    energy_mwh: int
    on_ms: int
    dim_on_ms: int
    """Σ dim_pct × burning ms (%·ms, rounded), so mean dim = dim_on_ms / on_ms."""
    method: Method
    kind: Kind

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


def counter_step(before_mwh: int, after_mwh: int) -> tuple[int, bool]:
    """Energy between two counter readings (mWh) and whether the counter fell (a reset)."""
    if after_mwh >= before_mwh:
        return after_mwh - before_mwh, False
    return after_mwh, True


def _burning(a: Sample, b: Sample, energy_mwh: int, dt_ms: int) -> tuple[int, int]:
    """(burning ms, dim %·ms) of the interval between two readings."""
    a_on, b_on = a.lit, b.lit
    if a_on and b_on:
        dims = [d for d in (_dim(a.dim_pct), _dim(b.dim_pct)) if d is not None]
        dim = sum(dims) / len(dims) if dims else 100.0
        return dt_ms, round_half_up(dim * dt_ms)
    if not a_on and not b_on:
        return 0, 0
    lit = a if a_on else b
    power_mw = milli(lit.power_w) if lit.power_w is not None and readable(lit.power_w) else 0
    on_ms = min(dt_ms, energy_mwh * MS_PER_H // power_mw) if power_mw > 0 else dt_ms // 2
    known = _dim(lit.dim_pct)
    dim = known if known is not None else 100.0
    return on_ms, round_half_up(dim * on_ms)


def interval_between(a: Sample, b: Sample, gap_ms: float) -> Interval:
    """The interval between two consecutive readings (``a.t_ms < b.t_ms``)."""
    dt = b.t_ms - a.t_ms
    if dt <= 0:
        raise ValueError("readings must be in time order, without duplicates")
    reset = False
    method: Method
    if (
        a.energy_wh is not None
        and b.energy_wh is not None
        and readable(a.energy_wh)
        and readable(b.energy_wh)
    ):
        energy, reset = counter_step(milli(a.energy_wh), milli(b.energy_wh))
        method = "counter"
    elif (
        a.power_w is not None
        and b.power_w is not None
        and readable(a.power_w)
        and readable(b.power_w)
    ):
        energy = trapezoid_mwh(milli(a.power_w), milli(b.power_w), dt)
        method = "power"
    else:
        energy, method = 0, "none"
    on_ms, dim_on_ms = _burning(a, b, energy, dt)
    kind: Kind = "ok"
    if method == "none":
        kind = "missing"
    elif reset:
        kind = "reset"
    elif dt > gap_ms:
        kind = "gap"
    return Interval(a.t_ms, b.t_ms, energy, on_ms, dim_on_ms, method, kind)


def uncovered(start_ms: int, end_ms: int, gap_ms: float) -> Interval:
    """A stretch without readings: no known energy; ``missing`` if longer than a gap."""
    kind: Kind = "missing" if end_ms - start_ms > gap_ms else "edge"
    return Interval(start_ms, end_ms, 0, 0, 0, "none", kind)


class CounterStream:
    """One device's readings, pushed in time order, turned into intervals as they come.

    Readings at the time of the last one are duplicates and are dropped (counted); readings
    older than the last one cannot happen with InfluxDB's ordered answers and are refused.
    """

    __slots__ = ("duplicates", "first_ms", "gap_ms", "last", "max_interval_ms")

    def __init__(self, gap_ms: float, max_interval_ms: float = math.inf) -> None:
        self.gap_ms = gap_ms
        self.max_interval_ms = max_interval_ms
        self.last: Sample | None = None
        self.first_ms: int | None = None
        self.duplicates = 0

    def push(self, sample: Sample) -> Interval | None:
        last = self.last
        if last is None:
            self.last, self.first_ms = sample, sample.t_ms
            return None
        if sample.t_ms == last.t_ms:
            self.duplicates += 1
            return None
        if sample.t_ms < last.t_ms:
            raise ValueError("readings must be pushed in time order")
        self.last = sample
        if sample.t_ms - last.t_ms > self.max_interval_ms:
            return Interval(last.t_ms, sample.t_ms, 0, 0, 0, "none", "missing")
        return interval_between(last, sample, self.gap_ms)


def intervals(
    samples: Iterable[Sample], gap_ms: float, max_interval_ms: float = math.inf
) -> list[Interval]:
    """The intervals of one device's readings, in any order, duplicates counted once."""
    stream = CounterStream(gap_ms, max_interval_ms)
    out: list[Interval] = []
    for sample in sorted(samples, key=lambda s: s.t_ms):
        interval = stream.push(sample)
        if interval is not None:
            out.append(interval)
    return out


def shares(
    start_ms: int, end_ms: int, edges: Sequence[int], clip: tuple[int, int] | None = None
) -> Iterator[tuple[int, int, int]]:
    """``(bin, x, y)``: the part ``[x, y)`` of ``[start_ms, end_ms)`` falling in each bin
    ``[edges[i], edges[i+1])`` it overlaps (``part`` gives its share of a total); parts outside
    ``[edges[0], edges[-1])`` are in no bin, and with ``clip`` only the part inside
    ``[clip[0], clip[1])`` counts."""
    if end_ms <= start_ms or end_ms <= edges[0] or start_ms >= edges[-1]:
        return
    lo, hi = clip if clip is not None else (start_ms, end_ms)
    lo, hi = max(lo, start_ms), min(hi, end_ms)
    i = max(bisect.bisect_right(edges, lo) - 1, 0)
    last = len(edges) - 1
    while i < last and edges[i] < hi:
        x, y = max(lo, edges[i]), min(hi, edges[i + 1])
        if y > x:
            yield i, x, y
        i += 1


def energy_between(ivs: Iterable[Interval], start_ms: int, end_ms: int) -> int:
    """Energy (mWh) of the intervals in ``[start_ms, end_ms)``, each shared in proportion to
    time (``part``)."""
    total = 0
    for iv in ivs:
        for _, x, y in shares(iv.start_ms, iv.end_ms, (start_ms, end_ms)):
            total += part(iv.energy_mwh, iv.start_ms, iv.end_ms, x, y)
    return total
