"""The luminaire inventory as the energy reports read it: the rows of `models.inventory` (the
one parser of the contract's CSV, strict, each error with its line), keyed by device id and
projected onto what the energy arithmetic uses.

Why a projection: a validated `models.inventory.Luminaire` (a frozen pydantic model) costs
~1.35 KiB; at 100,000 luminaires that was 135 MiB of a `--by device` report's 437 MiB peak
(`bench/README.md`, "Energy for a whole city"). This one holds five fields in slots, its zone
and circuit names shared between rows (`sys.intern`): ~0.2 KiB a luminaire. Rows are projected
as they are read, so the full rows are never all held at once.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from models import inventory as rows
from models.inventory import INVENTORY_COLUMNS, InventoryError

COLUMNS = INVENTORY_COLUMNS

__all__ = ["COLUMNS", "InventoryError", "Luminaire", "parse_inventory", "read_inventory"]


@dataclass(frozen=True, slots=True)
class Luminaire:
    """What the energy reports and rollups need of one inventory row."""

    device_id: str
    zone: str
    circuit: str
    baseline_power_w: float
    """The replaced lamp's W: each luminaire's own baseline."""
    report_interval_s: int

    @classmethod
    def of(cls, row: rows.Luminaire) -> Luminaire:
        return cls(
            row.device_id,
            sys.intern(row.zone),
            sys.intern(row.circuit),
            float(row.baseline_power_w),
            row.report_interval_s,
        )


def _keyed(found: Iterator[rows.Luminaire]) -> dict[str, Luminaire]:
    return {row.device_id: Luminaire.of(row) for row in found}


def read_inventory(path: Path) -> dict[str, Luminaire]:
    """The inventory at ``path`` keyed by device id; InventoryError naming a bad row's line."""
    return _keyed(rows.read_rows(path))


def parse_inventory(lines: Iterable[str], name: str = "inventory") -> dict[str, Luminaire]:
    """Inventory CSV text (header first), as ``models.inventory.parse_inventory`` reads it."""
    return _keyed(rows.iter_inventory(lines, name))
