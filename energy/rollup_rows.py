"""Per-luminaire rollup points read as plain rows and summed here, per luminaire.

**Why.** ``sum(…) … GROUP BY "device_id"`` makes InfluxDB 1.x answer one series per luminaire,
and it pays per series whatever the points; so does the ``count … GROUP BY time(1h)`` that
first says which days hold every luminaire: a per-device report of 30 days of 100,000
luminaires' daily points took 50–60 s, 64–66 s of it InfluxDB's CPU. A plain ``SELECT
"device_id", <fields>`` of the same points is one series in the answer, the tag a column, and
costs per point instead (``bench/README.md``, "Energy for a whole city", session 8: 25 s). So
where a luminaire has few points in a span (``PLAIN_POINTS``: days of ``energy_daily``, a
partial day's hours of ``energy_hourly``) they are read plainly, streamed, and summed here into
one array, and the same rows say which spans hold every luminaire (``DeviceSums.found``); with
more (a month of hours where the daily level is missing) InfluxDB's per-point summing is
cheaper and the grouped query stays (``energy.rollup_sums``).

**Exactness.** The figures are integers (``SUMMED``: sums; ``via_counter``/``via_power``: max),
so summing them here in any order gives what InfluxDB's ``sum``/``max`` answer, bit for bit; a
figure that is not an integer (a point of another schema) is refused as ``energy.rollup.integer``
refuses InfluxDB's sum of it.

Clock: every time here is a reading's ``ts`` (Unix ms); nothing reads the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from energy.counters import MS_PER_H
from energy.queries import stream
from energy.report import ReportBuilder
from energy.rollup import COMPLETE_FIELD, SUMMED, add_sums
from energy.rollup_statements import sums_statement
from energy.rollup_store import RollupConfig
from influx.client import InfluxWriter

FLAGS = ("via_counter", "via_power")
"""The method flags, ``max`` over the points (0 or 1)."""
READ = (*SUMMED, *FLAGS)
PLAIN_POINTS = 48
"""At most this many points per luminaire in a span (per its hours or days): read plainly and
summed here; more: summed by InfluxDB per luminaire. Measured at 100,000 luminaires (session 8,
19 and 30 daily points each): grouped, 0.39 ms of InfluxDB's CPU a luminaire plus ~0.29 ms for
the ``count`` that checks the span first; plain, 8.5 µs of InfluxDB's and ~2.7 µs of luxtel's
a point, over two cores: even at ~50 points."""
PLAIN_CHUNK = 2000
"""Rows a piece of a plain answer holds (InfluxDB's ``chunk_size``): two pieces parsed at once
are ~10 MB of Python objects; at 10,000 a report of 30 days of 100,000 luminaires peaked at
327 MiB, at 2,000 at 274 MiB (session 8)."""
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
        self.hours: dict[int, list[int]] = {}
        """Per UTC hour of the rows' ``time`` (as ``GROUP BY time(1h)`` buckets them): how many
        hold ``COMPLETE_FIELD`` and the least ``hours`` among them (-1: none), which say
        whether a span's level holds every luminaire (``found``)."""

    def found(self, t_ms: int) -> tuple[int, int]:
        """What ``count(COMPLETE_FIELD), min("hours") … GROUP BY time(1h)`` answers for the
        hour of ``t_ms`` (0 for none)."""
        count, least = self.hours.get(t_ms - t_ms % MS_PER_H, (0, -1))
        return count, max(least, 0)

    def add(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Add rows holding ``device_id`` and the ``READ`` columns (a missing or null figure
        counts as none, as InfluxDB's aggregates skip nulls)."""
        at = columns.index("device_id")
        width, summed = len(READ), len(SUMMED)
        picks = [(k, columns.index(name)) for k, name in enumerate(READ) if name in columns]
        slot, values, ids, hours = self._slot, self.values, self.ids, self.hours
        when = columns.index("time") if "time" in columns else -1
        complete = columns.index(COMPLETE_FIELD) if COMPLETE_FIELD in columns else -1
        whole = columns.index("hours") if "hours" in columns else -1
        for row in rows:
            if when >= 0 and complete >= 0 and row[complete] is not None:
                t = row[when]
                stat = hours.get(t - t % MS_PER_H)
                if stat is None:
                    stat = hours[t - t % MS_PER_H] = [0, -1]
                stat[0] += 1
                got = row[whole] if whole >= 0 else None
                if type(got) is int and (stat[1] < 0 or got < stat[1]):
                    stat[1] = got
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


async def read_plain(
    writer: InfluxWriter,
    spans: Sequence[tuple[int, int]],
    config: RollupConfig,
    measurement: str,
    zones: Sequence[str],
    extra: Sequence[str] = (),
) -> DeviceSums:
    """``measurement``'s points over ``spans`` read plainly (``device_id``, ``READ`` and
    ``extra`` columns) and summed per luminaire: one query per stretch of consecutive spans,
    ``PLAIN_STREAMS`` queries at once, each over some of the spans."""
    kept = DeviceSums()
    select_list = ", ".join(f'"{name}"' for name in ("device_id", *READ, *extra))

    async def read(part: Sequence[tuple[int, int]]) -> None:
        for a, b in stretches(part):
            statement = sums_statement(config, a, b, zones, select_list, "", measurement)
            answer = stream(writer, statement, chunk_size=PLAIN_CHUNK)
            async with contextlib.aclosing(answer):
                async for series in answer:
                    kept.add(series.columns, series.values)

    ordered = sorted(spans)
    size = max(1, -(-len(ordered) // PLAIN_STREAMS))
    try:
        async with asyncio.TaskGroup() as group:
            for i in range(0, len(ordered), size):
                part = ordered[i : i + size]
                group.create_task(read(part), name=f"rollup-rows-{measurement}-{part[0][0]}")
    except ExceptionGroup as failed:  # the first failure, as one query would raise it
        raise failed.exceptions[0] from None
    return kept


def stretches(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Consecutive ``spans`` (sorted) joined."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def hour_stretches(hours: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive hours (their starts) joined."""
    return stretches([(h, h + MS_PER_H) for h in hours])


def add_kept(builder: ReportBuilder, axis: str, index: int, kept: DeviceSums) -> int:
    """Add ``kept``'s sums to bin ``index`` of ``axis``; returns the luminaire-sums added."""
    added = 0
    for device_id, sums in kept.sums():
        added += add_sums(builder, axis, index, device_id, sums)
    return added
