"""InfluxQL for the reports and exports, built from validated identifiers only, and streamed.

Every name that reaches a statement — measurement, zone, device, field, tag — must match the
contract's identifier pattern (``models.is_identifier``): plain ``A-Za-z0-9_.:-``, no quotes,
spaces or backslashes. Anything else is refused with ``QueryError``, never quoted through, so a
zone or device name cannot inject InfluxQL. Times are integers (``ms``) written as nanoseconds.

Answers are read in time windows (``windows``) and, within a window, as InfluxDB's chunked
stream (``chunked=true``: one JSON document per line), so memory holds one chunk whatever the
period.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from influx.client import InfluxWriter
from influx.errors import (
    InfluxAuthError,
    InfluxDatabaseMissingError,
    InfluxRejectedError,
    InfluxUnavailableError,
)
from models.identifiers import is_identifier

DAY_MS = 86_400_000
CHUNK_SIZE = 10_000


class QueryError(ValueError):
    """A name that is not an identifier was given for a query: one sentence naming it."""


def checked(kind: str, name: str) -> str:
    """``name`` if it is an identifier, else QueryError naming ``kind``."""
    if not is_identifier(name):
        raise QueryError(
            f"{kind} {name!r} is not an identifier (1-64 of A-Za-z0-9_.:-, starting with a "
            "letter or digit)"
        )
    return name


def _ident(kind: str, name: str) -> str:
    return f'"{checked(kind, name)}"'


def _source(measurement: str, retention_policy: str | None) -> str:
    target = _ident("measurement", measurement)
    if retention_policy is None:
        return target
    return f"{_ident('retention policy', retention_policy)}.{target}"


def _any_of(tag: str, values: Sequence[str]) -> str:
    terms = [f"\"{tag}\" = '{checked(tag, value)}'" for value in values]
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


def select(
    measurement: str,
    columns: Sequence[str],
    start_ms: int,
    end_ms: int,
    *,
    zones: Sequence[str] = (),
    devices: Sequence[str] = (),
    group_by_device: bool = False,
    retention_policy: str | None = None,
) -> str:
    """``SELECT columns FROM measurement WHERE time in [start, end) …``; a column is a field
    name, or ``name::tag`` for a tag."""
    fields = []
    for column in columns:
        name, _, cast = column.partition("::")
        suffix = "::tag" if cast == "tag" else "::field" if cast == "field" else ""
        if cast not in ("", "tag", "field"):
            raise QueryError(f"column {column!r} must be a name, name::tag or name::field")
        fields.append(_ident("column", name) + suffix)
    if not fields:
        raise QueryError("a query needs at least one column")
    where = [f"time >= {start_ms * 1_000_000}", f"time < {end_ms * 1_000_000}"]
    if zones:
        where.append(_any_of("zone", zones))
    if devices:
        where.append(_any_of("device_id", devices))
    # Every name passed `checked` and the times are integers: nothing is quoted through.
    source, conditions = _source(measurement, retention_policy), " AND ".join(where)
    statement = f"SELECT {', '.join(fields)} FROM {source} WHERE {conditions}"  # noqa: S608
    return statement + (' GROUP BY "device_id"' if group_by_device else "")


def show_keys(kind: str, measurement: str, retention_policy: str | None = None) -> str:
    """``SHOW FIELD KEYS`` / ``SHOW TAG KEYS`` of one measurement."""
    if kind not in ("FIELD", "TAG"):
        raise QueryError(f"unknown key kind {kind!r}")
    return f"SHOW {kind} KEYS FROM {_source(measurement, retention_policy)}"


def windows(start_ms: int, end_ms: int, window_ms: int = DAY_MS) -> list[tuple[int, int]]:
    """``[start, end)`` cut into consecutive windows of at most ``window_ms``."""
    if window_ms <= 0:
        raise ValueError("a window must be longer than 0 ms")
    out = []
    t = start_ms
    while t < end_ms:
        out.append((t, min(t + window_ms, end_ms)))
        t += window_ms
    return out


@dataclass(frozen=True, slots=True)
class Series:
    """One piece of an answer: a series' tags, its columns and some of its rows."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]


async def stream(
    writer: InfluxWriter, statement: str, chunk_size: int = CHUNK_SIZE
) -> AsyncGenerator[Series, None]:
    """Run one statement with ``chunked=true`` and yield its series piece by piece."""
    params = {
        "db": writer.target.database,
        "q": statement,
        "epoch": "ms",
        "chunked": "true",
        "chunk_size": str(chunk_size),
    }
    if writer.target.retention_policy:
        params["rp"] = writer.target.retention_policy
    url = writer.target.url
    try:
        async with writer.session.get("query", params=params) as response:
            if response.status >= 300:
                _raise_status(response.status, await response.text(errors="replace"), writer)
            buffer = b""
            async for block in response.content.iter_chunked(1 << 16):
                buffer += block
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    for series in _series_of(line, url):
                        yield series
            for series in _series_of(buffer, url):
                yield series
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        reason = str(error) or type(error).__name__
        raise InfluxUnavailableError(f"InfluxDB at {url} unreachable: {reason}") from None


def _series_of(line: bytes, url: str) -> Iterable[Series]:
    if not line.strip():
        return []
    answer = orjson.loads(line)
    if "error" in answer:
        raise InfluxRejectedError(400, f"InfluxDB at {url}: {answer['error']}")
    out = []
    for result in answer.get("results", []):
        if "error" in result:
            raise InfluxRejectedError(400, f"InfluxDB at {url}: {result['error']}")
        for s in result.get("series", []):
            out.append(Series(s.get("name", ""), s.get("tags") or {}, s["columns"], s["values"]))
    return out


def _raise_status(status: int, text: str, writer: InfluxWriter) -> None:
    message = text.strip()[:500]
    with_url = f"InfluxDB at {writer.target.url}"
    if status in (401, 403):
        raise InfluxAuthError(f"{with_url} refused the credentials ({status}): {message}")
    if status == 404 and "database not found" in message:
        raise InfluxDatabaseMissingError(
            f"InfluxDB database {writer.target.database!r} does not exist: {message}"
        )
    if status == 429 or status >= 500:
        raise InfluxUnavailableError(f"{with_url} answered {status} to a query: {message}")
    raise InfluxRejectedError(status, message)


async def rows_of(writer: InfluxWriter, statement: str) -> list[Series]:
    """A small answer (``SHOW …``) in full."""
    return [series async for series in stream(writer, statement)]
