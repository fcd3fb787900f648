"""Per-luminaire rollup points read as plain rows and summed here, per luminaire.

**Why.** ``sum(…) … GROUP BY "device_id"`` makes InfluxDB 1.x answer one series per luminaire,
and it pays per series whatever the points: a per-device report of 30 days of 100,000
luminaires' daily points took ~45 s that way. A plain ``SELECT "device_id", <fields>`` of the
same points is one series in the answer, the tag a column, and costs per point instead
(``bench/README.md``, "Energy for a whole city", session 8). So where a luminaire has few points
in a span (``PLAIN_POINTS``: days of ``energy_daily``, a partial day's hours of
``energy_hourly``) they are read plainly, streamed, and summed here into one array; with more
(a month of hours where the daily level is missing) InfluxDB's per-point summing is cheaper and
the grouped query stays.

**Exactness.** The figures are integers (``SUMMED``: sums; ``via_counter``/``via_power``: max),
so summing them here in any order gives what InfluxDB's ``sum``/``max`` answer, bit for bit; a
figure that is not an integer (a point of another schema) is refused as ``energy.rollup.integer``
refuses InfluxDB's sum of it.

Clock: every time here is a reading's ``ts`` (Unix ms); nothing reads the wall clock.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from energy.queries import stream
from energy.report import ReportBuilder
from energy.rollup import SUMMED, add_sums
from energy.rollup_statements import sums_statement
from energy.rollup_store import RollupConfig
from influx.client import InfluxWriter

FLAGS = ("via_counter", "via_power")
"""The method flags, ``max`` over the points (0 or 1)."""
READ = (*SUMMED, *FLAGS)
PLAIN_POINTS = 48
"""At most this many points per luminaire in a span (per its hours or days): read plainly and
summed here; more: summed by InfluxDB per luminaire. Measured at 100,000 luminaires (session 8):
grouped ~0.5 ms a luminaire whatever its points, plain ~2-3 µs a point on each side."""
PLAIN_STREAMS = 2
"""Plain queries over one run read at once, each over some of its spans: InfluxDB 1.x answers
a query on one core, so two use both of a 2-core machine's (session 8)."""


class DeviceSums:
    """Each luminaire's sums of the rows fed (``READ`` by name, as InfluxDB's ``sum``/``max``
    answer them per ``device_id``), in one array: ``len(READ)`` integers a luminaire that has
    rows. Pure: fed the rows of a plain query as InfluxDB answers them, in any order."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._slot: dict[str, int] = {}
        self.values = array("q")
        self.rows = 0

    def add(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Add rows holding ``device_id`` and the ``READ`` columns (a missing or null figure
        counts as none, as InfluxDB's aggregates skip nulls)."""
        at = columns.index("device_id")
        width, summed = len(READ), len(SUMMED)
        picks = [(k, columns.index(name)) for k, name in enumerate(READ) if name in columns]
        slot, values, ids = self._slot, self.values, self.ids
        for row in rows:
            device = row[at]
            base = slot.get(device)
            if base is None:
                if not isinstance(device, str):
                    raise ValueError(f"a rollup row without a device_id: {row!r}")
                base = slot[device] = len(ids) * width
                ids.append(device)
                values.extend(bytes(8 * width))
            for k, column in picks:
                value = row[column]
                if type(value) is not int:
                    if value is None:
                        continue
                    raise ValueError(f"rollup field {READ[k]!r} is not an integer: {value!r}")
                if k < summed:
                    values[base + k] += value
                elif value > values[base + k]:
                    values[base + k] = value
            self.rows += 1

    def sums(self) -> Iterator[tuple[str, dict[str, int]]]:
        """Each luminaire's figures by name, in the order first seen."""
        width = len(READ)
        for k, device_id in enumerate(self.ids):
            yield device_id, dict(zip(READ, self.values[k * width : (k + 1) * width], strict=True))


async def add_plain(
    writer: InfluxWriter,
    builder: ReportBuilder,
    axis: str,
    spans: Sequence[tuple[int, int]],
    config: RollupConfig,
    measurement: str,
    zones: Sequence[str],
) -> int:
    """Add each luminaire's sums over ``spans`` (consecutive, inside one bin of ``axis``) of
    ``measurement``'s points, read plainly (``PLAIN_STREAMS`` queries at once, each over some
    of the spans) and summed here; returns the luminaire-sums added."""
    kept = DeviceSums()
    select_list = ", ".join(f'"{name}"' for name in ("device_id", *READ))

    async def read(a: int, b: int) -> None:
        statement = sums_statement(config, a, b, zones, select_list, "", measurement)
        answer = stream(writer, statement)
        async with contextlib.aclosing(answer):
            async for series in answer:
                kept.add(series.columns, series.values)

    ordered = sorted(spans)
    size = -(-len(ordered) // PLAIN_STREAMS)
    async with asyncio.TaskGroup() as group:
        for i in range(0, len(ordered), size):
            a, b = ordered[i][0], ordered[min(i + size, len(ordered)) - 1][1]
            group.create_task(read(a, b), name=f"rollup-rows-{measurement}-{a}")
    index = bisect.bisect_right(builder.axes[axis].edges, ordered[0][0]) - 1
    added = 0
    for device_id, sums in kept.sums():
        added += add_sums(builder, axis, index, device_id, sums)
    return added
