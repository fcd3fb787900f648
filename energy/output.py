"""Report rows out: a table for people, CSV, JSON or Parquet for programs."""

from __future__ import annotations

import csv
import dataclasses
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson
from rich import box
from rich.console import Console
from rich.table import Table

from energy.report import Row

FIELDS = [f.name for f in dataclasses.fields(Row)]


def _records(rows: Sequence[Row], by: str) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        record = dataclasses.asdict(row)
        record[by] = record.pop("key")
        if by in ("day", "month"):
            record.pop("period")
        out.append(record)
    return out


def _columns(by: str) -> list[str]:
    columns = [by if name == "key" else name for name in FIELDS]
    return [c for c in columns if not (by in ("day", "month") and c == "period")]


def _write_csv(rows: Iterable[Row], by: str, columns: list[str], out: TextIO) -> None:
    """The rows as CSV, ``columns`` in order (the key under ``by``; an empty cell for none)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    names = ["key" if c == by else c for c in columns]
    for row in rows:
        values = (getattr(row, name) for name in names)
        writer.writerow(["" if v is None else v for v in values])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def write_rows(rows: Iterable[Row], by: str, fmt: str, output: Path | None) -> None:
    """Write the rows as ``table``, ``csv``, ``json`` or ``parquet`` to ``output`` or stdout;
    CSV row by row as they come (a city's report by device: 100,000 rows never all held)."""
    columns = _columns(by)
    if fmt == "csv":
        if output is None:
            _write_csv(rows, by, columns, sys.stdout)
        else:
            with output.open("w", encoding="utf-8", newline="") as fh:
                _write_csv(rows, by, columns, fh)
        return
    records = _records(list(rows), by)
    if fmt == "parquet":
        if output is None:
            raise ValueError("parquet needs an output file")
        # Imported when used: pyarrow costs every luxtel process (`luxtel run` too) ~30 MB.
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), str(output))
        return
    if fmt == "json":
        data = orjson.dumps(records, option=orjson.OPT_INDENT_2) + b"\n"
        _emit(data.decode(), output)
        return
    if output is None:
        console = Console(highlight=False)
        console.print(_table(records, columns, by, console.width))
    else:
        with output.open("w", encoding="utf-8") as fh:
            Console(file=fh, width=240).print(_table(records, columns, by, 240))


_PRIORITY = (
    "devices",
    "metered_kwh",
    "savings_kwh",
    "savings_pct",
    "completeness_pct",
    "baseline_kwh",
    "burning_h",
    "co2_avoided_kg",
    "gap",
    "verified_kwh",
    "unverified_kwh",
    "mean_dim_pct",
    "readings",
    "expected",
    "resets",
    "method",
)
"""Which columns a narrow table keeps, after the row's key (the whole report: csv or json)."""


def _table(records: list[dict[str, Any]], columns: list[str], by: str, width: int) -> Table:
    """The report at most `width` wide: every cell on one line, the first columns of
    `_PRIORITY` that fit (3 characters between two), a caption naming what was left out."""
    cells = [{c: _cell(r[c]) for c in columns} for r in records]
    need = {c: max([len(c), *(len(row[c]) for row in cells)]) for c in columns}
    wanted = [by, *(c for c in _PRIORITY if c in need)]
    kept: list[str] = []
    used = -3
    for column in wanted:
        cost = (min(need[column], 12) if column == by else need[column]) + 3
        if kept and used + cost > width:
            break
        kept.append(column)
        used += cost
    shown = [c for c in columns if c in kept]
    key_width = min(need[by], min(need[by], 12) + max(0, width - used))
    left_out = len([c for c in columns if c != "period"]) - len(shown)
    table = Table(
        title="Energy report",
        caption=f"{left_out} more column(s): a wider terminal, or --format csv|json"
        if left_out
        else None,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for column in shown:
        table.add_column(
            column,
            justify="left" if column in (by, "method") else "right",
            no_wrap=True,
            overflow="ellipsis",
            width=key_width if column == by else need[column],
        )
    for row in cells:
        table.add_row(*(row[c] for c in shown))
    return table


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
