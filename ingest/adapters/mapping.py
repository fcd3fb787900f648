"""A declared mapping, compiled: from a parsed JSON payload and its topic to one contract reading.

The `mapping` adapter is this with what the sources file declares; `chirpstack` and
`thethingsstack` are this with their uplinks' paths as defaults (`presets.py`), each overridable.
The adapter only reshapes: what it produces is a dict in the contract's form, which the decoder
then validates and encodes exactly as a reading sent on a contract topic.

Values pass through unconverted unless the source declares a conversion, so a wrong type stays a
wrong type (`"5"` for a number, `1` for `lamp_on`) and is dead-lettered with the contract's
reason. Two things are deliberate: JSON has one number type, so an integral number for an
integer field (`dim_pct`, `seq`) is an integer, and a converted integer field is rounded.

Time: a reading's `ts` is what the declared path holds (the device's or network server's clock);
without one it is stored at its receive time, as a contract reading without `ts` is.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

from ingest.adapters.config import FieldSpec, SourceConfig, TsSpec
from ingest.adapters.directory import DeviceDirectory, normalise_eui
from ingest.adapters.paths import MISSING, Getter, compile_path, format_path, getter
from ingest.adapters.units import Conversion, conversion
from ingest.decode import RejectionError
from models import Reason, is_identifier
from models.reading import FIELD_TYPES, INT64_MAX

REQUIRED: Final = ("lamp_on", "power_w", "energy_wh")
KNOWN_IDS: Final[set[str]] = set()
"""Device ids and zones already found valid (a fleet's repeat; bounded by `KNOWN_IDS_MAX`):
the identifier check is a regular expression, ~0.4 µs each."""
KNOWN_IDS_MAX: Final = 65_536


def _valid(value: str) -> bool:
    if value in KNOWN_IDS:
        return True
    if not is_identifier(value):
        return False
    if len(KNOWN_IDS) >= KNOWN_IDS_MAX:
        KNOWN_IDS.clear()
    KNOWN_IDS.add(value)
    return True


_SHOWN = 80


class Mapped(NamedTuple):
    """One reading an adapter made: where it belongs and its contract fields (with `ts` when
    known); `faults` when the source declares fault flags; `position` its place in a SenML pack.
    A named tuple: one is made per reading, and a frozen dataclass costs ~1 µs more."""

    zone: str
    device_id: str
    reading: dict[str, Any]
    faults: list[str] | None = None
    position: int | None = None


_new_mapped = tuple.__new__
"""`Mapped(...)` without the named tuple's Python-level `__new__` (all five fields given)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A part of a message (a SenML pack's reading) that could not be mapped."""

    position: int
    error: RejectionError


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


@dataclass(frozen=True, slots=True)
class Where:
    """Where a device id or zone comes from: a path, a topic level, an EUI at a path looked up
    in the inventory, or (zones) the inventory by device id."""

    kind: str
    steps: tuple[str | int, ...] = ()
    level: int = 0
    get: Getter = field(init=False, repr=False, compare=False)
    """The value at `steps` (or MISSING), compiled once (`paths.getter`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "get", getter(self.steps))

    @classmethod
    def of(cls, text: str) -> "Where":
        if text.startswith("$"):
            return cls("path", compile_path(text))
        if text.startswith("topic:"):
            return cls("topic", level=int(text[6:]) - 1)
        if text.startswith("eui:"):
            return cls("eui", compile_path(text[4:]))
        return cls(text)

    def describe(self) -> str:
        if self.kind == "topic":
            return f"topic level {self.level + 1}"
        if self.kind in ("path", "eui"):
            return f"path {format_path(self.steps)}"
        return self.kind


def device_of(where: Where, levels: list[str], body: Any, directory: DeviceDirectory | None) -> str:
    """The device id, checked to be an identifier; raises RejectionError."""
    if where.kind == "topic":
        value: Any = levels[where.level] if where.level < len(levels) else MISSING
    else:
        value = where.get(body)
    if value.__class__ is str and value in KNOWN_IDS and where.kind != "eui":
        return value  # a device already found valid: the common case, one set look-up
    if value is MISSING or value is None:
        raise RejectionError(Reason.UNMAPPED_FIELD, f"device_id: {where.describe()} not found")
    if type(value) is not str:
        raise RejectionError(
            Reason.INVALID_DEVICE_ID,
            f"device_id: {where.describe()} holds {shown(value)}, not a string",
        )
    if where.kind == "eui":
        eui = normalise_eui(value)
        device_id = None if eui is None or directory is None else directory.by_eui.get(eui)
        if device_id is None:
            raise RejectionError(
                Reason.UNKNOWN_DEVICE,
                f"EUI {shown(value)} ({where.describe()}) is in no inventory row's dev_eui "
                "or device_id; add it to the inventory",
            )
        return device_id
    if not _valid(value):
        raise RejectionError(
            Reason.INVALID_DEVICE_ID,
            f"device_id {shown(value)} ({where.describe()}) is not 1-64 letters, digits or "
            "_.:- starting with a letter or digit",
        )
    return value


def zone_of(
    where: Where,
    levels: list[str],
    body: Any,
    device_id: str,
    directory: DeviceDirectory | None,
) -> str:
    """The zone: from the payload or topic, or the inventory's; raises RejectionError. A device
    the inventory does not know is never guessed into a zone."""
    if where.kind == "inventory":
        zone = None if directory is None else directory.zones.get(device_id)
        if zone is None:
            raise RejectionError(
                Reason.UNKNOWN_DEVICE,
                f"device {device_id!r} is not in the inventory, so its zone is unknown (it is "
                "not guessed); add it to the inventory",
            )
        return zone
    if where.kind == "topic":
        value: Any = levels[where.level] if where.level < len(levels) else MISSING
    else:
        value = where.get(body)
    if value.__class__ is str and value in KNOWN_IDS:
        return value  # a zone already found valid
    if value is MISSING or value is None:
        raise RejectionError(Reason.UNMAPPED_FIELD, f"zone: {where.describe()} not found")
    if type(value) is not str or not _valid(value):
        raise RejectionError(
            Reason.INVALID_ZONE,
            f"zone {shown(value)} ({where.describe()}) is not 1-64 letters, digits or _.:- "
            "starting with a letter or digit",
        )
    return value


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One contract field: where it is and how it is converted."""

    name: str
    steps: tuple[str | int, ...]
    required: bool
    kind: type
    bit: int | None = None
    nonzero: bool = False
    scale: float = 1.0
    divide: float = 1.0
    offset: float = 0.0
    unit: Conversion | None = None
    get: Getter = field(init=False, repr=False, compare=False)
    """The value at `steps` (or MISSING), compiled once (`paths.getter`)."""
    converts: bool = field(init=False, repr=False, compare=False)
    """Whether the value is scaled, divided, offset or converted from a unit (set once: it is
    asked for every value `convert` converts)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "get", getter(self.steps))
        converts = self.scale != 1 or self.divide != 1 or self.offset != 0 or self.unit is not None
        object.__setattr__(self, "converts", converts)

    @classmethod
    def of(cls, name: str, spec: str | FieldSpec) -> "FieldRule":
        kind = FIELD_TYPES[name]
        if isinstance(spec, str):
            return cls(name, compile_path(spec), name in REQUIRED, kind)
        return cls(
            name,
            compile_path(spec.path),
            name in REQUIRED,
            kind,
            spec.bit,
            spec.nonzero,
            spec.scale,
            spec.divide,
            spec.offset,
            None if spec.unit is None else conversion(name, spec.unit),
        )

    @property
    def plain(self) -> bool:
        """Whether the value is taken as it is (no conversion, no integer to make)."""
        if self.kind is bool:
            return self.bit is None and not self.nonzero
        return self.kind is float and not self.converts


def convert(rule: FieldRule, value: Any) -> Any:
    """The contract value of `value` under `rule`; a value of the wrong JSON type is returned
    as it is, for the validation to reject with the contract's reason."""
    if rule.kind is bool:
        if rule.bit is not None:
            return bool(value >> rule.bit & 1) if type(value) is int else value
        if rule.nonzero and (type(value) is int or type(value) is float):
            return value != 0
        return value
    kind = type(value)
    if kind is not int and kind is not float:
        return value
    if rule.converts:
        try:
            value = value * rule.scale / rule.divide + rule.offset
            if rule.unit is not None:
                value = rule.unit.apply(value)
        except OverflowError:
            raise RejectionError(
                Reason.OUT_OF_RANGE, f"{rule.name}: {shown(value)} is too large to convert"
            ) from None
        if rule.kind is int and math.isfinite(value):
            return whole(rule.name, round(value))
    if rule.kind is int and type(value) is float and value.is_integer():
        return whole(rule.name, int(value))
    return value


def whole(field: str, value: int) -> int:
    """An integer made from a number, held to 64 bits (the line protocol's, and JSON's here)."""
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise RejectionError(Reason.OUT_OF_RANGE, f"{field}: {value:.6g} is out of range")
    return value


def bit_flags(rules: tuple[tuple[str, FieldRule], ...], body: Any) -> list[str] | None:
    """The fault codes whose bit (or number) is set; None when no flag's path is present."""
    faults: list[str] = []
    present = False
    for code, rule in rules:
        value = rule.get(body)
        if value is MISSING or value is None:
            continue
        present = True
        if type(value) is not int and not (rule.nonzero and type(value) is float):
            raise RejectionError(
                Reason.WRONG_TYPE,
                f"faults.{code}: {format_path(rule.steps)} holds {shown(value)}, not an integer",
            )
        if (int(value) >> rule.bit & 1) if rule.bit is not None else value != 0:
            faults.append(code)
    return faults if present else None


_NOTHING: Final[dict[str, Any]] = {}


def _unmapped(rule: FieldRule, body: Any) -> RejectionError:
    found = rule.get(body)
    return RejectionError(
        Reason.UNMAPPED_FIELD,
        f"{rule.name}: path {format_path(rule.steps)} "
        + ("not found" if found is MISSING else "is null"),
    )


class Mapper:
    """A compiled mapping (`mapping`, `chirpstack`, `thethingsstack`)."""

    def __init__(
        self,
        source: SourceConfig,
        directory: DeviceDirectory | None,
    ) -> None:
        assert source.device_id is not None
        assert source.zone is not None
        self.source = source
        self.directory = directory
        self.device = Where.of(source.device_id)
        self.zone = Where.of(source.zone)
        ts = source.ts
        if isinstance(ts, str):
            ts = None if ts == "none" else TsSpec(path=ts)
        self.ts_steps = None if ts is None else compile_path(ts.path)
        self._ts_get = None if self.ts_steps is None else getter(self.ts_steps)
        self.ts_ms = ts is not None and ts.unit == "ms"
        self.rules = tuple(FieldRule.of(name, spec) for name, spec in source.fields.items())
        groups: dict[tuple[str | int, ...], list[tuple[str, str, FieldRule, bool, bool]]] = {}
        indexed: list[FieldRule] = []
        for rule in self.rules:
            key = rule.steps[-1]
            if not isinstance(key, str):
                indexed.append(rule)
                continue
            whole_int = rule.kind is int and not rule.converts
            groups.setdefault(rule.steps[:-1], []).append(
                (key, rule.name, rule, rule.plain, whole_int)
            )
        self._groups = tuple((getter(parent), tuple(members)) for parent, members in groups.items())
        """The rules whose last step is a key, by the object that holds their values
        (`$.object` for most of an uplink's, found by its compiled getter): each such object is
        found once per message, its fields by one `get` each."""
        self._indexed = tuple(indexed)
        """The rules whose last step is an index (`$.values[0]`)."""
        self.faults = tuple(
            (code, FieldRule.of("lamp_on", spec)) for code, spec in source.faults.items()
        )

    def map(self, levels: list[str], body: Any, received_at: datetime) -> list[Mapped | Rejected]:
        """One reading from one payload; raises RejectionError saying what did not map."""
        if type(body) is not dict:
            raise RejectionError(
                Reason.PAYLOAD_NOT_OBJECT, f"a {self.source.adapter} payload must be a JSON object"
            )
        device_id = device_of(self.device, levels, body, self.directory)
        zone = zone_of(self.zone, levels, body, device_id, self.directory)
        reading: dict[str, Any] = {}
        if self._ts_get is not None:
            ts = self._ts_get(body)
            if ts is not MISSING and ts is not None:
                reading["ts"] = self._ts(ts) if self.ts_ms else ts
        for parent_of, members in self._groups:
            parent = parent_of(body)
            get = parent.get if type(parent) is dict else _NOTHING.get
            for key, name, rule, plain, whole_int in members:
                value = get(key)
                if value is None:  # absent or null
                    if rule.required:
                        raise _unmapped(rule, body)
                    continue
                if plain or (whole_int and value.__class__ is int):
                    reading[name] = value
                else:
                    reading[name] = convert(rule, value)
        for rule in self._indexed:
            value = rule.get(body)
            if value is MISSING or value is None:
                if rule.required:
                    raise _unmapped(rule, body)
                continue
            reading[rule.name] = convert(rule, value)
        faults = bit_flags(self.faults, body) if self.faults else None
        return [_new_mapped(Mapped, (zone, device_id, reading, faults, None))]

    def _ts(self, value: Any) -> Any:
        """Epoch ms as epoch seconds (the contract's number: the nearest double to N / 1000
        is within a fraction of a µs of it, so it lands on the same ms)."""
        if not self.ts_ms or (type(value) is not int and type(value) is not float):
            return value
        return value / 1000
