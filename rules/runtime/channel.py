"""The wire between `luxtel run` and its rules process: length-prefixed frames over a socket
pair, and the compact forms of what crosses it.

    parent → child   APPENDED       the journal's durable end (`encode_position`): read up to it
                     (end of file)  finish: deliver what is owed, then exit
    child → parent   ALERT          an alert transition for `source.publish(topic, payload)`
                     LOG            a structlog event, for the parent to log as its own
                     METRICS        the engine's Prometheus metrics, collected
                     POSITION       the journal positions evaluated and committed (two
                                    `encode_position`s), for the lag and the journal's bound

Observations themselves do not cross the channel: they go through the journal
(`rules.runtime.journal`), in the form `encode_observations` gives them.

A frame is a 4-byte big-endian length, then the kind (one byte) and the body. Every body is
JSON (orjson) or raw bytes: nothing from the channel is unpickled.

Observations are journaled compact because the parent pays for the encoding on the ingest path:
pickling the pydantic models cost ~13–16 µs per observation, this form ~1.3–1.8 µs with
`luxtel run`'s collector settings (`python bench/journal.py`), and a journal file is never
unpickled. The child rebuilds the models as unpickling would (fields, fields set, extra
fields), without validating again what the decoder validated (~6–7 µs, reading included).
"""

import asyncio
import math
import struct
from collections.abc import Mapping
from datetime import datetime
from enum import IntEnum
from typing import Any, TypeVar

import orjson
from prometheus_client.metrics_core import Metric
from pydantic import BaseModel

from models import BatchReading, Observation, Reading, Status
from models.checked import from_checked

MAX_FRAME_BYTES = 64 << 20
"""Far above any real frame: a larger length means the stream is corrupt."""

_HEADER = struct.Struct(">IB")
_TOPIC_LENGTH = struct.Struct(">H")

ModelT = TypeVar("ModelT", bound=BaseModel)


class ChannelError(Exception):
    """The stream does not hold frames of this channel."""


class Kind(IntEnum):
    APPENDED = 1
    ALERT = 2
    LOG = 3
    METRICS = 4
    POSITION = 5


_POSITION = struct.Struct(">QQ")


def encode_position(offset: int, seq: int) -> bytes:
    return _POSITION.pack(offset, seq)


def decode_positions(body: bytes) -> list[tuple[int, int]]:
    """The (offset, seq) pairs of a body of `encode_position`s."""
    if len(body) % _POSITION.size:
        raise ChannelError(f"a position body of {len(body)} bytes")
    return list(_POSITION.iter_unpack(body))


def frame(kind: Kind, body: bytes) -> bytes:
    """One frame, ready to write."""
    return _HEADER.pack(len(body) + 1, kind) + body


async def read_frame(reader: asyncio.StreamReader) -> tuple[Kind, bytes] | None:
    """The next frame, or None at the end of the stream (a frame cut short by the other
    end's death counts as the end too)."""
    try:
        length, kind = _HEADER.unpack(await reader.readexactly(_HEADER.size))
        if not 1 <= length <= MAX_FRAME_BYTES:
            raise ChannelError(f"frame of {length} bytes")
        body = await reader.readexactly(length - 1)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    try:
        return Kind(kind), body
    except ValueError:
        raise ChannelError(f"unknown frame kind {kind}") from None


def encode_observations(observations: list[Observation]) -> bytes:
    """A chunk of observations, compact: one JSON array per observation, the models as their
    fields, the names of the fields sent, and the extra fields."""
    return orjson.dumps(
        [
            [
                o.zone,
                o.device_id,
                o.at,
                o.received_at,
                o.retained,
                _model_part(o.reading),
                _model_part(o.status),
            ]
            for o in observations
        ]
    )


def _model_part(model: BaseModel | None) -> list[Any] | None:
    if model is None:
        return None
    return [
        type(model) is BatchReading,
        model.__dict__,
        list(model.__pydantic_fields_set__),
        model.__pydantic_extra__,
    ]


def decode_observations(body: bytes) -> list[Observation]:
    """The chunk `encode_observations` encoded, equal to the original."""
    parse = datetime.fromisoformat
    observations = []
    for zone, device_id, at, received_at, retained, part, status in orjson.loads(body):
        reading = None
        if part is not None:  # `_model(...)` inline: the hot path
            batch, values, fields_set, extra = part
            if (ts := values.get("ts")) is not None:
                values["ts"] = parse(ts)
            # The values are the decoder's, validated already.
            reading = from_checked(BatchReading if batch else Reading, values, fields_set, extra)
        observations.append(
            Observation(
                zone,
                device_id,
                parse(at),
                parse(received_at),
                reading,
                None if status is None else _model(Status, status),
                retained,
            )
        )
    return observations


def _model(model_class: type[ModelT], part: list[Any]) -> ModelT:
    _, values, fields_set, extra = part
    if values.get("ts") is not None:
        values["ts"] = datetime.fromisoformat(values["ts"])
    # The values are the decoder's, validated already.
    return from_checked(model_class, values, fields_set, extra)


def encode_alert(topic: str, payload: bytes) -> bytes:
    encoded = topic.encode()
    return _TOPIC_LENGTH.pack(len(encoded)) + encoded + payload


def decode_alert(body: bytes) -> tuple[str, bytes]:
    (length,) = _TOPIC_LENGTH.unpack_from(body)
    start = _TOPIC_LENGTH.size
    return body[start : start + length].decode(), body[start + length :]


def encode_log(event: Mapping[str, Any]) -> bytes:
    """A structlog event dict; values JSON cannot hold are sent as their `str()`."""
    return orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS)


def decode_log(body: bytes) -> dict[str, Any]:
    event: dict[str, Any] = orjson.loads(body)
    return event


def encode_metrics(families: list[Metric]) -> bytes:
    """Collected metric families (`registry.collect()`): name, help, type, unit, samples."""
    return orjson.dumps(
        [
            [
                m.name,
                m.documentation,
                m.type,
                m.unit,
                [[s.name, s.labels, s.value] for s in m.samples],
            ]
            for m in families
        ]
    )


def decode_metrics(body: bytes) -> list[Metric]:
    families: list[Metric] = []
    for name, documentation, kind, unit, samples in orjson.loads(body):
        family = Metric(name, documentation, kind, unit)
        for sample_name, labels, value in samples:
            # JSON has no NaN or infinity: orjson writes them as null.
            family.add_sample(sample_name, labels, math.nan if value is None else value)
        families.append(family)
    return families
