"""From one MQTT message to line-protocol points and dead letters: a function of (topic,
payload, receive time, limits) and of one piece of memory, so every rejection can be tested as a
table.

A message never raises: whatever is wrong with it becomes a dead letter with a specific reason.
In a gateway's batch each element stands alone.

The time a point is written at: the reading's (or status's) own `ts` when it sent one, checked
against the receive time (the wall clock read once per socket read, `ingest.mqtt_source`) with
the allowed skew; without one, its receive stamp: the receive time in ms made unique per device
and strictly increasing (`Limits.stamps`, an `ingest.reading_lines.Stamps`, the memory), so two
readings of a device read in one go never overwrite each other. A reading with `ts` lands as the
same point however often it is delivered (exactly once); one without gets a new stamp at each
delivery (at least once). A message the broker flagged retained (`retained=True`) is written
only for what carries its own `ts`; what has none is not written again, only observed and
counted (`Decoded.retained_skipped`).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from influx.line_protocol import EncodeError, encode_reading, encode_status
from ingest import fast_path
from ingest.rate_limit import RateLimiter
from ingest.topics import Kind, Topic, TopicError, parse_topic
from models import (
    EARLIEST_TS,
    BatchReading,
    DeadLetter,
    Handed,
    JournalRun,
    Observation,
    Reading,
    Reason,
    Status,
)
from models.deadletter import PAYLOAD_KEPT_BYTES
from models.timestamps import epoch_ms, from_epoch_ms

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
    hand_over: bool = False
    """With `observe`: put them in `Decoded.handed` rather than `Decoded.observations`, the
    readings the fast path checked as their journal entries, which the C module writes into a
    `models.JournalRun`, rather than `Observation`s with a `Reading` model — what `luxtel run`
    journals for its rules process, which reads nothing of the model (building it cost ~5.5 µs
    of CPU a reading: `python bench/journal.py`)."""
    payload_kept_bytes: int = PAYLOAD_KEPT_BYTES
    """How much of a rejected payload its dead-letter record keeps (`DeadLetter.of`)."""
    _topics: dict[str, Topic] = field(default_factory=dict, compare=False, repr=False)
    stamps: fast_path.Stamps = field(default_factory=fast_path.Stamps, compare=False, repr=False)
    """The receive stamps of readings without `ts` (memory, not a setting): shared by every
    message decoded with these limits, so one `Limits` per pipeline (bounded: see `Stamps`)."""
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
    handed: list[Handed] = field(default_factory=list)
    """With `Limits.hand_over`, the observations for the rules' journal, in order."""
    run: JournalRun | None = None
    """With `Limits.hand_over`, the run of fast-path entries at the end of `handed`, which the
    next reading the fast path checks joins (None: the next one starts a new run)."""
    unknown_fields: int = 0
    retained_skipped: int = 0
    """Retained readings and statuses without `ts`: observed, not written again."""
    received_json: tuple[datetime, bytes] | None = None
    """With `Limits.hand_over`, the last receive time and its JSON text (orjson's), for the
    fast path's journal entries: a chunk's messages share one."""

    def received_text(self, received_at: datetime) -> bytes:
        """`received_at` as orjson writes it (a quoted ISO 8601 string), made once a chunk."""
        cached = self.received_json
        if cached is not None and cached[0] is received_at:
            return cached[1]
        text = orjson.dumps(received_at)
        self.received_json = (received_at, text)
        return text

    def observed(self, observation: Observation, hand_over: bool) -> None:
        """Keep an observation of the full path (`Limits.hand_over`: in `handed`, after the
        run of fast-path entries before it)."""
        if hand_over:
            self.handed.append(observation)
            self.run = None
        else:
            self.observations.append(observation)

    def journal_run(self) -> JournalRun:
        """The run the fast path's next journal entries go to (`Limits.hand_over`)."""
        run = self.run
        if run is None:
            run = self.run = JournalRun.empty()
            self.handed.append(run)
        return run


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


def _timestamp_ms(
    ts: datetime | None, device_id: str, received_at: datetime, received_ms: int, limits: Limits
) -> int:
    """The ms a reading or status is written at: its `ts` (which may be ahead of the receive
    time by the allowed skew, no more) or, without one, its receive stamp (`Limits.stamps`)."""
    if ts is None:
        return limits.stamps.stamp(device_id, received_ms)
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
            payload, topic.zone, topic.source_id, received_ms, limits.skew_ms, False, limits.stamps
        )
        if line is None:
            return False
        out.points.append(_new_point(Point, (line, name)))
        return True
    if limits.hand_over:
        run = out.run if out.run is not None else out.journal_run()
        cached = out.received_json  # `received_text` inline: a method call cost ~50 ns more
        text = (
            cached[1]
            if cached is not None and cached[0] is received_at
            else out.received_text(received_at)
        )
        line = fast_path.telemetry(
            payload,
            topic.zone,
            topic.source_id,
            received_ms,
            limits.skew_ms,
            text,
            limits.stamps,
            run,
        )
        if line is None:
            return False
        out.points.append(_new_point(Point, (line, name)))
        run.readings += 1
        return True
    checked = fast_path.telemetry(
        payload, topic.zone, topic.source_id, received_ms, limits.skew_ms, True, limits.stamps
    )
    if checked is None:
        return False
    return _observed(topic, name, [checked], received_at, out)


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
        lines = fast_path.batch(
            payload, topic.zone, received_ms, limits.skew_ms, False, limits.stamps
        )
        if lines is None:
            return False
        out.points.extend([_new_point(Point, (line, name)) for line in lines])
        return True
    if limits.hand_over:
        run = out.run if out.run is not None else out.journal_run()
        lines = fast_path.batch(
            payload,
            topic.zone,
            received_ms,
            limits.skew_ms,
            out.received_text(received_at),
            limits.stamps,
            run,
        )
        if lines is None:
            return False
        out.points.extend([_new_point(Point, (line, name)) for line in lines])
        run.readings += len(lines)
        return True
    elements = fast_path.batch(
        payload, topic.zone, received_ms, limits.skew_ms, True, limits.stamps
    )
    if elements is None:
        return False
    return _observed(topic, name, elements, received_at, out)


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
        reading, at = fast_path.reading_of(checked)
        device_id = reading.device_id or topic.source_id
        out.points.append(_new_point(Point, (checked[0], name)))
        out.observations.append(Observation(topic.zone, device_id, at, received_at, reading))
    return True


_FAST = {Kind.TELEMETRY: _fast_telemetry, Kind.BATCH: _fast_batch}


class _Delivery(NamedTuple):
    """What the full path needs to know of a message besides its body."""

    name: str
    received_at: datetime
    received_ms: int
    retained: bool


_new_delivery = tuple.__new__
"""`_new_delivery(_Delivery, (...))`: as `_new_point`, without the Python-level `__new__`."""


def _add_reading(
    topic: Topic,
    device_id: str,
    reading: Reading,
    limits: Limits,
    out: Decoded,
    delivery: _Delivery,
) -> None:
    """The reading's point (unless it is a retained one without `ts`) and observation."""
    at = delivery.received_at
    if reading.ts is not None or not delivery.retained:
        ts_ms = _timestamp_ms(
            reading.ts, device_id, delivery.received_at, delivery.received_ms, limits
        )
        try:
            line = encode_reading(topic.zone, device_id, reading, ts_ms)
        except EncodeError as error:  # the model's ranges make this unreachable; kept as a guard
            raise RejectionError(
                Reason.INVALID_VALUE, f"reading cannot be encoded: {error}"
            ) from None
        out.points.append(Point(line, delivery.name))
        at = reading.ts or from_epoch_ms(ts_ms)
    else:
        out.retained_skipped += 1
    if limits.observe:
        out.observed(
            Observation(
                topic.zone, device_id, at, delivery.received_at, reading, retained=delivery.retained
            ),
            limits.hand_over,
        )


def _decode_telemetry(
    topic: Topic, body: Any, limits: Limits, out: Decoded, delivery: _Delivery
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
    _add_reading(topic, topic.source_id, reading, limits, out, delivery)


def _decode_batch(
    topic: Topic, body: Any, limits: Limits, out: Decoded, delivery: _Delivery
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
            _add_reading(topic, reading.device_id, reading, limits, out, delivery)
        except RejectionError as rejection:
            out.dead_letters.append(
                DeadLetter.of(
                    received_at=delivery.received_at,
                    topic=delivery.name,
                    payload=orjson.dumps(element),
                    reason=rejection.reason,
                    detail=rejection.detail,
                    index=index,
                    keep_bytes=limits.payload_kept_bytes,
                )
            )


def _decode_status(
    topic: Topic, body: Any, limits: Limits, out: Decoded, delivery: _Delivery
) -> None:
    if not isinstance(body, dict):
        raise RejectionError(Reason.PAYLOAD_NOT_OBJECT, "a status payload must be a JSON object")
    status = _validate(Status, body, "status")
    if status.is_empty():
        raise RejectionError(Reason.STATUS_EMPTY, "the status has none of online, faults, firmware")
    out.unknown_fields += len(status.model_extra or ())
    at = delivery.received_at
    if status.ts is not None or not delivery.retained:
        ts_ms = _timestamp_ms(
            status.ts, topic.source_id, delivery.received_at, delivery.received_ms, limits
        )
        line = encode_status(topic.zone, topic.source_id, status, ts_ms)
        out.points.append(Point(line, delivery.name))
        at = status.ts or from_epoch_ms(ts_ms)
    else:
        out.retained_skipped += 1
    if limits.observe:
        out.observed(
            Observation(
                topic.zone,
                topic.source_id,
                at,
                delivery.received_at,
                status=status,
                retained=delivery.retained,
            ),
            limits.hand_over,
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
    retained: bool = False,
) -> Decoded:
    """Decode one message published on topic `name`. Never raises for bad input. With a
    `limiter`, a device or gateway over its message rate has the excess dead-lettered.
    `fast=False` takes the full pydantic path for everything: the reference the fast path is
    tested against. `retained`: the broker flagged the message retained (module docstring).
    Readings without `ts` are stamped through `limits.stamps`, which remembers them."""
    out = Decoded()
    decode_into(
        out, name, payload, received_at, epoch_ms(received_at), limits, limiter, fast, retained
    )
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
    retained: bool = False,
) -> None:
    """`decode`, adding to `out`: what the ingester calls for every message of a chunk, which
    shares one `Decoded` and one receive time (`received_ms` is `epoch_ms(received_at)`). A
    retained message takes the full path (rare, and the fast path writes every reading)."""
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
        shortcut = _FAST.get(topic.kind) if fast and not retained else None
        if (
            shortcut is not None
            and len(payload) <= limits.max_payload_bytes
            and shortcut(topic, name, payload, received_at, received_ms, limits, out)
        ):
            return
        body = _parse_json(payload, limits)
        delivery = _new_delivery(_Delivery, (name, received_at, received_ms, retained))
        _DECODERS[topic.kind](topic, body, limits, out, delivery)
    except RejectionError as rejection:
        out.dead_letters.append(
            DeadLetter.of(
                received_at=received_at,
                topic=name,
                payload=payload,
                reason=rejection.reason,
                detail=rejection.detail,
                keep_bytes=limits.payload_kept_bytes,
            )
        )
