"""Contract payloads and topics: telemetry, batch and status messages, as orjson bytes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from simulator.clock import rfc3339
from simulator.physics import Measurement

WILL_PAYLOAD = orjson.dumps({"online": False})


@dataclass(slots=True)  # not frozen: one per reading, and a frozen __init__ costs 3× more
class Reading:
    """One luminaire reading: what it measured, its message counter and its energy register."""

    device_id: str
    t_ms: int
    seq: int
    energy_cwms: int
    m: Measurement
    energy_wh: float
    """The register as reported: Wh, to the mWh."""


def topic(root: str, zone: str, source_id: str, kind: str) -> str:
    """``{root}/{zone}/{device_id or gateway_id}/{telemetry|batch|status}``."""
    return f"{root}/{zone}/{source_id}/{kind}"


def reading_dict(r: Reading) -> dict[str, Any]:
    m = r.m
    out: dict[str, Any] = {
        "device_id": r.device_id,
        "ts": rfc3339(r.t_ms),
        "seq": r.seq,
        "lamp_on": m.lamp_on,
        "power_w": m.power_cw / 100,
        "energy_wh": r.energy_wh,
        "voltage_v": m.voltage_v,
        "current_a": m.current_a,
        "dim_pct": m.dim_pct,
        "driver_temp_c": m.driver_temp_c,
        "lux": m.lux,
    }
    if m.power_factor is not None:
        out["power_factor"] = m.power_factor
    return out


def telemetry_payload(r: Reading) -> bytes:
    return orjson.dumps(reading_dict(r))


def batch_payload(readings: Sequence[Reading]) -> bytes:
    """A gateway's batch: a JSON array of readings, each with its own ``device_id``."""
    return orjson.dumps([reading_dict(r) for r in readings])


def status_payload(
    t_ms: int,
    *,
    online: bool = True,
    firmware: str | None = None,
    faults: Sequence[str] | None = None,
) -> bytes:
    """A status; a birth is ``{"online": true, "firmware": …, "ts": …}``."""
    out: dict[str, Any] = {"online": online}
    if firmware is not None:
        out["firmware"] = firmware
    if faults is not None:
        out["faults"] = list(faults)
    out["ts"] = rfc3339(t_ms)
    return orjson.dumps(out)
