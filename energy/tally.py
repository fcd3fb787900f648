"""The hourly rollups tallied as luxtel writes the readings, so that closing an hour reads nothing
back from InfluxDB (``energy.hour_tally``, C: the integer arithmetic of ``energy.counters`` and
``energy.report.Tally.add`` operation for operation, so the figures are the very integers
``energy.rollup_store.build`` computes from the same readings).

Fed by the sink (``feed``) with the lines InfluxDB has just accepted — every source, the fast
and the full decode path alike — it keeps per device its last reading and the sums of the hours
still open. At an hour's close the upkeep asks ``vouches(hour)``: yes, and ``rows(hour)`` are
that hour's rollups, exactly what a build would compute from what InfluxDB holds then; no, and
the hour is built by reading it back, as before. It does not vouch for:

- hours that readings written before it was listening may be in (``since_ms``): until told
  otherwise (``history``: the latest such reading, asked of InfluxDB at start), from the first
  whole hour after luxtel started;
- *fallback hours* the C side reports: a reading out of time order for its device, a duplicate
  with other values, a device's first reading since start (its previous one may be in
  InfluxDB only: within ``max_interval_ms`` of ``history``), a replayed one (spool), a device
  under two zones, a line not in luxtel's own shape, an hour whose slot was taken; each marks
  the hours from its ts − ``max_interval_ms`` to the device's latest reading;
- hours already closed (their late readings are the dirty hours' work, ``energy.upkeep``).

``feed`` also returns the closed hours a reading changes although it is not in them: its device
was silent past their close (longer than ``settle_s``) and is heard from again within
``max_interval_ms``, so the interval across them is known now. The read-back build cannot see
that (the reading's own hour is still open); the upkeep rebuilds them as dirty hours.

Clock: the hours are the readings' ``ts``; ``since_ms`` is from the wall clock at start, the
closing (``close``) the upkeep's wall-clock watermark, as for the read-back build.

Memory: a fixed record per inventory device (``record_bytes`` ≈ 500 bytes with its slots in
the C index of device ids, and ~240 for its line head and tail, its id's bytes and its list
entries: 746 bytes a luminaire in all, measured with ``tracemalloc`` at 25,000), allocated at
start;
``max_bytes`` bounds it (beyond: no tally, every hour read back, logged) and the fallback hours
(≤ 1 % of it, at ~100 bytes an hour; past that they collapse into one span).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from energy.completeness import gap_ms
from energy.counters import MS_PER_H
from energy.hour_tally import HourTally, record_bytes
from energy.inventory import Luminaire
from energy.report import Tally, baseline_mw
from energy.rollup import MEASUREMENT, Rollup, floor_hour, inventory_crc

_FALLBACK_HOUR_BYTES = 100

METHOD_BITS = ((1, "counter"), (2, "power"))


_HEAD_BYTES = 240
"""A device's rollup line head (``energy_hourly,circuit=…,device_id=…,zone=… ``, a str of
~60–110 bytes with its object) and tail, its id's bytes in the C index, its list entries."""


def needed_bytes(devices: int) -> int:
    """What a tally of ``devices`` luminaires takes: its records, line heads and index."""
    return devices * (record_bytes() + _HEAD_BYTES)


class RollupTally:
    """The hourly rollups of the inventory's devices, tallied from written lines."""

    def __init__(
        self,
        inventory: Mapping[str, Luminaire],
        *,
        gap_factor: float,
        max_interval_ms: float,
        started_ms: int,
        closed_ms: int,
        max_bytes: int,
    ) -> None:
        """``started_ms``: when luxtel started (wall clock); ``closed_ms``: the upkeep's
        watermark (hours before it are closed)."""
        if needed_bytes(len(inventory)) > max_bytes:
            raise MemoryError(
                f"a tally of {len(inventory)} luminaires needs "
                f"{needed_bytes(len(inventory)):,} bytes, more than {max_bytes:,}"
            )
        self.devices = list(inventory)
        self.lums = [inventory[d] for d in self.devices]
        self.since_ms = floor_hour(started_ms) + MS_PER_H
        self.native = HourTally(
            self.devices,
            [gap_ms(lum.report_interval_s, gap_factor) for lum in self.lums],
            [baseline_mw(lum) for lum in self.lums],
            max_interval_ms,
            closed_ms,
            max(1, max_bytes // 100 // _FALLBACK_HOUR_BYTES),
            [
                f"{MEASUREMENT},circuit={lum.circuit},device_id={lum.device_id},zone={lum.zone} "
                for lum in self.lums
            ],
            [MS_PER_H / (lum.report_interval_s * 1000) for lum in self.lums],
            [f",inventory_crc={inventory_crc(lum)}i" for lum in self.lums],
        )
        self.closed_ms = closed_ms

    def feed(self, lines: Sequence[str], replayed: bool = False) -> set[int]:
        """The lines InfluxDB has just accepted (``replayed``: from the spool); returns the
        closed hours they change, for the dirty hours' rebuild: those of readings late for
        them, and those a device silent past their close, then heard from within
        ``max_interval_ms``, spans."""
        self.native.feed(lines, replayed)
        return self.native.reopened()

    def history(self, latest_ms: int | None) -> None:
        """What InfluxDB held when the tally was already listening: ``latest_ms``, the ts of
        its latest reading (None: none that could reach an open hour). Hours after that one
        hold no reading the tally has not seen."""
        floor = -(1 << 62)
        self.since_ms = floor if latest_ms is None else floor_hour(latest_ms) + MS_PER_H
        self.native.history(floor if latest_ms is None else latest_ms)

    def vouches(self, hour_ms: int) -> bool:
        """Whether ``rows(hour_ms)`` are that hour's rollups (an open hour, fully tallied)."""
        if hour_ms < self.since_ms or hour_ms < self.closed_ms:
            return False
        hours, span = self.native.fallback()
        if hour_ms in hours:
            return False
        return span is None or not span[0] <= hour_ms <= span[1]

    def rows(self, hour_ms: int) -> list[Rollup]:
        """Every inventory device's rollup of the hour, and its sums forgotten (call only when
        ``vouches``)."""
        out = []
        for lum, taken in zip(self.lums, self.native.take(hour_ms), strict=True):
            readings, counter, power, bits, verified, burn, dim, baseline, flagged, resets = taken
            tally = Tally(
                readings=readings,
                counter_mwh=counter,
                power_mwh=power,
                methods={name for bit, name in METHOD_BITS if bits & bit},
                verified_mwh=verified,
                burn_ms=burn,
                dim_ms=dim,
                baseline_mw_ms=baseline,
                flagged=flagged,
                resets=resets,
            )
            out.append(Rollup.of(lum, hour_ms, tally))
        return out

    def lines(self, hour_ms: int) -> list[str]:
        """``[energy.rollup.line(row) for row in rows(hour_ms)]``, formatted in C (the same
        text, property-tested), and the sums forgotten (call only when ``vouches``)."""
        return self.native.take_lines(hour_ms)

    def bodies(self, hour_ms: int, per_body: int) -> list[bytes]:
        """The same lines as write bodies (``b"\\n".join`` of at most ``per_body`` lines each,
        formatted in C straight into them: no str per line), and the sums forgotten (call only
        when ``vouches``)."""
        return self.native.take_bodies(hour_ms, per_body)

    def close(self, closed_ms: int) -> None:
        """Hours before ``closed_ms`` are closed: nothing more is added to them."""
        if closed_ms > self.closed_ms:
            self.closed_ms = closed_ms
            self.native.close(closed_ms)
            self.native.forget(closed_ms)
