"""Monthly rollups per luminaire (``energy_monthly``): what a per-device report of a month reads.

**Why.** A report ``--by device`` needs one figure per luminaire. Summed by InfluxDB 1.x
(``sum(…) … GROUP BY "device_id"``) the answer is one series per luminaire, and InfluxDB pays per
series it answers whatever the points: over a month of 100,000 luminaires' daily points that is
~45 s, and even over one point per luminaire (this level) it took **35–37 s**, where a plain
``SELECT "device_id", "zone", "circuit", <fields>`` of the same 100,000 points, one series in
the answer with the tags as columns, took **3.7–4.7 s** (``bench/README.md``, "Energy for a
whole city": measured side by side on the same data). So the level holds one point per
luminaire per civil month, and it is read plainly, its rows summed by luxtel (a month's point is
already the month's sum: there is nothing left to add but the report's bins).

**What a point holds.** Per luminaire per civil month of ``energy.tz``, at the month's local
midnight: the sums of its daily points (``energy_daily``) — ``DAY_SUMMED``, integers but
``expected`` — ``max`` of ``via_counter``/``via_power``, ``hours`` (Σ the days' hours: the month's
hours when every day summed all its hours) and ``days`` (daily points summed). Tags ``device_id``,
``zone``, ``circuit``. InfluxDB computes it (``into_statement``: ``SELECT sum(…) INTO …
GROUP BY "device_id", "zone", "circuit"``), so its figures are the daily points' integers summed
exactly, which are the hourly points', which are the raw report's.

**When it is (re)written** (``energy.rollup_store.build_days``, after the days it rebuilt): a
month touched by those days once its last day has daily points — at the upkeep's close of that
day, and at every later rebuild of a day in it (a late reading, ``luxtel energy rollup``). The
current month gets no point until then.

**When a report may read it** (``take``): for a whole civil month of the report inside one bin
of each of its axes, at least ``edge_ms`` from its ends (as days, ``energy.rollup.plan``), and
only if every luminaire of the report's inventory has exactly one point there under its
inventory tags, summing all the month's hours; otherwise the month's days are read as before.
The baseline comes from the inventory read now (its W × the burning ms), as for any
per-luminaire level.

Clock: every time here is a reading's ``ts`` (Unix ms); nothing reads the wall clock.
"""

from __future__ import annotations

import bisect
import contextlib
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from zoneinfo import ZoneInfo

from energy.counters import MS_PER_H
from energy.inventory import Luminaire
from energy.periods import from_ms, local_midnight_ms
from energy.queries import checked, stream
from energy.report import ReportBuilder
from energy.rollup import (
    COMPLETE_FIELD,
    DAY_MEASUREMENT,
    DAY_SUMMED,
    SUMMED,
    add_sums,
    ceil_hour,
    floor_hour,
    within_one_bin,
)
from influx.client import InfluxWriter
from influx.errors import InfluxRejectedError

MONTH_MEASUREMENT = "energy_monthly"
READ = (*SUMMED, "via_counter", "via_power", "hours")
"""The fields a report reads of a month's point (``SUMMED`` includes ``COMPLETE_FIELD``)."""


def _next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def month_of(t_ms: int, tz: ZoneInfo) -> tuple[int, int]:
    """The civil month of ``tz`` holding ``t_ms``: its first and next month's local midnight."""
    first = from_ms(t_ms).astimezone(tz).date().replace(day=1)
    return local_midnight_ms(first, tz), local_midnight_ms(_next_month(first), tz)


def whole_months(start_ms: int, end_ms: int, tz: ZoneInfo) -> list[tuple[int, int]]:
    """The civil months of ``tz`` lying wholly inside ``[start_ms, end_ms)``."""
    out: list[tuple[int, int]] = []
    if end_ms <= start_ms:
        return out
    a, b = month_of(start_ms, tz)
    if a < start_ms:
        a, b = month_of(b, tz)
    while b <= end_ms:
        out.append((a, b))
        a, b = month_of(b, tz)
    return out


def months_touching(days: Iterable[tuple[int, int]], tz: ZoneInfo) -> list[tuple[int, int]]:
    """The civil months holding any of ``days`` (civil days of ``tz``), in time order."""
    return sorted({month_of(a, tz) for a, _ in days})


def candidate_months(
    start_ms: int, end_ms: int, axes: Iterable[Sequence[int]], edge_ms: float, tz: ZoneInfo
) -> list[tuple[int, int]]:
    """The months a report may read from monthly rollups: whole civil months at least
    ``edge_ms`` from its ends (as ``energy.rollup.candidate_days``), each inside one bin of
    every axis."""
    first, last = ceil_hour(int(start_ms + edge_ms)), floor_hour(int(end_ms - edge_ms))
    edge_lists = [list(edges) for edges in axes]
    return [
        (a, b)
        for a, b in whole_months(first, last, tz)
        if all(within_one_bin(edges, a, b) for edges in edge_lists)
    ]


def into_statement(retention_policy: str, start_ms: int, end_ms: int) -> str:
    """``SELECT sum(…) INTO energy_monthly`` over one civil month ``[start_ms, end_ms)`` of
    ``energy_daily``, per luminaire (InfluxDB stamps an aggregate without ``GROUP BY time``
    with the range's start: the month's local midnight)."""
    rp = f'"{checked("retention policy", retention_policy)}"'
    select = ", ".join(
        [f'sum("{name}") AS "{name}"' for name in DAY_SUMMED]
        + ['max("via_counter") AS "via_counter"', 'max("via_power") AS "via_power"']
        + ['sum("hours") AS "hours"', f'count("{COMPLETE_FIELD}") AS "days"']
    )
    where = f"time >= {start_ms * 1_000_000} AND time < {end_ms * 1_000_000}"
    # the names are constants or passed `checked`, the times integers: nothing is quoted through
    return (
        f'SELECT {select} INTO {rp}."{MONTH_MEASUREMENT}" FROM {rp}."{DAY_MEASUREMENT}" '  # noqa: S608
        f'WHERE {where} GROUP BY "device_id", "zone", "circuit"'
    )


def last_day_statement(retention_policy: str, month: tuple[int, int], tz: ZoneInfo) -> str:
    """Whether the last civil day of ``month`` has daily points (a count over that day; its
    points are at its local midnight)."""
    rp = f'"{checked("retention policy", retention_policy)}"'
    end = month[1]
    last = local_midnight_ms(from_ms(end - 1).astimezone(tz).date(), tz)
    return (
        f'SELECT count("{COMPLETE_FIELD}") FROM {rp}."{DAY_MEASUREMENT}" '  # noqa: S608
        f"WHERE time >= {last * 1_000_000} AND time < {end * 1_000_000}"
    )


def _statement(retention_policy: str, a: int, b: int, zones: Sequence[str]) -> str:
    rp = checked("retention policy", retention_policy)
    columns = ", ".join(f'"{name}"' for name in ("device_id", "zone", "circuit", *READ))
    where = [f"time >= {a * 1_000_000}", f"time < {b * 1_000_000}"]
    if zones:
        where.append("(" + " OR ".join(f"\"zone\" = '{checked('zone', z)}'" for z in zones) + ")")
    # Every name passed `checked` and the times are integers: nothing is quoted through.
    return f'SELECT {columns} FROM "{rp}"."{MONTH_MEASUREMENT}" WHERE {" AND ".join(where)}'  # noqa: S608


class MonthRows:
    """One month's rows kept compactly until every luminaire is known to be there (~250 bytes
    a luminaire: its id, twice, and ``len(READ)`` integers in an array), so a month that turns
    out incomplete adds nothing to the report. Pure: fed the rows as InfluxDB answers them."""

    def __init__(self, inventory: Mapping[str, Luminaire], hours: int) -> None:
        self.inventory = inventory
        self.hours = hours
        self.ids: list[str] = []
        self.seen: set[str] = set()
        self.values = array("q")
        self.refused = False
        """A row of one of the inventory's luminaires that cannot stand for its month: not
        all its hours, a second point, a figure that is not an integer (another schema)."""

    def add(self, record: Mapping[str, object]) -> bool:
        """Keep one row (a point's ``device_id``, ``zone``, ``circuit`` and ``READ``); a row
        of a luminaire not in the inventory, or under tags it no longer has there, is not its
        and is passed over. False once the month is refused."""
        lum = self.inventory.get(str(record.get("device_id")))
        if lum is None or (lum.zone, lum.circuit) != (record.get("zone"), record.get("circuit")):
            return not self.refused
        values = [record.get(name) for name in READ]
        if (
            record.get("hours") != self.hours
            or lum.device_id in self.seen
            or not all(type(v) is int for v in values)
        ):
            self.refused = True
        if not self.refused:
            self.ids.append(lum.device_id)
            self.seen.add(lum.device_id)
            self.values.extend(v for v in values if isinstance(v, int))
        return not self.refused

    def complete(self) -> bool:
        """Whether every luminaire of the inventory has its one point, all its hours."""
        return not self.refused and len(self.seen) == len(self.inventory)

    def sums(self) -> Iterator[tuple[str, dict[str, int]]]:
        """Each luminaire's kept figures by name."""
        width = len(READ)
        for k, device_id in enumerate(self.ids):
            yield device_id, dict(zip(READ, self.values[k * width : (k + 1) * width], strict=True))


async def take(
    writer: InfluxWriter,
    builder: ReportBuilder,
    month: tuple[int, int],
    retention_policy: str,
    zones: Sequence[str] = (),
) -> int:
    """Add the month's points to ``builder`` if every luminaire of its inventory has one under
    its inventory tags summing all the month's hours (``hours``, each a point of this schema);
    returns the luminaire-sums added (0: the month is read some other way)."""
    a, b = month
    inventory = builder.inventory
    hours = (b - a) // MS_PER_H
    kept = MonthRows(inventory, hours)
    answer = stream(writer, _statement(retention_policy, a, b, zones))
    try:
        async with contextlib.aclosing(answer):
            async for series in answer:
                for row in series.values:
                    if not kept.add(dict(zip(series.columns, row, strict=True))):
                        return 0
    except InfluxRejectedError as error:
        if "retention policy not found" in error.message:
            return 0
        raise
    if not kept.complete():
        return 0
    for name, axis in builder.axes.items():
        index = bisect.bisect_right(axis.edges, a) - 1
        for device_id, sums in kept.sums():
            add_sums(builder, name, index, device_id, sums)
    return len(kept.ids)
