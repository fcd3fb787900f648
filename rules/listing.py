"""`luxtel alerts list` out: a table that fits the terminal, or CSV / JSON for scripts.

The table keeps to the console's width (a terminal's, else `COLUMNS`, else 80): every cell on
one line, cut with an ellipsis, and the columns a crew needs least (since, severity, zone…)
left out when they do not fit; `--format csv|json` carries every field. Times are UTC as
stored (the alert's `active_at`, the outbox's `gave_up_at`).
"""

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from rich import box
from rich.console import Console
from rich.table import Table

from rules.alerts import Alert
from rules.store import GivenUp

Format = Literal["table", "json", "csv"]

COLUMNS = ("id", "state", "rule", "severity", "zone", "device_id", "since", "summary")
_PRIORITY = ("id", "state", "device_id", "summary", "rule", "zone", "severity", "since")
"""Which columns a narrow table keeps first."""
_SUMMARY_MIN = 24


@dataclass(frozen=True, slots=True)
class Listing:
    alerts: Sequence[Alert]
    acked: frozenset[str]
    given_up: Sequence[GivenUp]
    unsent: int
    failed_attempts: int
    silences: int


def _record(alert: Alert, acked: frozenset[str]) -> dict[str, str]:
    return {
        "id": alert.id,
        "state": alert.state + (" (acked)" if alert.id in acked else ""),
        "rule": alert.rule,
        "severity": alert.severity,
        "zone": alert.zone,
        "device_id": alert.device_id,
        "since": alert.active_at.strftime("%Y-%m-%d %H:%M"),
        "summary": alert.summary,
    }


def _given_up_record(item: GivenUp) -> dict[str, Any]:
    return {
        "receiver": item.receiver,
        "kind": item.kind,
        "index": item.index,
        "created_at": item.created_at.isoformat(),
        "gave_up_at": item.gave_up_at.isoformat(),
        "attempts": item.attempts,
        "error": item.error,
    }


def render(listing: Listing, fmt: Format, console: Console) -> None:
    records = [_record(a, listing.acked) for a in listing.alerts]
    if fmt == "json":
        data = {
            "alerts": records,
            "failed_for_good": [_given_up_record(g) for g in listing.given_up],
            "unsent": listing.unsent,
            "failed_attempts": listing.failed_attempts,
            "active_silences": listing.silences,
        }
        console.file.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        console.file.write(buffer.getvalue())
        return
    console.print(table(records, console.width))
    console.print(
        f"{listing.unsent} notification(s) or point(s) waiting to be delivered, "
        f"{listing.failed_attempts} failed attempt(s) so far; "
        f"{listing.silences} active silence(s)",
        soft_wrap=True,
    )
    if listing.given_up:
        console.print(
            f"{len(listing.given_up)} notification(s) failed for good (not retried; fix the "
            "receiver):",
            soft_wrap=True,
        )
        for item in listing.given_up:
            where = f"{item.receiver} ({item.kind}" + (
                f" URL #{item.index})" if item.kind == "apprise" else ")"
            )
            when = item.gave_up_at.strftime("%Y-%m-%d %H:%M")
            console.print(f"  {when} {where}: {item.error}", soft_wrap=True, markup=False)


def chosen_columns(records: Sequence[dict[str, str]], width: int) -> list[str]:
    """The columns that fit `width`, in display order: by `_PRIORITY`, each costing its
    widest cell (or header) plus 3 for padding and rule, the summary at least 24."""
    need = {name: max([len(name), *(len(r[name]) for r in records)]) + 3 for name in COLUMNS}
    need["summary"] = min(need["summary"], _SUMMARY_MIN + 3)
    kept: set[str] = set()
    used = 1
    for name in _PRIORITY:
        if used + need[name] > width and name not in ("id", "state"):
            continue
        kept.add(name)
        used += need[name]
    return [name for name in COLUMNS if name in kept]


def table(records: Sequence[dict[str, str]], width: int) -> Table:
    """The alerts as a table at most `width` wide, one line per alert."""
    out = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    columns = chosen_columns(records, width)
    for name in columns:
        flexible = name == "summary"
        out.add_column(
            "device" if name == "device_id" else name,
            no_wrap=True,
            overflow="ellipsis",
            min_width=_SUMMARY_MIN if flexible else None,
            ratio=1 if flexible else None,
        )
    for record in records:
        out.add_row(*(record[name] for name in columns), end_section=False)
    return out
