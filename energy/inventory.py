"""The luminaire inventory CSV (the contract's columns), read and validated row by row.

A city's GIS or asset register exports it; a bad row stops the report with the file, the line
number and the column, so the auditor can fix the register rather than guess.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.identifiers import Identifier
from models.inventory import INVENTORY_COLUMNS

COLUMNS = INVENTORY_COLUMNS


class InventoryError(ValueError):
    """The inventory cannot be used: one sentence with the file and line."""


class Luminaire(BaseModel):
    """One inventory row."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    device_id: Identifier
    zone: Identifier
    circuit: Identifier
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    rated_power_w: float = Field(ge=0, le=5000, allow_inf_nan=False)
    baseline_power_w: float = Field(ge=0, le=5000, allow_inf_nan=False)
    report_interval_s: int = Field(ge=1)
    model: str = ""
    installed_on: date | None = None


def read_inventory(path: Path) -> dict[str, Luminaire]:
    """The inventory keyed by device id; raises InventoryError naming the line of a bad row."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return parse_inventory(fh, str(path))
    except OSError as error:
        raise InventoryError(f"cannot read inventory {str(path)!r}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InventoryError(f"inventory {str(path)!r} is not UTF-8 text") from None


def parse_inventory(lines: Iterable[str], name: str = "inventory") -> dict[str, Luminaire]:
    """Parse inventory CSV text (header first); line numbers count the header as line 1."""
    reader = csv.DictReader(lines)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise InventoryError(f"{name}: line 1: missing column(s) {', '.join(missing)}")
    out: dict[str, Luminaire] = {}
    for row in reader:
        line = reader.line_num
        values = {k: (v if v != "" else None) for k, v in row.items() if k is not None}
        if values.get("installed_on") is None:
            values.pop("installed_on", None)
        if values.get("model") is None:
            values["model"] = ""
        try:
            lum = Luminaire.model_validate(values)
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            column = ".".join(str(p) for p in first["loc"])
            raise InventoryError(
                f"{name}: line {line}: {column}: {first['msg']} (got {row.get(column)!r})"
            ) from None
        if lum.device_id in out:
            raise InventoryError(f"{name}: line {line}: device_id {lum.device_id} appears twice")
        out[lum.device_id] = lum
    return out
