"""The half-hourly "equivalent meter" per circuit, for unmetered-supply settlement.

UK settlement works in half-hour periods: an unmetered circuit's consumption is declared per
settlement period as if a meter had recorded it. Here the half-hours hold what the luminaires'
own counters measured (shared in proportion to time where a reading interval crosses a
half-hour), with the completeness of the data behind each figure and ``estimated`` set when a
gap, a reset or missing data touches it — the half-hours a settlement agent must check.
"""

from __future__ import annotations

import csv
from pathlib import Path

from energy.periods import rfc3339
from energy.report import ReportBuilder

COLUMNS = (
    "circuit",
    "settlement_date",
    "settlement_period",
    "start_utc",
    "end_utc",
    "kwh",
    "luminaires",
    "readings",
    "expected",
    "completeness_pct",
    "method",
    "estimated",
)


def write_settlement(path: Path, builder: ReportBuilder, axis: str = "settlement") -> int:
    """Write the circuit × half-hour table as CSV; returns the rows written."""
    edges = builder.axes[axis].edges
    rows = builder.rows(axis)
    path.parent.mkdir(parents=True, exist_ok=True)
    bins = len(edges) - 1
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for n, row in enumerate(rows):
            index = n % bins
            day, _, number = row.period.partition("/")
            writer.writerow(
                (
                    row.key,
                    day,
                    int(number),
                    rfc3339(edges[index]),
                    rfc3339(edges[index + 1]),
                    f"{row.metered_kwh:.6f}",
                    row.devices,
                    row.readings,
                    f"{row.expected:.1f}",
                    "" if row.completeness_pct is None else f"{row.completeness_pct:.1f}",
                    row.method,
                    "true" if row.gap else "false",
                )
            )
    return len(rows)
