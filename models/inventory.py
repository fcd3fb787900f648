"""The luminaire inventory CSV (the contract's columns, a city's GIS export), read and validated
row by row: the one parser every part of luxtel uses (energy, rules, dashboards), each keeping
only its own projection of the rows.

Excel writes CSV with a byte-order mark: it is read as `utf-8-sig`, so the first column is
`device_id`, not `\\ufeffdevice_id`. A bad row stops the reading with an `InventoryError` that
carries the source, the line (the header is line 1) and the column as attributes, so callers
report them without parsing the message.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.identifiers import Identifier

INVENTORY_COLUMNS = (
    "device_id",
    "zone",
    "circuit",
    "lat",
    "lon",
    "rated_power_w",
    "baseline_power_w",
    "report_interval_s",
    "model",
    "installed_on",
)


class InventoryError(ValueError):
    """The inventory cannot be used: `source` (the file), `line` (1-based; 0 when the whole
    file is at fault), `column` (when one is), and `reason`, a sentence for a person."""

    def __init__(self, source: str, line: int, reason: str, column: str | None = None) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        self.column = column
        where = f"{source}: line {line}" if line else source
        super().__init__(f"{where}: {reason}")


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
    return {lum.device_id: lum for lum in read_rows(path)}


def read_rows(path: Path) -> Iterator[Luminaire]:
    """The inventory's rows one at a time, each validated (a caller keeping its own
    projection of them never holds every full row at once); InventoryError as
    ``read_inventory``."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            yield from iter_inventory(fh, str(path))
    except OSError as error:
        raise InventoryError(str(path), 0, f"cannot read the inventory: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InventoryError(str(path), 0, "the inventory is not UTF-8 text") from None


def parse_inventory(lines: Iterable[str], name: str = "inventory") -> dict[str, Luminaire]:
    """Parse inventory CSV text (header first); line numbers count the header as line 1. A
    byte-order mark before the header is ignored, whoever decoded the text."""
    return {lum.device_id: lum for lum in iter_inventory(lines, name)}


def iter_inventory(lines: Iterable[str], name: str = "inventory") -> Iterator[Luminaire]:
    """The rows of ``parse_inventory``, one at a time (a device id seen twice is refused)."""
    reader = csv.DictReader(_without_bom(lines))
    missing = [c for c in INVENTORY_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise InventoryError(name, 1, f"missing column(s) {', '.join(missing)}", missing[0])
    seen: set[str] = set()
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
            reason = f"{column}: {first['msg']} (got {row.get(column)!r})"
            raise InventoryError(name, line, reason, column) from None
        if lum.device_id in seen:
            reason = f"device_id {lum.device_id} appears twice"
            raise InventoryError(name, line, reason, "device_id")
        seen.add(lum.device_id)
        yield lum


def _without_bom(lines: Iterable[str]) -> Iterable[str]:
    first = True
    for line in lines:
        yield line.removeprefix("\ufeff") if first else line
        first = False
