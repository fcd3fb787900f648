"""InfluxDB line protocol, written so that what is accepted reads back exactly as it was given.

InfluxDB 1.x does not escape backslashes in names and tags, so a name or tag containing one (or
a control character) has no faithful encoding: such input is refused with `EncodeError` rather
than written wrong. Field types are fixed by the caller (an `int` is always `…i`, a `float`
never is), which is what keeps a batch from ever meeting a field type conflict.
"""

import math
import re
from collections.abc import Mapping

from models import Reading, Status
from models.reading import INT64_MAX

FieldValue = bool | int | float | str

MAX_STRING_BYTES = 64 * 1024 - 1
"""InfluxDB 1.x truncates or rejects longer string fields."""

_RESERVED_KEYS = frozenset({"time", "_field", "_measurement"})
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")
"""Backslashes and control characters: no faithful encoding in names and tag values."""
_NAME_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


class EncodeError(ValueError):
    """A value that line protocol cannot carry faithfully."""


def _check_name(kind: str, name: str) -> None:
    if not name:
        raise EncodeError(f"{kind} is empty")
    if _FORBIDDEN.search(name):
        raise EncodeError(f"{kind} {name[:64]!r} contains a backslash or a control character")


def _key(kind: str, name: str) -> str:
    _check_name(kind, name)
    if name in _RESERVED_KEYS:
        raise EncodeError(f"{kind} {name!r} is reserved by InfluxDB")
    return name.translate(_NAME_ESCAPES)


def format_field(value: FieldValue) -> str:
    """One field value in line protocol: `true`, `12i`, `1.5`, `"text"`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise EncodeError(f"integer {value} does not fit in 64 bits")
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EncodeError(f"{value} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            raise EncodeError("a string field contains a line break")
        if len(value.encode()) > MAX_STRING_BYTES:
            raise EncodeError("a string field is longer than 64 KiB")
        return '"' + value.translate(_STRING_ESCAPES) + '"'
    raise EncodeError(f"unsupported field type {type(value).__name__}")


def encode_line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    ts_ms: int,
) -> str:
    """One point as a line (no newline). Tags are sorted, as InfluxDB prefers."""
    _check_name("measurement", measurement)
    if measurement.startswith("#"):
        raise EncodeError("a measurement starting with '#' reads as a comment")
    if not fields:
        raise EncodeError("a point needs at least one field")
    head = measurement.translate(_MEASUREMENT_ESCAPES)
    tag_parts = []
    for key in sorted(tags):
        value = tags[key]
        _check_name("tag value", value)
        tag_parts.append(f",{_key('tag key', key)}={value.translate(_NAME_ESCAPES)}")
    field_text = ",".join(
        f"{_key('field key', key)}={format_field(v)}" for key, v in fields.items()
    )
    return f"{head}{''.join(tag_parts)} {field_text} {ts_ms}"


def reading_fields(reading: Reading) -> dict[str, FieldValue]:
    """The fields of a reading's point: its measured values, with their fixed types."""
    fields: dict[str, FieldValue] = {
        "lamp_on": reading.lamp_on,
        "power_w": reading.power_w,
        "energy_wh": reading.energy_wh,
    }
    for name in _OPTIONAL_READING_FIELDS:
        value = getattr(reading, name)
        if value is not None:
            fields[name] = value
    return fields


_OPTIONAL_READING_FIELDS = (
    "voltage_v",
    "current_a",
    "power_factor",
    "driver_temp_c",
    "lux",
    "seq",
    "dim_pct",
)
"""In the order `ingest/reading_lines.c` writes them (the integers last)."""
_INT_FIELDS = frozenset({"seq", "dim_pct"})


def encode_reading(zone: str, device_id: str, reading: Reading, ts_ms: int) -> str:
    """A `telemetry` point. Floats are written as floats even when whole (`5.0`).

    The hot path: written out by hand because the general `encode_line` (escaping every name,
    checking every value) was more than half of decoding's CPU in a profile. It needs no
    escaping: zone and device id are validated identifiers, the field names are fixed, and the
    model has already refused non-finite and out-of-range values. A property test holds it to
    `encode_line`'s output."""
    parts = [
        "telemetry,device_id=",
        device_id,
        ",zone=",
        zone,
        " lamp_on=true" if reading.lamp_on else " lamp_on=false",
        ",power_w=",
        repr(reading.power_w),
        ",energy_wh=",
        repr(reading.energy_wh),
    ]
    for name in _OPTIONAL_READING_FIELDS:
        value = getattr(reading, name)
        if value is not None:
            parts.append(f",{name}={value}i" if name in _INT_FIELDS else f",{name}={value!r}")
    parts.append(f" {ts_ms}")
    return "".join(parts)


def status_fields(status: Status) -> dict[str, FieldValue]:
    """The fields of a status point; faults are comma-joined as the contract says."""
    fields: dict[str, FieldValue] = {}
    if status.online is not None:
        fields["online"] = status.online
    if status.faults is not None:
        fields["faults"] = ",".join(status.faults)
    if status.firmware is not None:
        fields["firmware"] = status.firmware
    return fields


def encode_status(zone: str, device_id: str, status: Status, ts_ms: int) -> str:
    """A `status` point."""
    return encode_line(
        "status", {"device_id": device_id, "zone": zone}, status_fields(status), ts_ms
    )
