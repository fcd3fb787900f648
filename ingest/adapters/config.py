"""The sources file: which topics carry which payload shape, and how each maps to a reading.

A TOML file of `[[sources]]` tables (`sources.path` in luxtel's configuration points at it),
kept apart from `luxtel.toml` as the rules are: a mapping is long, reviewed and changed on its
own, and `luxtel sources check FILE --sample TOPIC PAYLOAD` tries it against a real payload
before it goes live. Mappings are data: paths in a small JSON-path subset (`paths.py`), units
from a fixed table (`units.py`), factors and offsets as numbers — nothing is evaluated.

    [[sources]]
    name = "vendor"
    adapter = "mapping"                 # luxtel | chirpstack | thethingsstack | senml | mapping
    topic = "vendor/+/+/data"           # an MQTT topic filter
    device_id = "topic:3"               # "$.path", "topic:N" (1-based level) or "eui:$.path"
    zone = "topic:2"                    # "$.path", "topic:N" or "inventory"
    ts = { path = "$.t", unit = "ms" }  # "$.path" (RFC 3339 or epoch s), a table, or "none"
    fields.power_w = "$.p"
    fields.energy_wh = { path = "$.e", unit = "kWh" }
    fields.driver_temp_c = { path = "$.temp", divide = 10 }
    fields.lamp_on = { path = "$.flags", bit = 0 }
    faults.lamp_failure = { path = "$.flags", bit = 4 }
    # broker = { url = "mqtts://…", username = "…", password_file = "…" }: its own connection
"""

import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from ingest.adapters.paths import compile_path
from ingest.adapters.units import UNITS, conversion
from models.identifiers import ID_PATTERN
from models.reading import FIELD_TYPES

MAX_SOURCES = 64
MAX_TOPIC_LEVELS = 32

AdapterName = Literal["luxtel", "chirpstack", "thethingsstack", "senml", "mapping"]
ContractField = Literal[
    "seq",
    "lamp_on",
    "power_w",
    "energy_wh",
    "voltage_v",
    "current_a",
    "power_factor",
    "dim_pct",
    "driver_temp_c",
    "lux",
]
FaultCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]

OWN_OUTPUT = ("luxtel/deadletter", "luxtel/alerts/+/+")
"""Topics of luxtel's own output: a source's filter must match none of them (luxtel would read
its own dead letters and alerts back)."""


class SourcesError(ValueError):
    """A sources file that cannot be used: one sentence with the file, line and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _field_path(path: str) -> str:
    if not compile_path(path):
        raise ValueError(f"{path!r} is the whole payload, not a value in it")
    return path


class FieldSpec(_Strict):
    """Where one contract field comes from and how it is converted: `value * scale / divide +
    offset` in `unit`, then `unit` to the contract's unit. For booleans: `bit` (bit N of an
    integer) or `nonzero` (0 is false, any other number true); neither: a JSON boolean."""

    path: str
    unit: str | None = None
    scale: float = 1.0
    divide: float = 1.0
    offset: float = 0.0
    bit: int | None = Field(default=None, ge=0, le=63)
    nonzero: bool = False

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        return _field_path(path)

    @field_validator("scale", "divide", "offset")
    @classmethod
    def _numbers(cls, value: float) -> float:
        return _finite(value)

    @field_validator("divide")
    @classmethod
    def _divisor(cls, value: float) -> float:
        if value == 0:
            raise ValueError("must not be 0")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "FieldSpec":
        if self.bit is not None and self.nonzero:
            raise ValueError("bit and nonzero exclude each other")
        return self

    @property
    def converts(self) -> bool:
        return self.scale != 1 or self.divide != 1 or self.offset != 0 or self.unit is not None


class TsSpec(_Strict):
    """The reading's time: an RFC 3339 string or a number of epoch seconds (`auto`, as the
    contract's `ts`), or of epoch milliseconds (`ms`)."""

    path: str
    unit: Literal["auto", "s", "ms"] = "auto"

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        compile_path(path)
        return path


def _check_filter(topic: str) -> str:
    if not topic or len(topic) > 1024 or "\0" in topic:
        raise ValueError("must be a topic filter of 1 to 1024 characters")
    levels = topic.split("/")
    if len(levels) > MAX_TOPIC_LEVELS:
        raise ValueError(f"has more than {MAX_TOPIC_LEVELS} levels")
    for index, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            raise ValueError(f"level {level!r}: a wildcard must fill its whole level")
        if level == "#" and index != len(levels) - 1:
            raise ValueError("# may only be the last level")
    if topic.startswith("$"):
        raise ValueError("must not be a $ topic (the broker's own)")
    for own in OWN_OUTPUT:
        if _overlap(levels, own.split("/")):
            raise ValueError(f"matches {own}, luxtel's own output: it would read itself back")
    return topic


def filter_matches(filter_levels: list[str], topic_levels: list[str]) -> bool:
    """MQTT topic-filter matching (MQTT 3.1.1 §4.7), on levels."""
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def _overlap(first: list[str], second: list[str]) -> bool:
    """Whether some topic matches both filters."""
    for index in range(max(len(first), len(second))):
        a = first[index] if index < len(first) else None
        b = second[index] if index < len(second) else None
        if a == "#" or b == "#":
            return True
        if a is None or b is None:
            return False
        if a != b and a != "+" and b != "+":
            return False
    return True


_TOPIC_LEVEL = re.compile(r"^topic:([1-9][0-9]?)$")


def _check_where(value: str, allowed: tuple[str, ...], key: str) -> str:
    """`$.path`, `topic:N`, `eui:$.path` or `inventory`, as `allowed` permits."""
    if value.startswith("$") and "path" in allowed:
        compile_path(value)
        return value
    if _TOPIC_LEVEL.match(value) and "topic" in allowed:
        return value
    if value.startswith("eui:$") and "eui" in allowed:
        compile_path(value[4:])
        return value
    if value == "inventory" and "inventory" in allowed:
        return value
    shown = {"path": "$.path", "topic": "topic:N", "eui": "eui:$.path", "inventory": "inventory"}
    raise ValueError(f"{value!r} is not one of " + ", ".join(shown[a] for a in allowed))


class BrokerSpec(_Strict):
    """A source's own broker connection (The Things Stack's MQTT server, for one), instead of
    the city's broker. At QoS 0 only: such a server offers nothing else, and what it delivers is
    then never acknowledged — whatever it sends while luxtel is not connected is lost (the
    README says when to bridge instead)."""

    url: str
    username: str | None = None
    password_file: Path | None = None
    """A file holding the password or API key (never the key itself in the sources file)."""
    client_id: str | None = None
    """Default: `luxtel-{source name}`."""
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    ca_file: Path | None = None
    """CA bundle for mqtts:// (default: the system's)."""

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"{url!r} must look like mqtt://host:port or mqtts://host:port")
        if parts.username or parts.password:
            raise ValueError("must not hold credentials; set username and password_file")
        return url


class SourceConfig(_Strict):
    """One `[[sources]]` table."""

    name: Annotated[str, StringConstraints(pattern=ID_PATTERN)]
    adapter: AdapterName = "luxtel"
    topic: str
    device_id: str | None = None
    zone: str | None = None
    ts: str | TsSpec | None = None
    fields: dict[ContractField, str | FieldSpec] = Field(default_factory=dict)
    faults: dict[FaultCode, FieldSpec] = Field(default_factory=dict, max_length=64)
    names: dict[Annotated[str, StringConstraints(min_length=1, max_length=256)], ContractField] = (
        Field(default_factory=dict, max_length=256)
    )
    """SenML only: record names (the end of the resolved name, e.g. `3305/1/5800`) and the
    field each gives, added to the IPSO defaults."""
    broker: BrokerSpec | None = None
    """Its own broker connection; none: the city's (`[mqtt]`)."""

    @field_validator("topic")
    @classmethod
    def _topic(cls, topic: str) -> str:
        return _check_filter(topic)

    @field_validator("device_id")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        if value is None or value == "name":
            return value
        return _check_where(value, ("path", "topic", "eui"), "device_id")

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        return _check_where(value, ("path", "topic", "inventory"), "zone")

    @field_validator("ts")
    @classmethod
    def _ts(cls, value: str | TsSpec | None) -> str | TsSpec | None:
        if isinstance(value, str) and value != "none":
            compile_path(value)
        return value

    @field_validator("fields")
    @classmethod
    def _fields(cls, fields: dict[str, str | FieldSpec]) -> dict[str, str | FieldSpec]:
        for name, spec in fields.items():
            if isinstance(spec, str):
                _field_path(spec)
                continue
            if spec.unit is not None and conversion(name, spec.unit) is None:
                units = ", ".join(_units_of(name)) or "none: it has no unit"
                raise ValueError(f"{name}: unit {spec.unit!r} is not one of {units}")
            if (spec.bit is not None or spec.nonzero) and FIELD_TYPES[name] is not bool:
                raise ValueError(f"{name}: bit and nonzero are for lamp_on only")
        return fields

    @field_validator("faults")
    @classmethod
    def _faults(cls, faults: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        for code, spec in faults.items():
            if spec.bit is None and not spec.nonzero:
                raise ValueError(f"{code}: a fault is a bit (bit = N) or a number (nonzero)")
        return faults

    @model_validator(mode="after")
    def _per_adapter(self) -> "SourceConfig":
        if self.adapter == "luxtel":
            custom = (
                self.device_id,
                self.zone,
                self.ts,
                self.fields or None,
                self.faults or None,
                self.broker,
            )
            if any(v is not None for v in custom) or self.names:
                raise ValueError("a luxtel source takes the contract as it is: only name and topic")
            if not self.topic.endswith("/#") or "+" in self.topic:
                raise ValueError("a luxtel source's topic is {mqtt.topic_root}/#")
        if self.adapter == "mapping":
            missing = [k for k in ("device_id", "zone") if getattr(self, k) is None]
            missing += [
                f"fields.{f}" for f in ("lamp_on", "power_w", "energy_wh") if f not in self.fields
            ]
            if missing:
                raise ValueError("a mapping must declare " + ", ".join(missing))
        if self.names and self.adapter != "senml":
            raise ValueError("names is for senml sources only")
        if self.device_id == "name" and self.adapter != "senml":
            raise ValueError('device_id = "name" (from record names) is for senml sources only')
        if self.faults and self.adapter in ("senml", "luxtel"):
            raise ValueError(f"a {self.adapter} source takes no faults")
        if self.adapter == "senml" and (self.fields or self.ts is not None):
            raise ValueError("a senml source maps names (names.…), not fields or ts")
        return self


def _units_of(field: str) -> list[str]:
    return list(UNITS.get(field, {}))


class SourcesFile(_Strict):
    sources: list[SourceConfig] = Field(default_factory=list, max_length=MAX_SOURCES)

    @model_validator(mode="after")
    def _unique(self) -> "SourcesFile":
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"two sources are named {source.name!r}")
            seen.add(source.name)
        return self


def _table_lines(text: str) -> list[int]:
    """The line of each `[[sources]]` header, in order."""
    return [
        number
        for number, line in enumerate(text.splitlines(), start=1)
        if re.match(r"^\s*\[\[\s*sources\s*\]\]", line)
    ]


def parse_sources(text: str, name: str = "sources") -> tuple[SourceConfig, ...]:
    """Parse a sources file's text; raises SourcesError naming the line and key."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SourcesError(f"{name}: not valid TOML: {error}") from None
    try:
        return tuple(SourcesFile.model_validate(data).sources)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        loc = list(first["loc"])
        where = name
        if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
            lines = _table_lines(text)
            index = loc[1]
            if index < len(lines):
                where = f"{name}:{lines[index]}"
            entries = data.get("sources")
            label = ""
            if isinstance(entries, list) and index < len(entries):
                entry = entries[index]
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    label = f" ({entry['name']})"
            key = ".".join(str(p) for p in loc[2:] if not _is_union_tag(p))
            loc_text = f"sources[{index}]{label}" + (f".{key}" if key else "")
        else:
            loc_text = ".".join(str(p) for p in loc) or "sources"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "is not a known key"
        raise SourcesError(f"{where}: {loc_text}: {message}") from None


def _is_union_tag(part: object) -> bool:
    return part in ("str", "TsSpec", "FieldSpec") or (
        isinstance(part, str) and part.startswith("function-")
    )


def load_sources(path: Path) -> tuple[SourceConfig, ...]:
    """The sources of a file; raises SourcesError (file:line: key: sentence)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourcesError(f"sources file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SourcesError(f"cannot read sources file {str(path)!r}: {error}") from None
    return parse_sources(text, str(path))


__all__ = [
    "BrokerSpec",
    "FieldSpec",
    "SourceConfig",
    "SourcesError",
    "TsSpec",
    "filter_matches",
    "load_sources",
    "parse_sources",
]
