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
  is false) for a device's first reading (a reading older than one already seen is not
  evaluated at all);
- `params`: the rules file's constants.

A condition that cannot be evaluated for an observation (a field it needs was not sent, a type
error) yields no verdict: the alert keeps its state and the error is counted.

Converting a value into CEL costs microseconds (a double about three), more than most conditions
cost to run, so an expression in the subset `rules.language.native` mirrors is run as a Python
function on
the observation's dicts, and by CEL only when that cannot answer exactly (`Bindings.run`).
"""

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cel

from models import Reading, SentReading, Status
from rules.evaluation.inventory import Device
from rules.language.native import Native, NotMirroredError, translate

HISTORY_READINGS = 6
"""How many of a device's latest readings `history.switches` looks at."""

READING_FIELDS = (
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
"""The fields of a reading that rules see (`reading_map`), in its order."""


class ExpressionError(ValueError):
    """An expression that does not compile."""


@dataclass(frozen=True, slots=True)
class Expression:
    """One compiled CEL expression, its source text, and its Python function
    (`rules.language.native`;
    None: outside the subset that mirrors)."""

    source: str
    program: cel.Program
    native: Native | None = field(default=None, compare=False, repr=False)

    @classmethod
    def compile(cls, source: str) -> "Expression":
        try:
            program = cel.compile(source)
        except (ValueError, RuntimeError) as error:
            raise ExpressionError(str(error).splitlines()[0]) from None
        return cls(source, program, translate(source))

    def run(self, context: cel.Context) -> tuple[Any, str | None]:
        """`(value, None)`, or `(None, why)` when it cannot be evaluated here."""
        try:
            return self.program.execute(context), None
        except KeyError as error:
            return None, f"no value for {error}"
        except Exception as error:  # the CEL library's errors: type, arithmetic, undefined
            return None, f"{type(error).__name__}: {error}"


def reading_map(reading: Reading | SentReading) -> dict[str, Any]:
    """The sent fields of a reading, numbers as doubles (booleans stay booleans); a field sent
    as null is left out, as one not sent. A `Reading` model or, in the rules process, the
    `SentReading` read back from the journal: the same map for the same reading."""
    # Read directly, the hot path: every field of the model, or the fields sent.
    fields = reading.fields if isinstance(reading, SentReading) else reading.__dict__
    get = fields.get
    out: dict[str, Any] = {}
    for name in READING_FIELDS:
        value = get(name)
        if value is None:
            continue
        out[name] = value if value.__class__ is bool else float(value)
    return out


_HISTORY_FACTS: dict[tuple[bool, ...], dict[str, float]] = {}


def history_facts(lamps: tuple[bool, ...]) -> dict[str, float]:
    """`history` over a device's latest lamp states: `switches` (on/off changes), `readings`.
    Kept per series of states (at most 2⁷ of them); the dict is shared: never change it."""
    facts = _HISTORY_FACTS.get(lamps)
    if facts is None:
        switches = sum(a != b for a, b in itertools.pairwise(lamps))
        facts = _HISTORY_FACTS[lamps] = {"switches": float(switches), "readings": float(len(lamps))}
    return facts


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


class Bindings:
    """One observation's variables, each a dict of its fields, for running its rules: through
    an expression's Python function, or, when it cannot answer, through CEL, with a context
    built on first need and holding only the fields the rules read (`wanted`, per variable;
    None: all)."""

    __slots__ = ("_context", "variables", "wanted")

    def __init__(
        self,
        variables: dict[str, dict[str, Any]],
        wanted: Mapping[str, frozenset[str] | None],
    ) -> None:
        self.variables = variables
        self.wanted = wanted
        self._context: cel.Context | None = None

    def run(self, expression: Expression) -> tuple[Any, str | None]:
        """`(value, None)`, or `(None, why)` when it cannot be evaluated here."""
        native = expression.native
        if native is not None:
            try:
                return native(self.variables), None
            except NotMirroredError:
                pass
        return self.cel(expression)

    def cel(self, expression: Expression) -> tuple[Any, str | None]:
        """`run()` by CEL alone."""
        if self._context is None:
            wanted = self.wanted
            self._context = context(
                {name: only(values, wanted.get(name)) for name, values in self.variables.items()}
            )
        return expression.run(self._context)


def only(values: dict[str, Any], names: frozenset[str] | None) -> dict[str, Any]:
    """The entries of `values` named in `names` (None: all)."""
    if names is None:
        return values
    return {k: v for k, v in values.items() if k in names}


def only_reading(values: dict[str, Any], names: frozenset[str] | None) -> dict[str, Any]:
    """`only(values, names)` for a `reading_map`: the same entries in the same order, the
    names looked up rather than every field walked (the hot path)."""
    if names is None:
        return values
    return {k: values[k] for k in _reading_order(names) if k in values}


@functools.cache
def _reading_order(names: frozenset[str]) -> tuple[str, ...]:
    """`names` that are reading fields, in `reading_map`'s order (a rule set has a few)."""
    return tuple(name for name in READING_FIELDS if name in names)


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
