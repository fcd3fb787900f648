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

from rules.evaluation.alerts import Alert
from rules.runtime.store import GivenUp

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
        f"{listing.silences} active silence(s)"
    )
    if listing.given_up:
        console.print(
            f"{len(listing.given_up)} notification(s) failed for good (not retried; fix the "
            "receiver):"
        )
        for item in listing.given_up:
            where = f"{item.receiver} ({item.kind}" + (
                f" URL #{item.index})" if item.kind == "apprise" else ")"
            )
            when = item.gave_up_at.strftime("%Y-%m-%d %H:%M")
            console.print(f"  {when} {where}: {item.error}", markup=False)


def chosen_columns(records: Sequence[dict[str, str]], width: int) -> dict[str, int]:
    """The columns that fit `width` and the width of each, in display order: the first ones
    of `_PRIORITY` that fit, each as wide as its widest cell (or header), the summary taking
    what is left (at least 24). Between two columns go 3 characters: padding, rule, padding."""
    need = {name: max([len(name), *(len(r[name]) for r in records)]) for name in COLUMNS}
    need["device_id"] = max(need["device_id"], len("device"))
    kept: set[str] = set()
    used = -3
    for name in _PRIORITY:
        cost = (min(need[name], _SUMMARY_MIN) if name == "summary" else need[name]) + 3
        if name not in ("id", "state") and used + cost > width:
            break
        kept.add(name)
        used += cost
    out = {name: need[name] for name in COLUMNS if name in kept}
    if "summary" in out:
        rest = width - sum(w + 3 for n, w in out.items() if n != "summary")
        out["summary"] = max(min(need["summary"], rest), 1)
    return out


def table(records: Sequence[dict[str, str]], width: int) -> Table:
    """The alerts as a table at most `width` wide, one line per alert."""
    out = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    columns = chosen_columns(records, width)
    for name, size in columns.items():
        out.add_column(
            "device" if name == "device_id" else name,
            no_wrap=True,
            overflow="ellipsis",
            width=size,
        )
    for record in records:
        out.add_row(*(record[name] for name in columns))
    return out
