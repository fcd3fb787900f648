"""From one MQTT message to line-protocol points and dead letters: a pure function of
(topic, payload, receive time, limits), so every rejection can be tested as a table.

A message never raises: whatever is wrong with it becomes a dead letter with a specific reason.
In a gateway's batch each element stands alone.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from ingest import fast_path
from ingest.line_protocol import EncodeError, encode_reading, encode_status
from ingest.rate_limit import RateLimiter
from ingest.topics import Kind, Topic, TopicError, parse_topic
from models import EARLIEST_TS, BatchReading, DeadLetter, Observation, Reading, Reason, Status
from models.timestamps import epoch_ms

if TYPE_CHECKING:
    from ingest.adapters.router import SourceRouter
    from ingest.reading_lines import Checked

TOPIC_CACHE = 65_536
"""Valid topics remembered by `Limits.topic` (~180 bytes each: at most ~12 MB)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What the decoder needs from the settings."""

    topic_root: str
    max_payload_bytes: int = 1024 * 1024
    max_clock_skew_s: float = 300.0
    observe: bool = False
    """Also return each accepted reading and status as an Observation (for the rules)."""
    _topics: dict[str, Topic] = field(default_factory=dict, compare=False, repr=False)
    sources: "SourceRouter | None" = field(default=None, compare=False, repr=False)
    """Sources beyond the contract (`ingest.adapters`): their topics go to their adapters."""

    skew_ms: int = field(init=False, compare=False, repr=False)
    """`max_clock_skew_s` in ms, worked out once (read for every reading on the fast path)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "skew_ms", int(self.max_clock_skew_s * 1000))

    def topic(self, name: str) -> Topic:
        """`parse_topic` under the root, remembering valid topics (a fleet's topics repeat;
        parsing one costs ~4 µs here). Bounded: emptied when it reaches `TOPIC_CACHE`."""
        found = self._topics.get(name)
        if found is None:
            found = parse_topic(name, self.topic_root)
            if len(self._topics) >= TOPIC_CACHE:
                self._topics.clear()
            self._topics[name] = found
        return found


class Point(NamedTuple):
    """One line of line protocol and the topic it came from (for a dead letter if InfluxDB
    refuses it). A named tuple: one is built per reading, and a frozen dataclass cost ~1 µs."""

    line: str
    topic: str


_new_point = tuple.__new__
"""`_new_point(Point, (line, topic))`, on the fast path: built in C, skipping the named tuple's
Python-level `__new__` (~0.3 µs a reading)."""


@dataclass(slots=True)
class Decoded:
    """What one message became."""

    points: list[Point] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    unknown_fields: int = 0


class RejectionError(Exception):
    """Internal: one message or element rejected, with its reason and sentence."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


M = TypeVar("M", bound=BaseModel)

_ERROR_REASONS = {
    "missing": Reason.MISSING_FIELD,
    "finite_number": Reason.NOT_FINITE,
    "timestamp_naive": Reason.NAIVE_TIMESTAMP,
    "timestamp_format": Reason.INVALID_TIMESTAMP,
    "timestamp_range": Reason.INVALID_TIMESTAMP,
    "timestamp_type": Reason.WRONG_TYPE,
    "greater_than": Reason.OUT_OF_RANGE,
    "greater_than_equal": Reason.OUT_OF_RANGE,
    "less_than": Reason.OUT_OF_RANGE,
    "less_than_equal": Reason.OUT_OF_RANGE,
    "too_long": Reason.OUT_OF_RANGE,
    "too_short": Reason.OUT_OF_RANGE,
}


def _reason_of(error: Any) -> Reason:
    kind = str(error["type"])
    if kind in _ERROR_REASONS:
        return _ERROR_REASONS[kind]
    if kind.endswith("_type"):
        return Reason.WRONG_TYPE
    if kind == "string_pattern_mismatch" and error["loc"][:1] == ("device_id",):
        return Reason.INVALID_DEVICE_ID
    return Reason.INVALID_VALUE


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "body"
    text = f"{where}: {error['msg']}"
    if error["type"] != "missing":
        shown = orjson.dumps(error["input"], default=str).decode()
        text += f" (got {shown if len(shown) <= 80 else shown[:80] + '…'})"
    return text


def _validate(model: type[M], data: Any, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as failure:
        errors = failure.errors(include_url=False)
        detail = f"{what} rejected: " + "; ".join(_describe(error) for error in errors[:5])
        if len(errors) > 5:
            detail += f"; and {len(errors) - 5} more"
        raise RejectionError(_reason_of(errors[0]), detail) from None


def _timestamp_ms(ts: datetime | None, received_at: datetime, limits: Limits) -> int:
    if ts is None:
        return epoch_ms(received_at)
    if ts > received_at + timedelta(seconds=limits.max_clock_skew_s):
        raise RejectionError(
            Reason.TIMESTAMP_IN_FUTURE,
            f"ts {ts.isoformat()} is more than {limits.max_clock_skew_s:g} s after the receive "
            f"time {received_at.isoformat()}; check the controller's clock",
        )
    if ts < EARLIEST_TS:
        raise RejectionError(
            Reason.TIMESTAMP_TOO_OLD,
            f"ts {ts.isoformat()} is before 2000-01-01; the controller's clock is probably unset",
        )
    return epoch_ms(ts)


def _parse_json(payload: bytes, limits: Limits) -> Any:
    if len(payload) > limits.max_payload_bytes:
        raise RejectionError(
            Reason.PAYLOAD_TOO_LARGE,
            f"payload is {len(payload)} bytes, over the limit of {limits.max_payload_bytes}",
        )
    try:
        return orjson.loads(payload)  # orjson refuses invalid UTF-8 too: told apart below
    except orjson.JSONDecodeError as error:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as invalid:
            raise RejectionError(
                Reason.PAYLOAD_NOT_UTF8, f"payload is not UTF-8 (byte {invalid.start} is invalid)"
            ) from None
        raise RejectionError(Reason.PAYLOAD_NOT_JSON, f"payload is not JSON: {error}") from None


def _fast_telemetry(
    topic: Topic,
    name: str,
    payload: bytes,
    received_at: datetime,
    received_ms: int,
    limits: Limits,
    out: Decoded,
) -> bool:
    """The plain valid reading, by `ingest.fast_path`; False leaves it to the full path."""
    if not limits.observe:
        line = fast_path.telemetry(
            payload, topic.zone, topic.source_id, received_ms, limits.skew_ms, False
        )
        if line is None:
            return False
        out.points.append(_new_point(Point, (line, name)))
        return True
    checked = fast_path.telemetry(
        payload, topic.zone, topic.source_id, received_ms, limits.skew_ms, True
    )
    return checked is not None and _observed(topic, name, [checked], received_at, out)


def _fast_batch(
    topic: Topic,
    name: str,
    payload: bytes,
    received_at: datetime,
    received_ms: int,
    limits: Limits,
    out: Decoded,
) -> bool:
    """A batch whose every element is a plain valid reading; otherwise False, and the full
    path takes the whole batch (and decides about each element)."""
    if not limits.observe:
        lines = fast_path.batch(payload, topic.zone, received_ms, limits.skew_ms, False)
        if lines is None:
            return False
        out.points.extend([_new_point(Point, (line, name)) for line in lines])
        return True
    elements = fast_path.batch(payload, topic.zone, received_ms, limits.skew_ms, True)
    return elements is not None and _observed(topic, name, elements, received_at, out)


def _observed(
    topic: Topic,
    name: str,
    elements: "list[Checked]",
    received_at: datetime,
    out: Decoded,
) -> bool:
    """The points and observations of readings the fast path checked with their values (rules
    on). A telemetry reading may leave out its `device_id` (the topic's); a batch element never
    does."""
    for checked in elements:
        reading, when = fast_path.reading_of(checked)
        device_id = reading.device_id or topic.source_id
        out.points.append(_new_point(Point, (checked[0], name)))
        out.observations.append(
            Observation(topic.zone, device_id, when or received_at, received_at, reading)
        )
    return True


_FAST = {Kind.TELEMETRY: _fast_telemetry, Kind.BATCH: _fast_batch}


def _reading_line(
    topic: Topic, device_id: str, reading: Reading, received_at: datetime, limits: Limits
) -> str:
    ts_ms = _timestamp_ms(reading.ts, received_at, limits)
    try:
        return encode_reading(topic.zone, device_id, reading, ts_ms)
    except EncodeError as error:  # the model's ranges make this unreachable; kept as a guard
        raise RejectionError(Reason.INVALID_VALUE, f"reading cannot be encoded: {error}") from None


def _decode_telemetry(
    topic: Topic, body: Any, received_at: datetime, limits: Limits, out: Decoded, name: str
) -> None:
    if not isinstance(body, dict):
        raise RejectionError(Reason.PAYLOAD_NOT_OBJECT, "a telemetry payload must be a JSON object")
    reading = _validate(Reading, body, "reading")
    if reading.device_id is not None and reading.device_id != topic.source_id:
        raise RejectionError(
            Reason.DEVICE_ID_MISMATCH,
            f"device_id {reading.device_id!r} in the payload differs from "
            f"{topic.source_id!r} in the topic",
        )
    out.unknown_fields += len(reading.model_extra or ())
    line = _reading_line(topic, topic.source_id, reading, received_at, limits)
    out.points.append(Point(line, name))
    if limits.observe:
        out.observations.append(
            Observation(
                topic.zone, topic.source_id, reading.ts or received_at, received_at, reading=reading
            )
        )


def _decode_batch(
    topic: Topic, body: Any, received_at: datetime, limits: Limits, out: Decoded, name: str
) -> None:
    if not isinstance(body, list):
        raise RejectionError(
            Reason.BATCH_NOT_ARRAY, "a batch payload must be a JSON array of readings"
        )
    if not body:
        raise RejectionError(Reason.BATCH_EMPTY, "the batch holds no readings")
    for index, element in enumerate(body):
        try:
            if not isinstance(element, dict):
                raise RejectionError(
                    Reason.PAYLOAD_NOT_OBJECT, "a batch element must be a JSON object"
                )
            reading = _validate(BatchReading, element, f"batch element {index}")
            out.unknown_fields += len(reading.model_extra or ())
            line = _reading_line(topic, reading.device_id, reading, received_at, limits)
        except RejectionError as rejection:
            out.dead_letters.append(
                DeadLetter.of(
                    received_at=received_at,
                    topic=name,
                    payload=orjson.dumps(element),
                    reason=rejection.reason,
                    detail=rejection.detail,
                    index=index,
                )
            )
        else:
            out.points.append(Point(line, name))
            if limits.observe:
                out.observations.append(
                    Observation(
                        topic.zone,
                        reading.device_id,
                        reading.ts or received_at,
                        received_at,
                        reading=reading,
                    )
                )


def _decode_status(
    topic: Topic, body: Any, received_at: datetime, limits: Limits, out: Decoded, name: str
) -> None:
    if not isinstance(body, dict):
        raise RejectionError(Reason.PAYLOAD_NOT_OBJECT, "a status payload must be a JSON object")
    status = _validate(Status, body, "status")
    if status.is_empty():
        raise RejectionError(Reason.STATUS_EMPTY, "the status has none of online, faults, firmware")
    out.unknown_fields += len(status.model_extra or ())
    ts_ms = _timestamp_ms(status.ts, received_at, limits)
    out.points.append(Point(encode_status(topic.zone, topic.source_id, status, ts_ms), name))
    if limits.observe:
        out.observations.append(
            Observation(
                topic.zone, topic.source_id, status.ts or received_at, received_at, status=status
            )
        )


_DECODERS = {
    Kind.TELEMETRY: _decode_telemetry,
    Kind.BATCH: _decode_batch,
    Kind.STATUS: _decode_status,
}


def decode(
    name: str,
    payload: bytes,
    received_at: datetime,
    limits: Limits,
    limiter: RateLimiter | None = None,
    *,
    fast: bool = True,
) -> Decoded:
    """Decode one message published on topic `name`. Never raises for bad input. With a
    `limiter`, a device or gateway over its message rate has the excess dead-lettered.
    `fast=False` takes the full pydantic path for everything: the reference the fast path is
    tested against."""
    out = Decoded()
    decode_into(out, name, payload, received_at, epoch_ms(received_at), limits, limiter, fast)
    return out


def decode_into(
    out: Decoded,
    name: str,
    payload: bytes,
    received_at: datetime,
    received_ms: int,
    limits: Limits,
    limiter: RateLimiter | None = None,
    fast: bool = True,
) -> None:
    """`decode`, adding to `out`: what the ingester calls for every message of a chunk, which
    shares one `Decoded` and one receive time (`received_ms` is `epoch_ms(received_at)`)."""
    sources = limits.sources
    if (
        sources is not None
        and not name.startswith(sources.root_prefix)
        and sources.decode_into(out, name, payload, received_at, received_ms, limits, limiter, fast)
    ):
        return
    try:
        try:
            topic = limits.topic(name)
        except TopicError as error:
            raise RejectionError(error.reason, error.detail) from None
        if limiter is not None and not limiter.allow(topic.source_id, received_ms / 1000):
            raise RejectionError(
                Reason.RATE_LIMITED,
                f"{topic.source_id!r} sent more than {limiter.rate:g} messages/s (bursts of "
                f"{limiter.burst:g}); the excess is kept here rather than written",
            )
        shortcut = _FAST.get(topic.kind) if fast else None
        if (
            shortcut is not None
            and len(payload) <= limits.max_payload_bytes
            and shortcut(topic, name, payload, received_at, received_ms, limits, out)
        ):
            return
        body = _parse_json(payload, limits)
        _DECODERS[topic.kind](topic, body, received_at, limits, out, name)
    except RejectionError as rejection:
        out.dead_letters.append(
            DeadLetter.of(
                received_at=received_at,
                topic=name,
                payload=payload,
                reason=rejection.reason,
                detail=rejection.detail,
            )
        )
