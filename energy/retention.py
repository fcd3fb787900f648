"""Retention policies on InfluxDB 1.x: raw telemetry for N days, rollups for the contract's life.

Raw readings stay where luxtel always wrote them (the contract's schema does not move): the
retention policy named by ``influx.retention_policy``, or the database's default one (``autogen``
on a database luxtel created). Its duration is *altered* to ``raw_retention_days``
(``ALTER RETENTION POLICY … DURATION 400d``): InfluxDB then drops whole shard groups once they
are older, so raw data older than that goes, rollups stay. The rollups get a policy of their own
(``CREATE RETENTION POLICY "rollups" ON db DURATION INF REPLICATION 1``, not the default), so no
query of raw telemetry ever sees them.

The rollup policy's shard groups are 52 weeks long (``SHARD DURATION 364d``; a finite policy's
as long as the policy itself when shorter), not InfluxDB's 7-day default for an infinite policy:
InfluxDB 1.x pays for every series × field × shard a query touches, so a month's report summing
the daily rollups of every luminaire reads one or two shards instead of five (a third of the
time, measured in ``bench/energy_rollups.py``). An existing policy is altered; its older shards
keep their length, new ones get the long one.

Both are checked at every start-up and set when they differ; 0 days means keep forever (INF).
InfluxDB 2.x and 3.x have no retention policies in this API: a bucket has one retention period.
There, give the raw bucket its retention (``influx bucket update --retention 400d``), make a
second bucket for the rollups and map it with ``influx v1 dbrp create --db <database> --rp
rollups --bucket-id …``; ``ensure_retention`` then reports that it could not check and carries on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiohttp

from energy.queries import checked
from influx.client import InfluxWriter
from influx.errors import InfluxUnavailableError

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class RetentionError(RuntimeError):
    """The retention policies could not be read or set: one sentence saying which."""


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    raw_days: int = 400
    """0: keep raw telemetry forever."""
    raw_policy: str | None = None
    """None: the database's default retention policy."""
    rollup_policy: str = "rollups"
    rollup_days: int = 0
    """0: keep rollups forever."""


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    hours: int
    """0: infinite."""
    default: bool
    shard_hours: int = 0
    """The shard group duration."""


ROLLUP_SHARD_DAYS = 364
"""The rollup policy's shard groups: 52 weeks (see the module's docstring)."""


def rollup_shard_days(rollup_days: int) -> int:
    """``ROLLUP_SHARD_DAYS``, or the policy's own duration when that is shorter (InfluxDB
    refuses shards longer than their policy)."""
    return ROLLUP_SHARD_DAYS if rollup_days == 0 else min(ROLLUP_SHARD_DAYS, rollup_days)


def hours_of(duration: str) -> int:
    """InfluxDB's ``9600h0m0s`` as hours; ``0s`` (infinite) as 0."""
    match = _DURATION.match(duration)
    if not match or not duration:
        raise RetentionError(f"unexpected retention duration {duration!r}")
    h, m, s = (int(g or 0) for g in match.groups())
    return h + (m * 60 + s) // 3600


def _duration(days: int) -> str:
    return "INF" if days == 0 else f"{days}d"


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def policies(writer: InfluxWriter) -> dict[str, Policy]:
    statement = f"SHOW RETENTION POLICIES ON {_quote(writer.target.database)}"
    answer = await writer.query(statement)
    out: dict[str, Policy] = {}
    for result in answer.get("results", []):
        for series in result.get("series", []):
            columns = series["columns"]
            for values in series["values"]:
                row = dict(zip(columns, values, strict=True))
                out[row["name"]] = Policy(
                    row["name"],
                    hours_of(row["duration"]),
                    row["default"],
                    hours_of(row.get("shardGroupDuration") or "0s"),
                )
    return out


async def ensure_retention(writer: InfluxWriter, config: RetentionConfig) -> list[str]:
    """Create or alter the two policies as ``config`` says; returns the statements run
    (empty when everything already was so). Raises RetentionError when there is no raw policy
    to alter, and the InfluxDB errors of ``InfluxWriter.query`` as they come."""
    db = _quote(writer.target.database)
    found = await policies(writer)
    done: list[str] = []
    if config.raw_policy is not None:
        raw = found.get(checked("retention policy", config.raw_policy))
    else:
        raw = next((p for p in found.values() if p.default), None)
    if raw is None:
        raise RetentionError(
            f"database {writer.target.database!r} has no retention policy "
            f"{config.raw_policy or '(default)'} for raw telemetry"
        )
    if raw.hours != config.raw_days * 24:
        done.append(
            f"ALTER RETENTION POLICY {_quote(raw.name)} ON {db} "
            f"DURATION {_duration(config.raw_days)}"
        )
    name = checked("retention policy", config.rollup_policy)
    rollup = found.get(name)
    shard_days = rollup_shard_days(config.rollup_days)
    if rollup is None:
        done.append(
            f"CREATE RETENTION POLICY {_quote(name)} ON {db} "
            f"DURATION {_duration(config.rollup_days)} REPLICATION 1 SHARD DURATION {shard_days}d"
        )
    elif rollup.hours != config.rollup_days * 24 or rollup.shard_hours != shard_days * 24:
        done.append(
            f"ALTER RETENTION POLICY {_quote(name)} ON {db} "
            f"DURATION {_duration(config.rollup_days)} SHARD DURATION {shard_days}d"
        )
    for statement in done:
        await post_statement(writer, statement)
    return done


async def post_statement(writer: InfluxWriter, statement: str) -> None:
    """A statement that changes the schema or deletes (InfluxDB 1.x wants them POSTed);
    RetentionError when refused."""
    try:
        params = {"q": statement, "db": writer.target.database}
        async with writer.session.post("query", params=params) as response:
            text = await response.text(errors="replace")
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise InfluxUnavailableError(
            f"InfluxDB at {writer.target.url} unreachable: {error or type(error).__name__}"
        ) from None
    if status >= 300 or '"error"' in text:
        raise RetentionError(f"InfluxDB refused {statement!r} ({status}): {text.strip()[:300]}")
