"""InfluxQL over the rollup levels: sums of a span of points, filtered by zone and by
(zone, circuit), grouped as asked.

Every name passes ``checked`` and every time is an integer, so nothing is quoted through.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from energy.queries import checked
from energy.rollup import MEASUREMENT
from energy.rollup_groups import Group

if TYPE_CHECKING:
    from energy.rollup_store import RollupConfig

GROUP_BATCH = 100
"""(zone, circuit) pairs named in one filtered query."""


def sums_statement(
    config: RollupConfig,
    a: int,
    b: int,
    zones: Sequence[str],
    select_list: str,
    group: str,
    measurement: str = MEASUREMENT,
    groups: Sequence[Group] = (),
) -> str:
    """``SELECT select_list FROM measurement`` (in the rollup policy) over ``[a, b)``, of
    ``zones`` and ``groups`` when given, ``GROUP BY group`` (none when empty)."""
    where = [f"time >= {a * 1_000_000}", f"time < {b * 1_000_000}"]
    if zones:
        where.append("(" + " OR ".join(f"\"zone\" = '{checked('zone', z)}'" for z in zones) + ")")
    if groups:
        where.append("(" + " OR ".join(_group_term(g) for g in groups) + ")")
    source = f'"{checked("retention policy", config.retention_policy)}"."{measurement}"'
    # Every name passed `checked` and the times are integers: nothing is quoted through.
    statement = f"SELECT {select_list} FROM {source} WHERE {' AND '.join(where)}"  # noqa: S608
    return f"{statement} GROUP BY {group}" if group else statement


def _group_term(group: Group) -> str:
    zone, circuit = checked("zone", group[0]), checked("circuit", group[1])
    return f"(\"zone\" = '{zone}' AND \"circuit\" = '{circuit}')"


def group_batches(wanted: Collection[Group], every: Collection[Group]) -> list[Sequence[Group]]:
    """Filters naming ``wanted`` groups, ``GROUP_BATCH`` a query; one without a filter when
    they are all the groups there are."""
    if not wanted:
        return []
    if set(every) <= set(wanted):
        return [()]
    ordered = sorted(wanted)
    return [ordered[i : i + GROUP_BATCH] for i in range(0, len(ordered), GROUP_BATCH)]
