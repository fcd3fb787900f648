"""A small London fleet whose raw readings hold every case the energy arithmetic must get right
(a reset, a 2^32 Wh wrap, a power-only luminaire, an outage with a gap and a break, one
onboarded with a lifetime counter), written over any stretch: the rollup tests on a real
InfluxDB compare reports from rollups with reports from these readings."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from servers import create_database, query, write_points

LONDON = ZoneInfo("Europe/London")
H = 3_600_000

FLEET = {
    # device: zone, circuit, report interval s, what happens
    "n1": ("north", "C01", 900, "steady"),
    "n2": ("north", "C01", 900, "reset"),
    "n3": ("north", "C02", 900, "outage"),  # silent 3 h (a gap), then 14 h (a break)
    "s1": ("south", "C03", 3600, "wrap"),  # hourly, wraps at 2^32 Wh
    "s2": ("south", "C03", 900, "no_counter"),  # power only
    "s3": ("south", "C04", 900, "onboarding"),  # first reading later, 50 kWh lifetime
}


@dataclass(frozen=True)
class Story:
    """When things happen to the fleet (Unix ms): readings from ``first`` to ``until``; n3
    silent in ``outages``; n2 reset at ``reset``; s1's counter ``wrap_wh`` below 2^32 at
    ``first``; s3's first reading at ``onboarding``."""

    first: int
    until: int
    outages: tuple[tuple[int, int], ...]
    reset: int
    onboarding: int
    wrap_wh: float = 400.0


def lit(t: int) -> bool:
    hour = datetime.fromtimestamp(t / 1000, LONDON).hour
    return hour >= 18 or hour < 7


def readings(device: str, story: Story) -> list[tuple[int, str]]:
    """One device's readings as (ts, line protocol), jittered per device (seeded)."""
    _, _, interval_s, kind = FLEET[device]
    rng = random.Random(device)
    energy = {"wrap": 2.0**32 - story.wrap_wh, "onboarding": 50_000.0}.get(kind, 1000.0)
    out = []
    t = story.onboarding if kind == "onboarding" else story.first
    while t < story.until:
        step = interval_s * 1000 + rng.randint(-60, 60) * 1000
        if kind == "outage" and any(a <= t < b for a, b in story.outages):
            t += step
            energy += 30.0
            continue
        on = lit(t)
        power = 40.0 if on else 0.0
        energy += power * step / H
        if kind == "reset" and story.reset <= t < story.reset + step:
            energy = 3.0
        if kind == "wrap" and energy >= 2.0**32:
            energy -= 2.0**32
        dim = 70 if on else 0
        fields = f"lamp_on={str(on).lower()},power_w={power},dim_pct={dim}i"
        if kind != "no_counter":
            fields += f",energy_wh={energy!r}"
        zone = FLEET[device][0]
        out.append((t, f"telemetry,device_id={device},zone={zone} {fields} {t}"))
        t += step
    return out


def write_inventory(tmp_path: Path) -> Path:
    """The fleet's inventory CSV in ``tmp_path``."""
    inventory = tmp_path / "inventory.csv"
    rows = [
        "device_id,zone,circuit,lat,lon,rated_power_w,baseline_power_w,report_interval_s,"
        "model,installed_on"
    ]
    for device, (zone, circuit, interval, _) in FLEET.items():
        rows.append(f"{device},{zone},{circuit},51.5,-0.1,40,100,{interval},LX,")
    inventory.write_text("\n".join(rows) + "\n")
    return inventory


def write_config(tmp_path: Path, url: str, database: str) -> Path:
    """The fleet's inventory CSV and a luxtel.toml reading it (rollups with a 6 h longest
    interval, London days) in ``tmp_path``; returns the toml."""
    inventory = write_inventory(tmp_path)
    toml = tmp_path / "luxtel.toml"
    toml.write_text(
        f'[influx]\nurl = "{url}"\ndatabase = "{database}"\n'
        f'[inventory]\npath = "{inventory}"\n[energy]\nmax_interval_h = 6\n'
        'tz = "Europe/London"\n'
    )
    return toml


@dataclass(frozen=True)
class City:
    """The fleet's readings in a database of their own, and its configuration."""

    url: str
    database: str
    toml: Path
    tmp: Path
    backlog: list[str]
    """n2's readings in the ``late`` span, not written: a backlog for a test to write later."""


def make_city(url: str, tmp_path: Path, story: Story, late: tuple[int, int]) -> City:
    """A new database holding the fleet's readings of ``story`` but n2's in ``late``."""
    database = f"fleet_{uuid.uuid4().hex[:8]}"
    create_database(url, database)
    toml = write_config(tmp_path, url, database)
    on_time: list[str] = []
    backlog: list[str] = []
    for device in FLEET:
        for t, text in readings(device, story):
            (backlog if device == "n2" and late[0] <= t < late[1] else on_time).append(text)
    write_points(url, database, on_time)
    return City(url, database, toml, tmp_path, backlog)


def rollup_points(url: str, database: str, measurement: str) -> dict[tuple[str, int], Any]:
    """Every point of a per-luminaire rollup measurement in the ``rollups`` policy, by (device,
    time ms): its fields."""
    answer = query(
        url,
        f'SELECT * FROM "rollups"."{measurement}" GROUP BY "device_id"',  # noqa: S608
        db=database,
        epoch="ms",
    )
    out = {}
    for series in answer["results"][0].get("series", []):
        for values in series["values"]:
            row = dict(zip(series["columns"], values, strict=True))
            out[(series["tags"]["device_id"], row.pop("time"))] = row
    return out
