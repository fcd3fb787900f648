"""The common case — a plain, valid reading — decoded and encoded without pydantic.

Why: on the project's machine pydantic's validation of a reading (with the Python timestamp
validator) costs ~12 µs and the whole decode ~35 µs, while msgspec decodes and checks the same
JSON into a struct in ~1.3 µs (`python bench/decode.py`). Nearly every message a city sends is a
plain valid reading, so this path handles exactly that and nothing else.

It decides only one way: it returns the reading's line or `None`, and `None` sends the message
down the full path (orjson + the pydantic models), which makes every decision about rejections,
their reasons and their sentences. The fast path never rejects anything itself, and it must
accept only what the models accept, with the same values and the same line — held to that by
a property test against `Reading`/`BatchReading` + `encode_reading`. To keep it that narrow:
unknown fields (which the models keep aside and count) send a message to the full path, and
so does any `ts` form other than plain RFC 3339 with `T`, `Z` or `±hh:mm`, or epoch seconds.
"""

import re
from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec

from models import EARLIEST_TS, Reading
from models.checked import from_checked
from models.reading import INT64_MAX
from models.timestamps import epoch_ms

_MAX_DOUBLE: Final = 1.7976931348623157e308
"""The models refuse infinity; msgspec would read `1e400` as one, so the bound says so."""

PowerW = Annotated[float, msgspec.Meta(ge=0, le=5000)]
NonNegative = Annotated[float, msgspec.Meta(ge=0, le=_MAX_DOUBLE)]
VoltageV = Annotated[float, msgspec.Meta(ge=0, le=600)]
CurrentA = Annotated[float, msgspec.Meta(ge=0, le=50)]
PowerFactor = Annotated[float, msgspec.Meta(ge=0, le=1)]
DimPct = Annotated[int, msgspec.Meta(ge=0, le=100)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
DriverTempC = Annotated[float, msgspec.Meta(ge=-60, le=200)]
DeviceId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")]
"""`models.identifiers.ID_PATTERN`, ended by `\\Z`: msgspec searches with `re`, where `$` would
also match before a final newline."""


class FastReading(
    msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True, omit_defaults=True
):
    """A `telemetry` payload, or a batch element when `device_id` is set: the same fields and
    ranges as `models.Reading`. The order of the fields is the order `encode` writes them in,
    the measured values first and `device_id` and `ts` last (see `encode`)."""

    lamp_on: bool
    power_w: PowerW
    energy_wh: NonNegative
    voltage_v: VoltageV | None = None
    current_a: CurrentA | None = None
    power_factor: PowerFactor | None = None
    driver_temp_c: DriverTempC | None = None
    lux: NonNegative | None = None
    seq: Seq | None = None
    dim_pct: DimPct | None = None
    device_id: DeviceId | None = None
    ts: str | int | float | None = None

    def model(self, when: datetime | None) -> Reading:
        """The `Reading` the full path would have built (property-tested), for the rules; only
        built when they are on. `when` is the parsed `ts`."""
        values = {
            "device_id": self.device_id,
            "ts": when,
            "seq": self.seq,
            "lamp_on": self.lamp_on,
            "power_w": self.power_w,
            "energy_wh": self.energy_wh,
            "voltage_v": self.voltage_v,
            "current_a": self.current_a,
            "power_factor": self.power_factor,
            "dim_pct": self.dim_pct,
            "driver_temp_c": self.driver_temp_c,
            "lux": self.lux,
        }
        return from_checked(Reading, values, (k for k, v in values.items() if v is not None))


TELEMETRY: Final = msgspec.json.Decoder(FastReading)
BATCH: Final = msgspec.json.Decoder(list[FastReading])
FAILED: Final = (msgspec.MsgspecError, UnicodeDecodeError)
"""What the decoders raise for anything they do not take: the full path then decides."""

_PLAIN_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})"
)
"""The forms `datetime.fromisoformat` reads exactly as `models.timestamps` does."""

_EARLIEST_MS: Final = epoch_ms(EARLIEST_TS)


def timestamp(value: str | int | float) -> datetime | None:
    """The `ts` as the models parse it, for the plain forms only; None for the full path."""
    if isinstance(value, str):
        if _PLAIN_RFC3339.fullmatch(value) is None:
            return None
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except ValueError:
            return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def in_window(ts_ms: int, received_ms: int, max_skew_ms: int) -> bool:
    """Whether `ts` is surely accepted: after 2000 and not too far ahead of the receive time,
    with a millisecond's margin either side (the full path compares microseconds)."""
    return _EARLIEST_MS < ts_ms < received_ms + max_skew_ms - 1


_JSON = msgspec.json.Encoder()
_COLON_TO_EQUALS = bytes.maketrans(b":", b"=")


def encode(zone: str, device_id: str, reading: FastReading, ts_ms: int) -> str:
    """The reading's line: the same fields, types and values as `line_protocol.encode_reading`
    (property-tested, and round-tripped through a real InfluxDB).

    Built from msgspec's JSON of the struct, because formatting the floats one by one in Python
    was the largest part of the decoder's CPU (`bench/ingest.py --profile`): the JSON holds
    only the fields that were sent, in the struct's order, numbers and booleans only up to
    `device_id` and `ts`, which come last and are cut off. What is left, unquoted and with `:`
    made `=`, is the field set; the two integer fields come last and get their `i`. Floats
    are written as msgspec writes them (`1e16` where Python writes `1e+16`): the same value
    for InfluxDB. Identifiers are validated and every number is finite and in range, so
    nothing needs escaping."""
    body = _JSON.encode(reading)
    if reading.device_id is not None:
        fields = body[1 : body.find(b',"device_id"')]
    elif reading.ts is not None:
        fields = body[1 : body.find(b',"ts"')]
    else:
        fields = body[1:-1]
    if reading.dim_pct is not None:
        fields += b"i"
        if reading.seq is not None:
            at = fields.rfind(b',"dim_pct"')
            fields = fields[:at] + b"i" + fields[at:]
    elif reading.seq is not None:
        fields += b"i"
    text = fields.replace(b'"', b"").translate(_COLON_TO_EQUALS).decode()
    return f"telemetry,device_id={device_id},zone={zone} {text} {ts_ms}"
