"""Unit conversions into the contract's units: each a multiplier and a divisor (and for
temperatures an offset), applied as `value * mul / div + add`.

A divisor rather than a fractional multiplier keeps decimal results exact where they can be:
415 / 10 is 41.5, while 415 * 0.1 is 41.50000000000001 — and a reading mapped from a vendor's
payload must land as the same point as the same reading sent in the contract's form.
"""

from typing import Final, NamedTuple


class Conversion(NamedTuple):
    mul: float = 1.0
    div: float = 1.0
    add: float = 0.0

    def apply(self, value: float) -> float:
        return value * self.mul / self.div + self.add


_SAME: Final = Conversion()

UNITS: Final[dict[str, dict[str, Conversion]]] = {
    "power_w": {"W": _SAME, "kW": Conversion(mul=1000), "mW": Conversion(div=1000)},
    "energy_wh": {
        "Wh": _SAME,
        "W·h": _SAME,
        "kWh": Conversion(mul=1000),
        "kW·h": Conversion(mul=1000),
        "MWh": Conversion(mul=1_000_000),
        "J": Conversion(div=3600),
        "kJ": Conversion(div=3.6),
    },
    "voltage_v": {"V": _SAME, "mV": Conversion(div=1000), "kV": Conversion(mul=1000)},
    "current_a": {"A": _SAME, "mA": Conversion(div=1000)},
    "power_factor": {"/": _SAME, "%": Conversion(div=100)},
    "dim_pct": {"%": _SAME, "/100": _SAME, "/": Conversion(mul=100)},
    "driver_temp_c": {
        "Cel": _SAME,
        "degC": _SAME,
        "K": Conversion(add=-273.15),
        "dCel": Conversion(div=10),
    },
    "lux": {"lx": _SAME, "klx": Conversion(mul=1000)},
}
"""For each contract field that has a unit, the units it may be sent in (SenML's names, RFC 8428
§12.1 and RFC 8798, plus the common multiples), and how to get the contract's unit from each."""

CONTRACT_UNITS: Final = {
    "power_w": "W",
    "energy_wh": "Wh",
    "voltage_v": "V",
    "current_a": "A",
    "power_factor": "/",
    "dim_pct": "%",
    "driver_temp_c": "Cel",
    "lux": "lx",
}


def conversion(field: str, unit: str) -> Conversion | None:
    """How to bring `unit` to `field`'s contract unit; None when it cannot be."""
    return UNITS.get(field, {}).get(unit)
