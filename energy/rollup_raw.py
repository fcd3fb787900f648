"""A raw range of a report read for every luminaire, ``PART_DEVICES`` luminaires at a time
(``read_raw_part``), and the compact holders it reads through.

Clock: every time here is a reading's ``ts`` (Unix ms).
"""

from __future__ import annotations

import bisect
import contextlib
import math
from array import array
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import replace
from typing import Any

from energy.counters import Sample
from energy.queries import Series, select, stream
from energy.report import ReportBuilder
from energy.rollup import merge
from energy.rollup_edges import DEVICE_BATCH, RAW_DEVICES_MAX
from energy.rollup_store import PART_DEVICES, in_time, read_range
from energy.source import COLUMNS, Pushes, push_series
from influx.client import InfluxWriter


class Kept:
    """One reading per device (a ``LIMIT 1`` look-up's answer) kept compactly (~70 bytes a
    device with its id, where a ``Sample`` and its numbers take ~180) until the devices' turn
    comes, then handed out in ascending device order, whatever order InfluxDB answered in
    (``ORDER BY time DESC`` reverses the series too). Only the devices of ``only`` are kept
    (None: all)."""

    def __init__(self, only: Collection[str] | None) -> None:
        self.only = only
        self.ids: list[str] = []
        self.t = array("q")
        self.values = array("d")
        """energy, power, dim per reading; NaN for none."""
        self.lamp = bytearray()
        """0 off, 1 on, 2 none."""
        self.order: list[int] = []
        self.next = 0

    def push(self, device_id: str, sample: Sample) -> None:
        if self.only is not None and device_id not in self.only:
            return
        self.ids.append(device_id)
        self.t.append(sample.t_ms)
        for value in (sample.energy_wh, sample.power_w, sample.dim_pct):
            self.values.append(math.nan if value is None else value)
        self.lamp.append(2 if sample.lamp_on is None else int(sample.lamp_on))

    def sort(self) -> None:
        self.order = sorted(range(len(self.ids)), key=self.ids.__getitem__)

    def push_upto(self, part: Pushes, last: str | None) -> None:
        """Push into ``part`` the readings of the devices up to ``last`` (None: all left), in
        device order."""
        order, ids = self.order, self.ids
        while self.next < len(order) and (last is None or ids[order[self.next]] <= last):
            i = order[self.next]
            energy, power, dim = (
                None if math.isnan(v) else v for v in self.values[3 * i : 3 * i + 3]
            )
            lamp = None if self.lamp[i] == 2 else bool(self.lamp[i])
            part.push(ids[i], Sample(self.t[i], energy, power, lamp, dim))
            self.next += 1


class _Rows:
    """Readings pushed, kept per device in the order pushed."""

    def __init__(self) -> None:
        self.by: dict[str, list[Sample]] = {}

    def push(self, device_id: str, sample: Sample) -> None:
        self.by.setdefault(device_id, []).append(sample)


class Cursor:
    """A query's answer grouped by device, taken device range by device range (InfluxDB answers
    ``GROUP BY "device_id"`` in ascending device order; a device out of order is refused)."""

    def __init__(self, series: AsyncIterator[Series]) -> None:
        self._series = series
        self._head: Series | None = None
        self._done = False
        self._last = ""

    async def take_upto(self, last: str | None) -> AsyncIterator[Series]:
        """The pieces of series of the devices up to ``last`` (None: all left)."""
        while True:
            if self._head is None and not self._done:
                try:
                    self._head = await anext(self._series)
                except StopAsyncIteration:
                    self._done = True
            head = self._head
            if head is None:
                return
            device = head.tags.get("device_id", "")
            if last is not None and device > last:
                return
            if device < self._last:
                raise ValueError(f"InfluxDB answered {device!r} after {self._last!r}")
            self._last, self._head = device, None
            yield head


async def read_raw_part(
    writer: InfluxWriter,
    builder: ReportBuilder,
    a: int,
    b: int,
    zones: Sequence[str],
    window_ms: int,
) -> int:
    """Add ``[a, b)`` read raw for every luminaire (tallied only there: ``accept``); returns
    the readings read. Longer than one window: as ``read_range`` reads it, every luminaire at
    once. Within one window, ``PART_DEVICES`` luminaires at a time, and with one query over all
    series fewer than ``read_range``'s three (InfluxDB 1.x pays ~50 µs a series per query):

    - the window is read from ``margin`` before ``a`` (the longest report interval of the
      inventory), so a luminaire reporting on time has its reading before ``a`` there: no
      look-up for it;
    - the look-up after ``b`` (``LIMIT 1``) is read first and kept compactly (``Kept``); the
      window's answer is then taken device range by device range (it comes in ascending device
      order), each luminaire's rows pushed as they come;
    - the luminaires without a reading in the margin have their readings held and their last
      one before it looked up afterwards (by name when at most ``RAW_DEVICES_MAX``, else for
      every series), kept compactly too.
    """
    inventory = builder.inventory

    if b - a > window_ms:
        part = builder.part(inventory, (a, b))
        read = await read_range(
            writer,
            part,
            a,
            b,
            max_interval_ms=builder.max_interval_ms,
            zones=zones,
            window_ms=window_ms,
        )
        part.finish()
        merge(builder, part)
        return read
    rp, reach = writer.target.retention_policy, int(builder.max_interval_ms)
    longest = max((lum.report_interval_s * 1000 for lum in inventory.values()), default=0)
    margin = int(min(reach, longest))

    def statement(lo: int, hi: int, devices: Sequence[str] = ()) -> str:
        return select(
            "telemetry",
            COLUMNS,
            lo,
            hi,
            zones=zones,
            devices=devices,
            group_by_device=True,
            retention_policy=rp,
        )

    read = 0
    held = _Rows()
    """The luminaires without a reading in the margin: their readings from ``a`` on."""
    after = Kept(None)
    async for series in stream(writer, in_time(statement(b, b + reach + 1), order_desc=False)):
        read += push_series(after, series)
    after.sort()
    inside = stream(writer, statement(a - margin, b))
    async with contextlib.aclosing(inside):
        cursor = Cursor(inside)
        ordered = sorted(inventory)
        for i in range(0, max(len(ordered), 1), PART_DEVICES):
            ids = ordered[i : i + PART_DEVICES]
            last = None if i + PART_DEVICES >= len(ordered) else ids[-1]
            # the slice's luminaires but those held, taken out as found (before ``finish``)
            devices = {d: inventory[d] for d in ids}
            part = builder.part(devices, (a, b))
            pre: dict[str, list[Any]] = {}
            """Per luminaire of the slice, its last reading in the margin, until pushed."""
            on: set[str] = set()
            """Luminaires whose reading before ``a`` was pushed."""
            columns: list[str] = []
            async for series in cursor.take_upto(last):
                read += len(series.values)
                columns = series.columns
                device = series.tags.get("device_id", "")
                at = series.columns.index("time")
                times = [row[at] for row in series.values]
                k = bisect.bisect_left(times, a)
                if k:
                    pre[device] = series.values[k - 1]
                rows = series.values[k:]
                if not rows:
                    continue
                if device not in on and device in pre:
                    rows = [pre.pop(device), *rows]
                    on.add(device)
                if device in on or device not in devices:
                    push_series(part, replace(series, values=rows))
                else:
                    push_series(held, replace(series, values=rows))
            for device, row in pre.items():  # a reading in the margin, none from a on
                push_series(part, Series("", {"device_id": device}, columns, [row]))
                on.add(device)
            following = _Rows()
            after.push_upto(following, last)
            for device, samples in following.by.items():
                target = part if device in on or device not in devices else held
                for sample in samples:
                    target.push(device, sample)
            for d in ids:
                if d not in on:
                    held.by.setdefault(d, [])
                    del devices[d]
            part.finish()
            merge(builder, part)
    held_by = held.by
    if not held_by:
        return read
    before = Kept(held_by)
    lacking = sorted(held_by)
    batches = (
        [lacking[i : i + DEVICE_BATCH] for i in range(0, len(lacking), DEVICE_BATCH)]
        if len(lacking) <= RAW_DEVICES_MAX
        else [[]]
    )
    for batch in batches:
        look_up = in_time(statement(a - reach, a - margin, batch), order_desc=True)
        async for series in stream(writer, look_up):
            read += push_series(before, series)
    before.sort()
    for i in range(0, len(lacking), PART_DEVICES):
        ids = lacking[i : i + PART_DEVICES]
        part = builder.part({d: inventory[d] for d in ids}, (a, b))
        before.push_upto(part, ids[-1])
        for d in ids:
            for sample in held_by[d]:
                part.push(d, sample)
        part.finish()
        merge(builder, part)
    return read
