"""Hourly energy rollups: one point per luminaire per hour, by the report's own arithmetic.

Pure functions; no I/O, no clock. A rollup hour ``[h, h + 1 h)`` of one device holds what a
``ReportBuilder`` bin of exactly that hour would tally (``energy.report.Tally``): the counter and
power-integral Wh (intervals straddling the hour shared in proportion to time), the verified Wh,
burning and dimming time, readings received and expected, the flagged intervals and resets.
Every figure is an integer (``energy.counters``: mWh, ms, %·ms; the baseline as whole mWh and a
rest in mW·ms), so summing hours — in Python, in C or by InfluxDB's ``sum()`` of integer fields,
in any order — gives exactly the raw report's integers for any whole-hour span, and the same
printed digits.

**Why the hours can be computed one range at a time.** The readers look ``max_interval_ms``
around their period (``energy.counters``: readings further apart than that bound no interval),
so an hour's figures depend only on the readings inside it and on each device's nearest reading
on either side within that bound. A stretch without readings at a rollup range's edge is
therefore ``missing`` (``ReportBuilder.finish(closed=True)``), exactly as a report over a longer
period sees it. Only near a report's own edges does the raw report say ``edge`` for a short
stretch, which is why ``plan`` leaves ``edge_ms`` at each end of a report to raw readings.

``reported`` is 1 when the hour holds a reading of the device (summed per group, it says whether
every luminaire reported in the hours around a report, see ``energy.rollup_groups``).

The point written per device-hour (``line``): measurement ``energy_hourly``, tags ``circuit``,
``device_id``, ``zone`` (bounded: from the inventory), time = the hour's start (ms). Written again
for the same hour, it overwrites the earlier point (same series, same time): never doubled.
"""

from __future__ import annotations

import bisect
import itertools
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from energy.counters import MS_PER_H, Sample
from energy.inventory import Luminaire
from energy.periods import day_edges, from_ms, local_midnight_ms
from energy.report import MW_MS_PER_MWH, Axis, ReportBuilder, Tally, baseline_mw

MEASUREMENT = "energy_hourly"
DAY_MEASUREMENT = "energy_daily"
"""Sums of a device's hourly rollups over a civil day (``energy.tz``), at local midnight, with
``hours``: how many hourly points it summed (23, 24 or 25 when complete)."""
HOUR_AXIS = "hour"
FIELDS = (
    "readings",
    "expected",
    "metered_mwh",
    "counter_mwh",
    "power_mwh",
    "verified_mwh",
    "burning_ms",
    "dim_pct_ms",
    "baseline_mwh",
    "baseline_rest",
    "flagged",
    "resets",
    "gap",
    "method",
    "via_counter",
    "via_power",
)
"""The fields of ``energy_hourly`` (all integers but ``expected``, ``gap`` and ``method``).
Points written before the figures were integers hold ``…_wh``/``…_h`` floats instead: readers
find them by the missing ``burning_ms`` (``COMPLETE_FIELD``) and read those hours raw."""
COMPLETE_FIELD = "burning_ms"
"""A field every point of this schema holds and no older point does: the rollup readers count
it (not ``readings``) to decide whether an hour or day has every luminaire's point."""
SUMMED = (
    "readings",
    "counter_mwh",
    "power_mwh",
    "verified_mwh",
    "burning_ms",
    "dim_pct_ms",
    "flagged",
    "resets",
)
"""The fields a reader adds up over hours (InfluxDB ``sum``); the methods are ``max`` of
``via_counter`` and ``via_power`` (1 when the hour had an interval known that way)."""
BASELINE = ("baseline_mwh", "baseline_rest")
"""A baseline in two integer fields: whole mWh and the rest in mW·ms (< 3,600,000 a point), so
Σ baseline_mwh × 3,600,000 + Σ baseline_rest is the exact sum of mW × ms however many points
are summed, and neither field overflows InfluxDB's int64 (the product alone would, for a large
group over a year)."""


def inventory_crc(lum: Luminaire) -> int:
    """CRC-32 of what a rollup's figures depend on in the inventory: the device, its zone and
    circuit (the tags) and its baseline W. Summed over a group's luminaires it tells whether a
    rollup per (zone, circuit) was built from the inventory a report now reads (``energy.
    rollup_groups``)."""
    text = f"{lum.device_id}\x1f{lum.zone}\x1f{lum.circuit}\x1f{float(lum.baseline_power_w)!r}"
    return zlib.crc32(text.encode())


def floor_hour(t_ms: int) -> int:
    return t_ms - t_ms % MS_PER_H


def ceil_hour(t_ms: int) -> int:
    return -(-t_ms // MS_PER_H) * MS_PER_H


@dataclass(frozen=True, slots=True)
class Rollup:
    """One device's hour ``[hour_ms, hour_ms + 1 h)``, in integers (``Tally``'s units)."""

    device_id: str
    zone: str
    circuit: str
    hour_ms: int
    readings: int
    expected: float
    counter_mwh: int
    power_mwh: int
    verified_mwh: int
    burning_ms: int
    dim_pct_ms: int
    """Σ dim % × burning ms: the mean dim level is ``dim_pct_ms / burning_ms``."""
    baseline_mw_ms: int
    """The inventory's baseline mW (when built) × the verified burning ms; written as
    ``baseline_mwh`` and ``baseline_rest`` (``BASELINE``)."""
    flagged: int
    resets: int
    method: str
    """``counter``, ``power``, ``counter+power`` or ``none``: how the energy was known."""
    inventory_crc: int = 0
    """``inventory_crc`` of the luminaire's inventory entry the hour was built with."""

    @property
    def metered_mwh(self) -> int:
        return self.counter_mwh + self.power_mwh

    @property
    def gap(self) -> bool:
        return self.flagged > 0

    @classmethod
    def of(cls, lum: Luminaire, hour_ms: int, t: Tally) -> Rollup:
        return cls(
            lum.device_id,
            lum.zone,
            lum.circuit,
            hour_ms,
            t.readings,
            MS_PER_H / (lum.report_interval_s * 1000),
            t.counter_mwh,
            t.power_mwh,
            t.verified_mwh,
            t.burn_ms,
            t.dim_ms,
            t.baseline_mw_ms,
            t.flagged,
            t.resets,
            "+".join(sorted(t.methods)) or "none",
            inventory_crc(lum),
        )

    def add_to(self, tally: Tally, baseline: int) -> None:
        """Add this hour to a report's tally; the baseline (mW) from the inventory given now (a
        corrected inventory needs no rebuild), over the hour's verified burning time."""
        tally.readings += self.readings
        tally.counter_mwh += self.counter_mwh
        tally.power_mwh += self.power_mwh
        if self.method != "none":
            tally.methods.update(self.method.split("+"))
        tally.verified_mwh += self.verified_mwh
        tally.burn_ms += self.burning_ms
        tally.dim_ms += self.dim_pct_ms
        tally.baseline_mw_ms += baseline * self.burning_ms
        tally.flagged += self.flagged
        tally.resets += self.resets


def hour_edges(start_ms: int, end_ms: int) -> list[int]:
    if start_ms % MS_PER_H or end_ms % MS_PER_H or end_ms <= start_ms:
        raise ValueError("a rollup range is whole hours: start and end on the hour, end later")
    return list(range(start_ms, end_ms + 1, MS_PER_H))


def rollup_builder(
    start_ms: int,
    end_ms: int,
    inventory: Mapping[str, Luminaire],
    *,
    gap_factor: float,
    max_interval_ms: float,
) -> ReportBuilder:
    """A builder whose one axis is device × hour over ``[start_ms, end_ms)``; push the
    readings of ``[start_ms, end_ms)`` and each device's nearest reading within
    ``max_interval_ms`` on either side, then ``rollups(builder)``."""
    edges = hour_edges(start_ms, end_ms)
    axis = Axis(lambda lum: lum.device_id, edges, [str(e) for e in edges[:-1]])
    return ReportBuilder(
        start_ms,
        end_ms,
        inventory,
        {HOUR_AXIS: axis},
        gap_factor=gap_factor,
        max_interval_ms=max_interval_ms,
    )


def rollups(builder: ReportBuilder) -> list[Rollup]:
    """Every (device of the inventory, hour) of a ``rollup_builder`` after its readings."""
    builder.finish(closed=True)
    edges = builder.axes[HOUR_AXIS].edges
    table = builder.tallies[HOUR_AXIS]
    out = []
    for device_id, lum in builder.inventory.items():
        for index, hour in enumerate(edges[:-1]):
            out.append(Rollup.of(lum, hour, table.get((device_id, index)) or Tally()))
    return out


def compute(
    start_ms: int,
    end_ms: int,
    readings: Mapping[str, Iterable[Sample]],
    inventory: Mapping[str, Luminaire],
    *,
    gap_factor: float = 1.5,
    max_interval_ms: float,
) -> list[Rollup]:
    """The rollups of ``[start_ms, end_ms)`` from each device's readings (in any order; those
    outside the range beyond ``max_interval_ms`` change nothing)."""
    builder = rollup_builder(
        start_ms, end_ms, inventory, gap_factor=gap_factor, max_interval_ms=max_interval_ms
    )
    for device_id, samples in readings.items():
        for sample in sorted(samples, key=lambda s: s.t_ms):
            builder.push(device_id, sample)
    return rollups(builder)


def _float(value: float) -> str:
    return repr(float(value))


def line(row: Rollup) -> str:
    """The rollup as a line of line protocol (ms precision)."""
    method = row.method
    whole, rest = divmod(row.baseline_mw_ms, MW_MS_PER_MWH)
    return (
        f"{MEASUREMENT},circuit={row.circuit},device_id={row.device_id},zone={row.zone} "
        f"readings={row.readings}i,expected={row.expected!r},"
        f"metered_mwh={row.counter_mwh + row.power_mwh}i,counter_mwh={row.counter_mwh}i,"
        f"power_mwh={row.power_mwh}i,verified_mwh={row.verified_mwh}i,"
        f"burning_ms={row.burning_ms}i,dim_pct_ms={row.dim_pct_ms}i,"
        f"baseline_mwh={whole}i,baseline_rest={rest}i,flagged={row.flagged}i,resets={row.resets}i,"
        f'gap={"true" if row.flagged else "false"},method="{method}",'
        f"via_counter={int('counter' in method)}i,via_power={int('power' in method)}i,"
        f"inventory_crc={row.inventory_crc}i,reported={int(row.readings > 0)}i {row.hour_ms}"
    )


def integer(record: Mapping[str, object], name: str) -> int:
    """An integer field of a query's row (0 when absent). InfluxDB answers integer fields and
    their ``sum`` as JSON integers; a float (a point of another schema) is refused rather than
    rounded silently."""
    value = record.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"rollup field {name!r} is not an integer: {value!r}")
    return value


def baseline_of(record: Mapping[str, object]) -> int:
    """The mW·ms of a row's ``baseline_mwh`` and ``baseline_rest`` (``BASELINE``)."""
    return integer(record, "baseline_mwh") * MW_MS_PER_MWH + integer(record, "baseline_rest")


def from_record(record: Mapping[str, object]) -> Rollup:
    """A rollup from a query's row (``time`` in ms, tags and fields by name)."""
    expected = record.get("expected")
    return Rollup(
        str(record.get("device_id", "")),
        str(record.get("zone", "")),
        str(record.get("circuit", "")),
        integer(record, "time"),
        integer(record, "readings"),
        float(expected) if isinstance(expected, int | float) else 0.0,
        integer(record, "counter_mwh"),
        integer(record, "power_mwh"),
        integer(record, "verified_mwh"),
        integer(record, "burning_ms"),
        integer(record, "dim_pct_ms"),
        baseline_of(record),
        integer(record, "flagged"),
        integer(record, "resets"),
        str(record.get("method") or "none"),
        integer(record, "inventory_crc"),
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """How a report over ``[start, end)`` is read: ``hours`` from the rollups, ``raw`` ranges
    from raw readings."""

    hours: list[int]
    raw: list[tuple[int, int]]


def plan(
    start_ms: int,
    end_ms: int,
    axes: Iterable[Sequence[int]],
    edge_ms: float,
    usable: set[int],
    taken: Sequence[tuple[int, int]] = (),
) -> Plan:
    """Which whole hours of ``[start_ms, end_ms)`` come from rollups: those at least
    ``edge_ms`` from both ends (the longest gap: the raw report may call a stretch at its edges
    ``edge`` where a rollup says ``missing``), inside one bin of every axis (an hour across a
    bin's edge cannot be cut), in ``usable`` (every device has its point) and not in a
    ``taken`` span (days read from daily rollups). The rest, merged into ranges, is read raw."""
    first, last = ceil_hour(int(start_ms + edge_ms)), floor_hour(int(end_ms - edge_ms))
    edge_lists = [list(edges) for edges in axes]
    inside = [range(a, b) for a, b in taken]
    hours = []
    for hour in range(first, last, MS_PER_H):
        if hour not in usable or any(hour in span for span in inside):
            continue
        if all(within_one_bin(edges, hour, hour + MS_PER_H) for edges in edge_lists):
            hours.append(hour)
    covered = sorted([(h, h + MS_PER_H) for h in hours] + list(taken))
    raw: list[tuple[int, int]] = []
    t = start_ms
    for a, b in covered:
        if a > t:
            raw.append((t, a))
        t = max(t, b)
    if t < end_ms:
        raw.append((t, end_ms))
    return Plan(hours, raw)


def whole_days(start_ms: int, end_ms: int, tz: ZoneInfo) -> list[tuple[int, int]]:
    """The civil days of ``tz`` lying wholly inside ``[start_ms, end_ms)``."""
    edges, _ = day_edges(start_ms, end_ms, tz)
    out = []
    for a, b in itertools.pairwise(edges):
        day = from_ms(a).astimezone(tz).date()
        if a == local_midnight_ms(day, tz) and b == local_midnight_ms(day + timedelta(days=1), tz):
            out.append((a, b))
    return out


def days_touching(start_ms: int, end_ms: int, tz: ZoneInfo) -> list[tuple[int, int]]:
    """The civil days of ``tz`` that overlap ``[start_ms, end_ms)``, whole."""
    first = from_ms(start_ms).astimezone(tz).date()
    last = from_ms(end_ms - 1).astimezone(tz).date()
    a = local_midnight_ms(first, tz)
    b = local_midnight_ms(last + timedelta(days=1), tz)
    return whole_days(a, b, tz)


def candidate_days(
    start_ms: int, end_ms: int, axes: Iterable[Sequence[int]], edge_ms: float, tz: ZoneInfo
) -> list[tuple[int, int]]:
    """The days a report may read from daily rollups: whole civil days at least ``edge_ms``
    from its ends (as ``plan``), each inside one bin of every axis."""
    first, last = ceil_hour(int(start_ms + edge_ms)), floor_hour(int(end_ms - edge_ms))
    if last <= first:
        return []
    edge_lists = [list(edges) for edges in axes]
    return [
        (a, b)
        for a, b in whole_days(first, last, tz)
        if all(within_one_bin(edges, a, b) for edges in edge_lists)
    ]


DAY_SUMMED = (*SUMMED, "metered_mwh", *BASELINE, "expected")
"""What a daily point sums of its hours, beside ``via_counter``/``via_power`` (max), ``hours``
(count) and ``inventory_crc``."""


def day_line(lum: Luminaire, day_ms: int, sums: Mapping[str, object]) -> str:
    """One device's civil day: the sums of its hourly rollups, ``hours`` of them. Its
    ``inventory_crc`` is its hours' when they all agree (``crc_lo`` = ``crc_hi``), else -1:
    hours built from different inventories make a day no group sum may stand on. Every field an
    integer (InfluxDB sums integer fields exactly) but ``expected``."""
    lo, hi = sums.get("crc_lo"), sums.get("crc_hi")
    crc = integer(sums, "crc_hi") if lo is not None and lo == hi else -1
    expected = sums.get("expected")
    fields = [f"{name}={integer(sums, name)}i" for name in DAY_SUMMED if name != "expected"]
    fields.append(f"expected={_float(expected if isinstance(expected, int | float) else 0.0)}")
    fields += [f"{name}={integer(sums, name)}i" for name in ("via_counter", "via_power", "hours")]
    fields.append(f"inventory_crc={crc}i")
    tags = f"circuit={lum.circuit},device_id={lum.device_id},zone={lum.zone}"
    return f"{DAY_MEASUREMENT},{tags} {','.join(fields)} {day_ms}"


def within_one_bin(edges: Sequence[int], a: int, b: int) -> bool:
    i = bisect.bisect_right(edges, a) - 1
    return 0 <= i < len(edges) - 1 and b <= edges[i + 1]


def add_sums(
    builder: ReportBuilder, axis: str, index: int, device_id: str, sums: Mapping[str, object]
) -> bool:
    """Add one device's sums over hours of bin ``index`` of ``axis`` (``SUMMED`` and
    ``via_counter``/``via_power``, as InfluxDB answers them) to the builder, the baseline from
    its inventory entry now; False when the device is not in its inventory."""
    lum = builder.inventory.get(device_id)
    if lum is None:
        builder.unknown.add(device_id)
        return False
    tally = tally_of(builder, axis, (builder.axes[axis].group_of(lum), index))
    burn_ms = add_summed(tally, sums)
    tally.baseline_mw_ms += baseline_mw(lum) * burn_ms
    return True


def tally_of(builder: ReportBuilder, axis: str, key: tuple[str, int]) -> Tally:
    """The builder's tally of ``key`` (group, bin index) on ``axis``, made when it has none."""
    table = builder.tallies[axis]
    tally = table.get(key)
    if tally is None:
        tally = table[key] = Tally()
    return tally


def add_summed(tally: Tally, sums: Mapping[str, object]) -> int:
    """Add sums of rollup hours as InfluxDB answers them (``SUMMED`` and ``via_counter`` /
    ``via_power``, integers) to ``tally``, all but the baseline (a luminaire's comes from the
    inventory, a group's from its own sum); returns the burning ms added."""
    tally.readings += integer(sums, "readings")
    tally.counter_mwh += integer(sums, "counter_mwh")
    tally.power_mwh += integer(sums, "power_mwh")
    if sums.get("via_counter"):
        tally.methods.add("counter")
    if sums.get("via_power"):
        tally.methods.add("power")
    tally.verified_mwh += integer(sums, "verified_mwh")
    burn_ms = integer(sums, "burning_ms")
    tally.burn_ms += burn_ms
    tally.dim_ms += integer(sums, "dim_pct_ms")
    tally.flagged += integer(sums, "flagged")
    tally.resets += integer(sums, "resets")
    return burn_ms


def add_hour(builder: ReportBuilder, row: Rollup) -> None:
    """Add one rollup hour to every axis of a report builder (the hour lies in one bin of
    each, see ``plan``); a device not in the builder's inventory is left out."""
    lum = builder.inventory.get(row.device_id)
    if lum is None:
        builder.unknown.add(row.device_id)
        return
    for name, axis in builder.axes.items():
        index = bisect.bisect_right(axis.edges, row.hour_ms) - 1
        row.add_to(tally_of(builder, name, (axis.group_of(lum), index)), baseline_mw(lum))


def merge(into: ReportBuilder, part: ReportBuilder) -> None:
    """Add the tallies of a builder over part of the same period and axes."""
    for name, table in part.tallies.items():
        for key, t in table.items():
            tally_of(into, name, key).merge(t)
    into.unknown |= part.unknown
    into.duplicates += part.duplicates
