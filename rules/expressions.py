"""CEL conditions and values: compiled once at load, evaluated per observation, never `eval`.

The variables a condition sees (all numbers are doubles, so `reading.dim_pct / 100.0` works
without conversions):

- `reading`: the reading's fields that were sent (`has(reading.power_factor)` tests for one);
- `status`: the status's fields (`online`, `faults`, `firmware`), on status rules;
- `device`: the inventory row (`rated_power_w`, `report_interval_s`, `circuit`, `lat`…);
- `sun`: `is_day`, `minutes_after_sunset`, `minutes_before_sunrise`, `minutes_after_sunrise`,
  `minutes_before_sunset` at the device's place and the observation's time;
- `history`: `switches` (on/off changes over the device's last readings), `readings`;
- `previous`: the device's previous reading (the same fields as `reading`, those that were
  sent) and `minutes_ago`, how long before this one it was taken; empty (`has(previous.lamp_on)`
  is false) for a device's first reading, and for a reading older than one already seen;
- `params`: the rules file's constants.

A condition that cannot be evaluated for an observation (a field it needs was not sent, a type
error) yields no verdict: the alert keeps its state and the error is counted.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cel

from models import Reading, Status
from rules.inventory import Device

HISTORY_READINGS = 6
"""How many of a device's latest readings `history.switches` looks at."""

_READING_FIELDS = (
    "lamp_on",
    "power_w",
    "energy_wh",
    "voltage_v",
    "current_a",
    "power_factor",
    "dim_pct",
    "driver_temp_c",
    "lux",
    "seq",
)


class ExpressionError(ValueError):
    """An expression that does not compile."""


@dataclass(frozen=True, slots=True)
class Expression:
    """One compiled CEL expression and its source text."""

    source: str
    program: cel.Program

    @classmethod
    def compile(cls, source: str) -> "Expression":
        try:
            return cls(source, cel.compile(source))
        except (ValueError, RuntimeError) as error:
            raise ExpressionError(str(error).splitlines()[0]) from None

    def run(self, context: cel.Context) -> tuple[Any, str | None]:
        """`(value, None)`, or `(None, why)` when it cannot be evaluated here."""
        try:
            return self.program.execute(context), None
        except KeyError as error:
            return None, f"no value for {error}"
        except Exception as error:  # the CEL library's errors: type, arithmetic, undefined
            return None, f"{type(error).__name__}: {error}"


def reading_map(reading: Reading) -> dict[str, Any]:
    """The sent fields of a reading, numbers as doubles (booleans stay booleans)."""
    out: dict[str, Any] = {}
    for name in _READING_FIELDS:
        value = getattr(reading, name)
        if value is None:
            continue
        out[name] = value if isinstance(value, bool) else float(value)
    return out


def status_map(status: Status) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if status.online is not None:
        out["online"] = status.online
    if status.faults is not None:
        out["faults"] = list(status.faults)
    if status.firmware is not None:
        out["firmware"] = status.firmware
    return out


def device_map(device: Device | None, device_id: str, zone: str) -> dict[str, Any]:
    """The inventory row; for a device not in the inventory only its id and zone."""
    if device is None:
        return {"device_id": device_id, "zone": zone}
    return {
        "device_id": device.device_id,
        "zone": device.zone,
        "circuit": device.circuit,
        "lat": device.lat,
        "lon": device.lon,
        "rated_power_w": device.rated_power_w,
        "baseline_power_w": device.baseline_power_w,
        "report_interval_s": float(device.report_interval_s),
        "model": device.model,
    }


def context(variables: Mapping[str, Any]) -> cel.Context:
    return cel.Context(dict(variables))


SAMPLE_READING = {
    "lamp_on": True,
    "power_w": 40.0,
    "energy_wh": 1000.0,
    "voltage_v": 230.0,
    "current_a": 0.2,
    "power_factor": 0.95,
    "dim_pct": 100.0,
    "driver_temp_c": 40.0,
    "lux": 2.0,
    "seq": 1.0,
}
SAMPLE_STATUS = {"online": True, "faults": ["lamp_failure"], "firmware": "1.0.0"}
SAMPLE_DEVICE = {
    "device_id": "lum-1",
    "zone": "north",
    "circuit": "C01",
    "lat": 50.0,
    "lon": 5.0,
    "rated_power_w": 40.0,
    "baseline_power_w": 70.0,
    "report_interval_s": 900.0,
    "model": "LX",
}
SAMPLE_SUN = {
    "is_day": False,
    "minutes_after_sunset": 60.0,
    "minutes_before_sunrise": 600.0,
    "minutes_after_sunrise": 780.0,
    "minutes_before_sunset": 1380.0,
}
SAMPLE_HISTORY = {"switches": 0.0, "readings": 6.0}
SAMPLE_PREVIOUS = {**SAMPLE_READING, "energy_wh": 990.0, "minutes_ago": 15.0}
