"""What the dashboards take from the luminaire inventory CSV at build time.

InfluxDB's `telemetry` holds only `device_id` and `zone` as tags: a luminaire's circuit and
baseline wattage live in the inventory. `dashboards build --inventory FILE` bakes them into the
dashboards (the circuit variable, the fleet size and mean baseline power); without an inventory
the dashboards work at zone and device level only. The city map needs no inventory here: its
places come with the rules engine's `luminaire_state` points.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from models.inventory import InventoryError
from models.inventory import read_inventory as read_rows

__all__ = [
    "DEFAULT_INTERVAL_S",
    "Inventory",
    "InventoryError",
    "Place",
    "circuit_regex",
    "make_inventory",
    "read_inventory",
]

DEFAULT_INTERVAL_S = 900
"""The contract's usual reporting interval, used for burning hours when there is no inventory."""


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


def read_inventory(path: Path) -> Inventory:
    """The inventory CSV at `path`, read by `models.inventory` (the one parser: strict, each
    error with its line), projected onto what the dashboards use."""
    rows = read_rows(path).values()
    places = [Place(r.device_id, r.zone, r.circuit, r.lat, r.lon) for r in rows]
    intervals: dict[int, int] = {}
    for row in rows:
        intervals[row.report_interval_s] = intervals.get(row.report_interval_s, 0) + 1
    return make_inventory(places, [r.baseline_power_w for r in rows], intervals)


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
