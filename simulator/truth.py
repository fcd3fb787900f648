"""The files a run leaves for scoring: the fault ground truth and the energy truth.

Both are CSV, or JSON Lines when the path ends in ``.jsonl``; times are RFC 3339 UTC with ms.

Ground truth, one row per luminaire and fault episode (a circuit outage has one row per luminaire of
the circuit, all with the same times): ``device_id, zone, circuit, kind, start, end``; the fault is
active for ``start <= t < end``; a ``counter_reset`` has ``start == end``.

Energy truth, one row per luminaire:

- ``device_id``, ``zone``, ``circuit``;
- ``readings``: readings sent during the run; ``first_ts`` / ``last_ts``: the first and last;
- ``first_energy_wh`` / ``last_energy_wh``: the counter they reported;
- ``counter_resets``: injected ``counter_reset`` episodes during the run;
- ``energy_wh``: true energy drawn between ``first_ts`` and ``last_ts``;
- ``counter_energy_wh``: what the reported counters show, the sum of their increments with a fall
  read as a reset. It equals ``energy_wh`` to the mWh, unless a reset hid the energy drawn between
  the last reading before it and the reset itself;
- ``run_start``, ``run_end``, ``run_energy_wh``: true energy drawn over the whole run.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from simulator.clock import rfc3339
from simulator.episodes import Episode
from simulator.schedule import EnergyTally

GROUND_TRUTH_COLUMNS = ("device_id", "zone", "circuit", "kind", "start", "end")
ENERGY_TRUTH_COLUMNS = (
    "device_id",
    "zone",
    "circuit",
    "readings",
    "first_ts",
    "last_ts",
    "first_energy_wh",
    "last_energy_wh",
    "counter_resets",
    "energy_wh",
    "counter_energy_wh",
    "run_start",
    "run_end",
    "run_energy_wh",
)


def ground_truth_rows(episodes: Iterable[Episode]) -> list[dict[str, Any]]:
    return [
        {
            "device_id": ep.device_id,
            "zone": ep.zone,
            "circuit": ep.circuit,
            "kind": ep.kind,
            "start": rfc3339(ep.start_ms),
            "end": rfc3339(ep.end_ms),
        }
        for ep in episodes
    ]


def energy_truth_rows(
    tallies: Iterable[EnergyTally], run_start_ms: int, run_end_ms: int
) -> list[dict[str, Any]]:
    return [
        {
            "device_id": t.device_id,
            "zone": t.zone,
            "circuit": t.circuit,
            "readings": t.readings,
            "first_ts": None if t.first_ms is None else rfc3339(t.first_ms),
            "last_ts": None if t.last_ms is None else rfc3339(t.last_ms),
            "first_energy_wh": t.first_wh,
            "last_energy_wh": t.last_wh,
            "counter_resets": t.resets,
            "energy_wh": round(t.between_wh, 6),
            "counter_energy_wh": round(t.counter_wh, 3),
            "run_start": rfc3339(run_start_ms),
            "run_end": rfc3339(run_end_ms),
            "run_energy_wh": round(t.run_wh, 6),
        }
        for t in tallies
    ]


def _write(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".jsonl":
        tmp.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    else:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    tmp.replace(path)


def write_ground_truth(path: Path, episodes: Iterable[Episode]) -> None:
    _write(path, GROUND_TRUTH_COLUMNS, ground_truth_rows(episodes))


def write_energy_truth(
    path: Path, tallies: Iterable[EnergyTally], run_start_ms: int, run_end_ms: int
) -> None:
    _write(path, ENERGY_TRUTH_COLUMNS, energy_truth_rows(tallies, run_start_ms, run_end_ms))
