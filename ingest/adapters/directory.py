"""Which zone a device is in, and which device an EUI names: from the luminaire inventory.

Network servers' uplinks say which device spoke but not where it stands; the inventory (the
city's asset register, read by `models.inventory`'s strict reader) does. An optional `dev_eui`
column maps LoRaWAN EUIs to device ids; a device id that is itself 16 hex digits is an EUI too.
Read once at start: a device added to the inventory is taken after a restart, and until then
its readings are dead-lettered as `unknown_device`, never guessed into a zone.
"""

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from models.inventory import InventoryError, read_inventory

_EUI = re.compile(r"^[0-9a-f]{16}$")


def normalise_eui(text: str) -> str | None:
    """`00-04-A3-0B-00-1C-05-30`, `0004A30B001C0530` → `0004a30b001c0530`; None if not an EUI."""
    plain = text.replace("-", "").replace(":", "").lower()
    return plain if _EUI.match(plain) else None


@dataclass(frozen=True, slots=True)
class DeviceDirectory:
    zones: dict[str, str] = field(default_factory=dict)
    """device_id → zone."""
    by_eui: dict[str, str] = field(default_factory=dict)
    """normalised EUI → device_id."""

    @classmethod
    def load(cls, path: Path) -> "DeviceDirectory":
        """Raises InventoryError with the file and line of a bad row."""
        luminaires = read_inventory(path)
        zones = {device_id: lum.zone for device_id, lum in luminaires.items()}
        by_eui = {}
        for device_id in zones:
            eui = normalise_eui(device_id)
            if eui is not None:
                by_eui[eui] = device_id
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if "dev_eui" in (reader.fieldnames or ()):
                for row in reader:
                    text = (row.get("dev_eui") or "").strip()
                    if not text:
                        continue
                    eui = normalise_eui(text)
                    if eui is None:
                        raise InventoryError(
                            str(path),
                            reader.line_num,
                            f"dev_eui {text!r} is not 16 hex digits",
                            column="dev_eui",
                        )
                    by_eui[eui] = (row.get("device_id") or "").strip()
        return cls(zones, by_eui)
