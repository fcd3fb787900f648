"""Raw time series of one measurement to CSV or Parquet, streamed window by window.

The columns are learnt first (``SHOW TAG KEYS`` / ``SHOW FIELD KEYS``), so the file has one fixed
schema however the points vary: ``time`` (UTC, ms), the tags, then the fields. Keys that are
not identifiers (written by another tool) are left out and named in ``Export.skipped``: they
cannot be put in a query without quoting them through. Memory holds one chunk of the answer.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from energy.periods import rfc3339
from energy.queries import checked, rows_of, select, show_keys, stream, windows
from influx.client import InfluxWriter
from models.identifiers import is_identifier

Format = Literal["csv", "parquet"]

_ARROW_TYPES = {
    "float": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
}


@dataclass(slots=True)
class Export:
    """What an export wrote."""

    points: int = 0
    columns: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class _Sink(Protocol):
    def write(self, rows: list[list[Any]]) -> None: ...
    def close(self) -> None: ...


class _CsvSink:
    def __init__(self, path: Path, columns: list[str]) -> None:
        self._fh = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(columns)

    def write(self, rows: list[list[Any]]) -> None:
        for row in rows:
            self._writer.writerow(
                [
                    rfc3339(v)
                    if i == 0
                    else ("true" if v else "false")
                    if isinstance(v, bool)
                    # repr keeps every digit of a float; None is an empty cell
                    else ""
                    if v is None
                    else repr(v)
                    if isinstance(v, float)
                    else v
                    for i, v in enumerate(row)
                ]
            )

    def close(self) -> None:
        self._fh.close()


class _ParquetSink:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._schema = schema
        self._writer = pq.ParquetWriter(str(path), schema, compression="zstd")

    def write(self, rows: list[list[Any]]) -> None:
        if not rows:
            return
        arrays = [
            pa.array([row[i] for row in rows], type=self._schema.field(i).type)
            for i in range(len(self._schema))
        ]
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


async def export_series(
    writer: InfluxWriter,
    measurement: str,
    start_ms: int,
    end_ms: int,
    path: Path,
    fmt: Format,
    *,
    zones: Sequence[str] = (),
    devices: Sequence[str] = (),
    window_ms: int = 86_400_000,
    advance: Callable[[int, int], None] | None = None,
) -> Export:
    """Write ``measurement`` over ``[start_ms, end_ms)`` to ``path``; ``advance(ms, points)``
    is called after each window. Raises ``QueryError`` for a name that is not an identifier."""
    checked("measurement", measurement)
    rp = writer.target.retention_policy
    result = Export()
    tags, fields = [], []
    for series in await rows_of(writer, show_keys("TAG", measurement, rp)):
        tags += [str(v[0]) for v in series.values]
    for series in await rows_of(writer, show_keys("FIELD", measurement, rp)):
        fields += [(str(v[0]), str(v[1])) for v in series.values]
    result.skipped = [k for k in [*tags, *(f for f, _ in fields)] if not is_identifier(k)]
    tags = sorted(k for k in set(tags) if is_identifier(k))
    kinds: dict[str, str] = {}
    for key, kind in fields:
        if is_identifier(key):
            kinds.setdefault(key, kind)
    fields = sorted(kinds.items())
    columns = [f"{t}::tag" for t in tags] + [f"{f}::field" for f, _ in fields]
    result.columns = ["time", *tags, *(f for f, _ in fields)]
    sink: _Sink
    if fmt == "parquet":
        schema = pa.schema(
            [pa.field("time", pa.timestamp("ms", tz="UTC"))]
            + [pa.field(t, pa.string()) for t in tags]
            + [pa.field(f, _ARROW_TYPES.get(kind, pa.string())) for f, kind in fields]
        )
        sink = _ParquetSink(path, schema)
    else:
        sink = _CsvSink(path, result.columns)
    try:
        for a, b in windows(start_ms, end_ms, window_ms):
            before = result.points
            if columns:
                statement = select(
                    measurement,
                    columns,
                    a,
                    b,
                    zones=zones,
                    devices=devices,
                    retention_policy=rp,
                )
                async for series in stream(writer, statement):
                    order = [series.columns.index(c) for c in result.columns]
                    rows = [[row[i] for i in order] for row in series.values]
                    sink.write(rows)
                    result.points += len(rows)
            if advance is not None:
                advance(b - a, result.points - before)
    finally:
        sink.close()
    return result
