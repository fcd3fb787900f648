"""The luminaire inventory as the rules read it: the rows of `models.inventory` (the contract's
CSV, one parser for the whole of luxtel), by device, with the size of every circuit and zone
(the "of 40" of "circuit C12: 37 of 40 luminaires dark").
"""

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from models.inventory import INVENTORY_COLUMNS as COLUMNS
from models.inventory import InventoryError, read_inventory
from models.inventory import Luminaire as Device
from rules.language.errors import Problem, RuleFileError

__all__ = ["COLUMNS", "EMPTY", "Device", "Inventory", "load_inventory", "only_zones"]


@dataclass(frozen=True, slots=True)
class Inventory:
    """The luminaires by id, and how many each circuit and zone has (the "of 40" of an incident)."""

    devices: Mapping[str, Device]
    circuit_sizes: Mapping[str, int]
    zone_sizes: Mapping[str, int]

    @classmethod
    def of(cls, devices: list[Device]) -> "Inventory":
        circuits: dict[str, int] = {}
        zones: dict[str, int] = {}
        for device in devices:
            circuits[device.circuit] = circuits.get(device.circuit, 0) + 1
            zones[device.zone] = zones.get(device.zone, 0) + 1
        return cls({d.device_id: d for d in devices}, circuits, zones)

    def get(self, device_id: str) -> Device | None:
        return self.devices.get(device_id)

    def __iter__(self) -> Iterator[Device]:
        return iter(self.devices.values())

    def __len__(self) -> int:
        return len(self.devices)


EMPTY = Inventory({}, {}, {})


def only_zones(inventory: Inventory, zones: Collection[str]) -> Inventory:
    """The luminaires of `zones` (all of them when `zones` is empty). An instance that takes
    some zones of a city (`mqtt.zones`) hears only their luminaires, so it must watch only
    those: with the whole inventory its deadman would find every other instance's luminaires
    silent. Circuit and zone sizes are recounted from what is kept."""
    if not zones:
        return inventory
    wanted = set(zones)
    return Inventory.of([device for device in inventory if device.zone in wanted])


def load_inventory(path: Path) -> Inventory:
    """Read and check the inventory CSV; raise RuleFileError naming the bad line."""
    try:
        devices = read_inventory(path)
    except InventoryError as error:
        raise RuleFileError([Problem(path, error.line, error.reason)]) from None
    return Inventory.of(list(devices.values()))
