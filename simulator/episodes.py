"""Fault kinds and fault episodes: what is injected into which luminaire, and when."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

LAMP_FAILURE: Final = "lamp_failure"
DAY_BURNING: Final = "day_burning"
OFFLINE: Final = "offline"
VOLTAGE_HIGH: Final = "voltage_high"
VOLTAGE_LOW: Final = "voltage_low"
CYCLING: Final = "cycling"
POWER_FACTOR_LOW: Final = "power_factor_low"
DRIVER_OVERTEMP: Final = "driver_overtemp"
CIRCUIT_OUTAGE: Final = "circuit_outage"
COUNTER_RESET: Final = "counter_reset"

FAULT_KINDS: Final = (
    LAMP_FAILURE,
    DAY_BURNING,
    OFFLINE,
    VOLTAGE_HIGH,
    VOLTAGE_LOW,
    CYCLING,
    POWER_FACTOR_LOW,
    DRIVER_OVERTEMP,
    CIRCUIT_OUTAGE,
    COUNTER_RESET,
)

POWER_KINDS: Final = frozenset({LAMP_FAILURE, DAY_BURNING, CYCLING, CIRCUIT_OUTAGE})
"""Kinds that change the power drawn, hence the energy counter's integral."""


@dataclass(frozen=True, slots=True)
class Episode:
    """One injected fault on one luminaire, active for ``start_ms <= t < end_ms`` (Unix ms, UTC).

    A ``counter_reset`` is an instant: ``start_ms == end_ms`` is when the controller was replaced.
    ``level`` is the kind's own magnitude, drawn once per episode: the fraction of rated power a
    failed lamp still draws, the factor applied to the supply voltage or the power factor, the
    driver temperature, or the half-period in ms of a cycling lamp.
    """

    device_id: str
    zone: str
    circuit: str
    kind: str
    start_ms: int
    end_ms: int
    level: float = 0.0

    def active(self, t_ms: int) -> bool:
        return self.start_ms <= t_ms < self.end_ms
