"""What the dashboards take from the luminaire inventory CSV at build time.

InfluxDB's `telemetry` holds only `device_id` and `zone` as tags: a luminaire's circuit and
baseline wattage live in the inventory. `dashboards build --inventory FILE` bakes them into the
dashboards (the circuit variable, the fleet size and mean baseline power); without an inventory
the dashboards work at zone and device level only. The city map needs no inventory here: its
places come with the rules engine's `luminaire_state` points.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

_NEEDED = ("device_id", "zone", "circuit", "lat", "lon", "baseline_power_w", "report_interval_s")

DEFAULT_INTERVAL_S = 900
"""The contract's usual reporting interval, used for burning hours when there is no inventory."""


class InventoryError(ValueError):
    """The inventory cannot be used: one sentence naming the file, line and column."""


@dataclass(frozen=True, slots=True)
class Place:
    device_id: str
    zone: str
    circuit: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Inventory:
    """The inventory as the dashboards need it; empty when none was given."""

    places: tuple[Place, ...] = ()
    circuits: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Circuit → its device ids, both sorted."""
    mean_baseline_w: float | None = None
    report_interval_s: int = DEFAULT_INTERVAL_S
    """The most common interval in the fleet (burning hours count readings × interval)."""

    @property
    def size(self) -> int:
        return len(self.places)


def circuit_regex(device_ids: tuple[str, ...]) -> str:
    """The device ids as one regex alternation, each escaped, for `device_id =~ /^(...)$/`."""
    return "|".join(re.escape(device_id) for device_id in device_ids)


def _number(row: dict[str, str], key: str, where: str) -> float:
    try:
        return float(row[key])
    except ValueError:
        raise InventoryError(f"{where}: {key} {row[key]!r} is not a number") from None


def read_inventory(path: Path) -> Inventory:
    """The inventory CSV at `path`, in the contract's columns (others are ignored)."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as error:
        raise InventoryError(f"cannot read {str(path)!r}: {error.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [name for name in _NEEDED if name not in (reader.fieldnames or [])]
        if missing:
            raise InventoryError(f"{path}: missing column(s) {', '.join(missing)}")
        places: list[Place] = []
        baselines: list[float] = []
        intervals: dict[int, int] = {}
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            places.append(
                Place(
                    row["device_id"],
                    row["zone"],
                    row["circuit"],
                    _number(row, "lat", where),
                    _number(row, "lon", where),
                )
            )
            baselines.append(_number(row, "baseline_power_w", where))
            interval = int(_number(row, "report_interval_s", where))
            intervals[interval] = intervals.get(interval, 0) + 1
    return make_inventory(places, baselines, intervals)


def make_inventory(
    places: list[Place], baselines: list[float], intervals: dict[int, int]
) -> Inventory:
    """An `Inventory` in a canonical order, so the dashboards built from it are reproducible."""
    if not places:
        return Inventory()
    ordered = tuple(sorted(places, key=lambda p: p.device_id))
    circuits: dict[str, list[str]] = {}
    for place in ordered:
        circuits.setdefault(place.circuit, []).append(place.device_id)
    common = max(sorted(intervals), key=lambda interval: intervals[interval])
    return Inventory(
        places=ordered,
        circuits={name: tuple(ids) for name, ids in sorted(circuits.items())},
        mean_baseline_w=round(sum(baselines) / len(baselines), 1),
        report_interval_s=common,
    )
