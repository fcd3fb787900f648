"""The simulated fleet: luminaires laid out along streets around a city centre.

A zone is a district placed in its compass direction from the centre; a circuit is one street fed
by one cabinet (and relayed by one gateway in gateway mode), with its lamps 30–40 m apart.
Everything is drawn from one seeded generator, so the same arguments always build the same fleet.
"""

from __future__ import annotations

import csv
import math
import random
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from models.inventory import INVENTORY_COLUMNS

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


_ZONE_NAMES = (
    "north",
    "south",
    "east",
    "west",
    "centre",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
)
_ZONE_BEARINGS = {
    "north": 0.0,
    "northeast": 45.0,
    "east": 90.0,
    "southeast": 135.0,
    "south": 180.0,
    "southwest": 225.0,
    "west": 270.0,
    "northwest": 315.0,
}

# (LED rated W, sodium lamp it replaced W, model), by road class.
_RESIDENTIAL = ((30.0, 70.0, "LX-S30"), (40.0, 70.0, "LX-S40"))
_COLLECTOR = ((60.0, 100.0, "LX-M60"), (90.0, 150.0, "LX-M90"))
_ARTERIAL = ((120.0, 250.0, "LX-L120"), (150.0, 250.0, "LX-L150"))
_ROAD_CLASSES = ((_RESIDENTIAL, 0.5), (_COLLECTOR, 0.3), (_ARTERIAL, 0.2))

_METRES_PER_DEGREE = 111_320.0
_ZONE_DISTANCE_M = 4_000.0
_STREET_SCATTER_M = 1_500.0
_BURN_HOURS_PER_DAY = 11.5


@dataclass(frozen=True, slots=True)
class Luminaire:
    """One luminaire: the inventory row, plus what only the simulator needs."""

    device_id: str
    zone: str
    circuit: str
    lat: float
    lon: float
    rated_power_w: float
    baseline_power_w: float
    report_interval_s: int
    model: str
    installed_on: date
    gateway_id: str
    initial_energy_wh: float
    """Counter at the start of the run: a controller onboarded mid-life reports its lifetime."""
    firmware: str


def zone_names(count: int) -> list[str]:
    """Compass names for up to nine zones, then ``zone-10``, ``zone-11``, …"""
    if count < 1:
        raise ValueError("a fleet needs at least one zone")
    named = list(_ZONE_NAMES[:count])
    named.extend(f"zone-{i}" for i in range(len(_ZONE_NAMES) + 1, count + 1))
    return named


def circuit_name(index: int) -> str:
    """``C01``, ``C02``, … numbered across the whole fleet so a circuit id is unique."""
    return f"C{index + 1:02d}"


def gateway_name(circuit: str) -> str:
    return f"gw-{circuit.lower()}"


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    dlat = north_m / _METRES_PER_DEGREE
    dlon = east_m / (_METRES_PER_DEGREE * math.cos(math.radians(lat)))
    return lat + dlat, lon + dlon


def _zone_centre(zone: str, index: int, lat: float, lon: float) -> tuple[float, float]:
    if zone == "centre":
        return lat, lon
    bearing = _ZONE_BEARINGS.get(zone, (index * 137.5) % 360.0)
    distance = _ZONE_DISTANCE_M if zone in _ZONE_BEARINGS else _ZONE_DISTANCE_M * 2
    rad = math.radians(bearing)
    return _offset(lat, lon, distance * math.cos(rad), distance * math.sin(rad))


def _pick_road_class(rng: random.Random) -> tuple[tuple[float, float, str], ...]:
    classes = [c for c, _ in _ROAD_CLASSES]
    weights = [w for _, w in _ROAD_CLASSES]
    return rng.choices(classes, weights)[0]


def _lifetime_energy_wh(rated_w: float, installed_on: date, as_of: date) -> float:
    days = max((as_of - installed_on).days, 0)
    return rated_w * _BURN_HOURS_PER_DAY * 0.85 * days


def build_fleet(
    n: int = 1000,
    centre_lat: float = 31.2304,
    centre_lon: float = 121.4737,
    zones: int = 4,
    circuits_per_zone: int = 6,
    seed: int = 1,
    interval_s: int = 900,
    *,
    as_of: date | None = None,
    firmware: str = "2.3.1",
) -> list[Luminaire]:
    """Build ``n`` luminaires over ``zones`` × ``circuits_per_zone`` circuits, from ``seed``.

    Devices are numbered ``lum-000001``… and filled circuit by circuit, so each circuit is a run of
    consecutive ids. ``as_of`` (default 2026-01-01) is the day the run starts: installation dates
    lie 1 month to 6 years before it, and the initial energy counters match those lifetimes.
    """
    if n < 1:
        raise ValueError("a fleet needs at least one luminaire")
    if circuits_per_zone < 1:
        raise ValueError("a zone needs at least one circuit")
    if interval_s < 1:
        raise ValueError("the report interval must be at least 1 s")
    if not (-90.0 <= centre_lat <= 90.0 and -180.0 <= centre_lon <= 180.0):
        raise ValueError(
            "the city centre must be a latitude in [-90, 90] and a longitude in [-180, 180]"
        )
    reference = as_of or date(2026, 1, 1)
    rng = random.Random(f"luxtel-fleet:{seed}")
    names = zone_names(zones)
    n_circuits = len(names) * circuits_per_zone
    fleet: list[Luminaire] = []
    for c in range(n_circuits):
        zone_index = c // circuits_per_zone
        zone = names[zone_index]
        circuit = circuit_name(c)
        first, last = c * n // n_circuits, (c + 1) * n // n_circuits
        zlat, zlon = _zone_centre(zone, zone_index, centre_lat, centre_lon)
        angle = rng.uniform(0, 2 * math.pi)
        radius = _STREET_SCATTER_M * math.sqrt(rng.random())
        slat, slon = _offset(zlat, zlon, radius * math.cos(angle), radius * math.sin(angle))
        heading = rng.uniform(0, math.pi)
        spacing = rng.uniform(30.0, 40.0)
        road = _pick_road_class(rng)
        for k, i in enumerate(range(first, last)):
            rated, baseline, model = rng.choice(road)
            along = k * spacing
            side = 8.0 if k % 2 else -8.0
            lat, lon = _offset(
                slat,
                slon,
                along * math.cos(heading) - side * math.sin(heading),
                along * math.sin(heading) + side * math.cos(heading),
            )
            installed_on = reference - timedelta(days=rng.randint(30, 6 * 365))
            if rng.random() < 0.05:
                initial = 0.0
            else:
                initial = _lifetime_energy_wh(rated, installed_on, reference) * rng.uniform(
                    0.9, 1.1
                )
            fleet.append(
                Luminaire(
                    device_id=f"lum-{i + 1:06d}",
                    zone=zone,
                    circuit=circuit,
                    lat=round(lat, 6),
                    lon=round(lon, 6),
                    rated_power_w=rated,
                    baseline_power_w=baseline,
                    report_interval_s=interval_s,
                    model=model,
                    installed_on=installed_on,
                    gateway_id=gateway_name(circuit),
                    initial_energy_wh=round(initial, 3),
                    firmware=firmware,
                )
            )
    return fleet


def write_inventory_csv(path: Path, fleet: list[Luminaire]) -> None:
    """Write the contract's inventory CSV: exactly its columns in its order, a row per luminaire."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(INVENTORY_COLUMNS)
        for lum in fleet:
            writer.writerow(
                (
                    lum.device_id,
                    lum.zone,
                    lum.circuit,
                    f"{lum.lat:.6f}",
                    f"{lum.lon:.6f}",
                    f"{lum.rated_power_w:g}",
                    f"{lum.baseline_power_w:g}",
                    lum.report_interval_s,
                    lum.model,
                    lum.installed_on.isoformat(),
                )
            )
