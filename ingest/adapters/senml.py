"""SenML packs (RFC 8428, JSON) from LwM2M / IPSO devices: records resolved, then grouped into
readings.

Resolution (RFC 8428 §4.6): base fields (`bn`, `bt`, `bu`, `bv`, `bs`) apply to the records that
follow until another record sets them; a record's name is `bn + n`, its time `bt + t`, its value
`bv + v` (or `vb`, `vs`, `vd` as they are), its sum `bs + s` (taken as the value when there is
no `v`), its unit `u` or else `bu`. A field whose name ends in `_` must be understood, so a pack
with one is rejected (§4.4); `bver` above 10 too.

Time (§4.5.3): a resolved time of 2**28 or more is epoch seconds; a smaller one (0 when there is
none) is relative to now — here the message's receive time, the only "now" the ingester has:
`t: -60` is a minute before luxtel received it. A relative time of 0 means the reading has no
`ts` of its own and is stored at its receive time, as a contract reading without `ts` is.

Names: the end of a record's name is looked up in the IPSO table (object/instance/resource: 3305
power measurement, 3311 light control, 3303 temperature, 3316 voltage, 3317 current, 3301
illuminance) and the source's own `names`; what comes before it names the device (`urn:dev:mac:
0024befffe804ff1/3305/0/5800`) unless the source takes the device from the topic. Records of one
device at one time make one reading; records whose names are not in the table are ignored.
A record's unit, when it has one, is converted to the contract's (`kWh` → Wh, `K` → °C, `/` → %
for the dimmer); a unit that cannot be is rejected as `unit_mismatch`, never assumed.
"""

import math
from datetime import datetime
from typing import Any, Final

from ingest.adapters.config import SourceConfig
from ingest.adapters.directory import DeviceDirectory
from ingest.adapters.mapping import (
    Mapped,
    Rejected,
    Where,
    _new_mapped,
    device_of,
    shown,
    whole,
    zone_of,
)
from ingest.adapters.units import CONTRACT_UNITS, conversion
from ingest.decode import RejectionError
from models import Reason, is_identifier
from models.reading import FIELD_TYPES
from models.timestamps import epoch_ms

IPSO: Final = {
    "3305/0/5800": "power_w",  # Power Measurement: Instantaneous active power, W
    "3305/0/5805": "energy_wh",  # Power Measurement: Cumulative active power, Wh
    "3305/0/5820": "power_factor",  # Power Measurement: Power factor
    "3311/0/5850": "lamp_on",  # Light Control: On/Off, boolean
    "3311/0/5851": "dim_pct",  # Light Control: Dimmer, 0-100 %
    "3303/0/5700": "driver_temp_c",  # Temperature: Sensor Value, Cel
    "3316/0/5700": "voltage_v",  # Voltage: Sensor Value, V
    "3317/0/5700": "current_a",  # Current: Sensor Value, A
    "3301/0/5700": "lux",  # Illuminance: Sensor Value, lx
}
"""The IPSO resources a street-light controller reports, and the contract field of each."""

RELATIVE_LIMIT: Final = 2**28
NAME_CACHE: Final = 65_536
"""Resolved record names remembered (~300 bytes each: at most ~20 MB)."""
MAX_RECORDS: Final = 10_000
_VALUE_KEYS: Final = ("v", "vb", "vs", "vd")
_KNOWN: Final = frozenset(
    ("bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut")
)
_PLAIN: Final = frozenset(("n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"))
"""A record's fields that are not base fields."""
_SIMPLE: Final = frozenset(("n", "u", "v"))
"""A record with no other field and a number in `v` (nearly every record of a pack after the
first) needs none of the checks for base fields, other value kinds, sums or times."""


def _number(record: dict[str, Any], key: str, index: int) -> float:
    value = record.get(key, 0)
    if (type(value) is not int and type(value) is not float) or not math.isfinite(value):
        raise RejectionError(
            Reason.SENML_INVALID, f"record {index}: {key} is {shown(value)}, not a number"
        )
    return value


def _new_group(
    groups: dict[tuple[str, float], dict[str, Any]], prefix: str, time: float, received_at: datetime
) -> dict[str, Any]:
    """The reading of one device at one time, begun with its `ts`: an epoch time as it is, a
    relative one from the receive time, none for 0 (stored at its receive time)."""
    group: dict[str, Any] = {}
    if time >= RELATIVE_LIMIT:
        group["ts"] = time
    elif time != 0:
        group["ts"] = epoch_ms(received_at) / 1000 + time
    groups[(prefix, time)] = group
    return group


class SenmlAdapter:
    """A compiled `senml` source."""

    def __init__(self, source: SourceConfig, directory: DeviceDirectory | None) -> None:
        self.source = source
        self.directory = directory
        self.names = {**IPSO, **source.names}
        self.device = None if source.device_id in (None, "name") else Where.of(source.device_id)
        self.zone = Where.of(source.zone or "inventory")
        self._suffixes = sorted(self.names, key=len, reverse=True)
        self._resolved: dict[str, tuple[str | None, str, str | None]] = {}
        """Names seen, with their field and device prefix (a fleet's names repeat; bounded)."""

    def map(self, levels: list[str], body: Any, received_at: datetime) -> list[Mapped | Rejected]:
        """The readings of one pack; raises RejectionError when the pack itself is invalid,
        and returns a `Rejected` for a reading that is."""
        if type(body) is not list or not body:
            raise RejectionError(
                Reason.SENML_INVALID, "a SenML pack must be a non-empty JSON array of records"
            )
        if len(body) > MAX_RECORDS:
            raise RejectionError(
                Reason.SENML_INVALID, f"the pack holds {len(body)} records, over {MAX_RECORDS}"
            )
        groups: dict[tuple[str, float], dict[str, Any]] = {}
        resolved = self._resolved
        bn, bt, bu, bv, bs = "", 0.0, None, 0.0, 0.0
        group: dict[str, Any] = {}
        group_prefix: str | None = None
        group_time = 0.0
        for index, record in enumerate(body):
            if record.__class__ is not dict:
                raise RejectionError(Reason.SENML_INVALID, f"record {index} is not an object")
            v = record.get("v")
            if (v.__class__ is float or v.__class__ is int) and _SIMPLE.issuperset(record):
                n = record.get("n", "")
                if n.__class__ is not str:
                    raise RejectionError(Reason.SENML_INVALID, f"record {index}: n is not a string")
                name = bn + n
                if not name:
                    raise RejectionError(Reason.SENML_INVALID, f"record {index} has no name")
                found = resolved.get(name)
                field, prefix, plain_unit = self._field(name) if found is None else found
                if field is None:
                    continue
                value: Any = bv + v if bv else v
                unit = record.get("u", bu)
                if prefix != group_prefix or bt != group_time:
                    found_group = groups.get((prefix, bt))
                    group = (
                        _new_group(groups, prefix, bt, received_at)
                        if found_group is None
                        else found_group
                    )
                    group_prefix, group_time = prefix, bt
                if plain_unit is not None and (unit is None or unit == plain_unit):
                    group[field] = value
                else:
                    group[field] = self._convert(field, value, unit, name)
                continue
            if not _KNOWN.issuperset(record):
                for key in record:
                    if key not in _KNOWN and key.endswith("_"):
                        raise RejectionError(
                            Reason.SENML_INVALID,
                            f"record {index}: {key!r} must be understood (RFC 8428 §4.4) "
                            "and is not",
                        )
            if not _PLAIN.issuperset(record):  # a base field, or bver: rarer than not
                if "bver" in record and (type(record["bver"]) is not int or record["bver"] > 10):
                    raise RejectionError(
                        Reason.SENML_INVALID,
                        f"record {index}: bver {shown(record['bver'])} is unknown",
                    )
                if "bn" in record:
                    if type(record["bn"]) is not str:
                        raise RejectionError(
                            Reason.SENML_INVALID, f"record {index}: bn is not a string"
                        )
                    bn = record["bn"]
                if "bt" in record:
                    bt = _number(record, "bt", index)
                if "bu" in record:
                    bu = record["bu"] if type(record["bu"]) is str else None
                if "bv" in record:
                    bv = _number(record, "bv", index)
                if "bs" in record:
                    bs = _number(record, "bs", index)
            n = record.get("n", "")
            if type(n) is not str:
                raise RejectionError(Reason.SENML_INVALID, f"record {index}: n is not a string")
            name = bn + n
            if not name:
                raise RejectionError(Reason.SENML_INVALID, f"record {index} has no name")
            found = resolved.get(name)
            field, prefix, plain_unit = self._field(name) if found is None else found
            if field is None:
                continue  # a name luxtel does not map: ignored (RFC 8428 allows any)
            kinds = ("v" in record) + ("vb" in record) + ("vs" in record) + ("vd" in record)
            if kinds > 1:
                present = ", ".join(key for key in _VALUE_KEYS if key in record)
                raise RejectionError(Reason.SENML_INVALID, f"record {index} ({name}) has {present}")
            if v.__class__ is float or v.__class__ is int:  # (orjson: ints within 64 bits)
                value = bv + v if bv else v
            elif "v" in record:
                value = _number(record, "v", index)  # raises: not a number
            elif kinds:
                value = record.get("vb", record.get("vs", record.get("vd")))
            elif "s" in record:
                value = bs + _number(record, "s", index)
            else:
                raise RejectionError(
                    Reason.SENML_INVALID, f"record {index} ({name}) has no value and no sum"
                )
            unit = record.get("u", bu)
            time = bt if "t" not in record else bt + _number(record, "t", index)
            if prefix != group_prefix or time != group_time:
                found_group = groups.get((prefix, time))
                group = (
                    _new_group(groups, prefix, time, received_at)
                    if found_group is None
                    else found_group
                )
                group_prefix, group_time = prefix, time
            if plain_unit is not None and (unit is None or unit == plain_unit):
                group[field] = value  # a float field in its contract unit: as it is
            else:
                group[field] = self._convert(field, value, unit, name)
        return self._readings(groups, levels, body, received_at)

    def _field(self, name: str) -> tuple[str | None, str, str | None]:
        """The field a record name gives, the device prefix before it, and the field's unit
        when a value in it is taken as it is (float fields)."""
        found = self._resolved.get(name)
        if found is None:
            field, prefix = self._match(name)
            plain = None
            if field is not None and FIELD_TYPES[field] is float:
                plain = CONTRACT_UNITS.get(field)
            found = (field, prefix, plain)
            if len(self._resolved) >= NAME_CACHE:
                self._resolved.clear()
            self._resolved[name] = found
        return found

    def _match(self, name: str) -> tuple[str | None, str]:
        for suffix in self._suffixes:
            if name.endswith(suffix):
                prefix = name[: -len(suffix)]
                if not prefix or prefix[-1] in "/:":
                    return self.names[suffix], prefix
        return None, ""

    def _convert(self, field: str, value: Any, unit: Any, name: str) -> Any:
        kind = FIELD_TYPES[field]
        if kind is bool or type(value) not in (int, float):
            return value  # vb for lamp_on; any other type: the validation's wrong_type
        if unit is not None and unit != CONTRACT_UNITS.get(field):
            rule = conversion(field, unit) if type(unit) is str else None
            if rule is None:
                raise RejectionError(
                    Reason.UNIT_MISMATCH,
                    f"{field} ({name}): unit {shown(unit)} cannot be converted to "
                    f"{CONTRACT_UNITS.get(field, 'a plain number')}",
                )
            value = rule.apply(value)
            if kind is int and math.isfinite(value):
                return whole(field, round(value))
        if kind is int and type(value) is float and value.is_integer():
            return whole(field, int(value))
        return value

    def _readings(
        self,
        groups: dict[tuple[str, float], dict[str, Any]],
        levels: list[str],
        body: Any,
        received_at: datetime,
    ) -> list[Mapped | Rejected]:
        if not groups:
            raise RejectionError(
                Reason.UNMAPPED_FIELD,
                "the pack holds no record whose name luxtel maps (e.g. 3305/0/5800, power_w)",
            )
        out: list[Mapped | Rejected] = []
        for index, ((prefix, _), reading) in enumerate(groups.items()):
            try:
                device_id = self._device(prefix, levels, body)
                zone = zone_of(self.zone, levels, body, device_id, self.directory)
                if (
                    "lamp_on" not in reading
                    or "power_w" not in reading
                    or "energy_wh" not in reading
                ):
                    missing = [f for f in ("lamp_on", "power_w", "energy_wh") if f not in reading]
                    raise RejectionError(
                        Reason.UNMAPPED_FIELD,
                        f"{', '.join(missing)}: no record for "
                        + ", ".join(n for n, f in self.names.items() if f in missing)
                        + f" of device {device_id!r}",
                    )
                out.append(_new_mapped(Mapped, (zone, device_id, reading, None, index)))
            except RejectionError as error:
                out.append(Rejected(index, error))
        return out

    def _device(self, prefix: str, levels: list[str], body: Any) -> str:
        if self.device is not None:
            return device_of(self.device, levels, body, self.directory)
        text = prefix.rstrip("/:")
        if text.startswith("urn:dev:"):
            text = text.split(":", 3)[-1]
        text = text.lstrip("/")
        if not text or not is_identifier(text):
            raise RejectionError(
                Reason.INVALID_DEVICE_ID,
                f'the record names\' prefix {shown(prefix)} names no device (device_id = "name"); '
                'use bn = "urn:dev:…:<id>/" or take the device from the topic',
            )
        return text
