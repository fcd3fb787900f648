"""The wire between `luxtel run` and its rules process: length-prefixed frames over a socket
pair, and the compact forms of what crosses it.

    parent → child   APPENDED       the journal's durable end (`encode_position`): read up to it
                     HELD           the end told before, and that records past it are held back
                                    while ingest is backlogged (`encode_held`: with the append
                                    time of its newest record, at which silences are judged
                                    until the next APPENDED)
                     (end of file)  finish: deliver what is owed, then exit
    child → parent   ALERT          an alert transition for `source.publish(topic, payload)`
                     LOG            a structlog event, for the parent to log as its own
                     METRICS        the engine's Prometheus metrics, collected
                     POSITION       the journal positions evaluated and committed (two
                                    `encode_position`s), for the lag and the journal's bound

Observations themselves do not cross the channel: they go through the journal
(`rules.runtime.journal`), in the form `encode_handed` gives them.

A frame is a 4-byte big-endian length, then the kind (one byte) and the body. Every body is
JSON (orjson) or raw bytes: nothing from the channel is unpickled.

Observations are journaled as plain data because the parent pays for them on the ingest path
and the child again before it evaluates. Version 2 of the form (`encode_handed`): a reading is
the fields it sent, as the decoder's fast path checked them (`models.ObservedReading`: no model
is built in the parent; the C module writes a reading's entry as JSON itself, so `luxtel run`
builds no Python object per value either), and comes back as an `Observation` whose reading is
a `SentReading` — what the rules read of a reading, nothing validated or modelled again.
Statuses (rare) keep the models' form of version 1, rebuilt as unpickling would. Version 1
(`encode_observations`: every observation with its models' fields, fields set and extra fields;
pickling had cost ~13–16 µs an observation) is still read, for a journal an earlier luxtel
left. The costs, per observation (`python bench/journal.py`): see the README's journal section.
"""

import asyncio
import math
import struct
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, TypeVar

import orjson
from prometheus_client.metrics_core import Metric
from pydantic import BaseModel

from models import (
    BatchReading,
    Handed,
    JournalRun,
    Observation,
    ObservedReading,
    Reading,
    SentReading,
    Status,
)
from models.checked import from_checked
from models.observation import sent_values
from models.timestamps import EPOCH

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
    HELD = 6


_POSITION = struct.Struct(">QQ")


def encode_position(offset: int, seq: int) -> bytes:
    return _POSITION.pack(offset, seq)


def decode_positions(body: bytes) -> list[tuple[int, int]]:
    """The (offset, seq) pairs of a body of `encode_position`s."""
    if len(body) % _POSITION.size:
        raise ChannelError(f"a position body of {len(body)} bytes")
    return list(_POSITION.iter_unpack(body))


_HELD = struct.Struct(">QQd")


def encode_held(offset: int, seq: int, at: float) -> bytes:
    return _HELD.pack(offset, seq, at)


def decode_held(body: bytes) -> tuple[int, int, float]:
    """The (offset, seq, append time) of a HELD body."""
    if len(body) != _HELD.size:
        raise ChannelError(f"a held body of {len(body)} bytes")
    offset, seq, at = _HELD.unpack(body)
    return offset, seq, at


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


JOURNAL_FORMAT = 2
"""The version of `encode_handed`'s form (1: `encode_observations`'s)."""

_US = timedelta(microseconds=1)


class FormatError(ValueError):
    """A journal body of a form this version does not read."""


def encode_handed(handed: Sequence[Handed]) -> bytes:
    """A chunk of observations, in order, as version 2: `[2, [entry, ...]]`, where an entry of
    6 is a reading — zone, device_id, `at` in epoch µs, `received_at`, retained, and the
    measured fields sent (`models.ObservedReading`, as the decoder's fast path gives it, or
    made so from a `Reading` model) — and an entry of 7 a status, as version 1 has it.

    An entry given as bytes is one the decoder's fast path wrote already (JSON text of a
    reading's entry, `ingest.reading_lines`'s `Entry`), and a `JournalRun` holds several such
    entries, comma-separated: the body is then mostly a join (an empty run adds nothing)."""
    return b"".join(handed_pieces(handed))


def handed_pieces(handed: Sequence[Handed]) -> list[bytes | bytearray]:
    """`encode_handed`'s body in pieces, in order, not joined (a copy of a batch's body cost
    ~0.14 µs an observation, fresh memory and its page faults included): the journal writes
    them as they are."""
    pieces: list[bytes | bytearray] = [_OPEN]
    for h in handed:
        if isinstance(h, bytes | bytearray):
            if not h:
                continue  # an empty run
            pieces.append(h)
        else:
            pieces.append(orjson.dumps(_entry(h)))
        pieces.append(b",")
    if len(pieces) > 1:
        pieces[-1] = b"]]"
    else:
        pieces.append(b"]]")
    return pieces


def handed_count(handed: Sequence[Handed]) -> int:
    """How many observations `handed` holds (a `JournalRun` holds `readings`)."""
    return sum(h.readings if isinstance(h, JournalRun) else 1 for h in handed)


_OPEN = b"[%d,[" % JOURNAL_FORMAT


def _entry(handed: Observation | ObservedReading) -> ObservedReading | list[Any]:
    if isinstance(handed, tuple):
        return handed
    o, reading = handed, handed.reading
    if reading is None:
        return [o.zone, o.device_id, o.at, o.received_at, o.retained, None, _model_part(o.status)]
    fields = reading.fields if isinstance(reading, SentReading) else sent_values(reading)
    return (o.zone, o.device_id, (o.at - EPOCH) // _US, o.received_at, o.retained, fields)


def decode_handed(body: bytes) -> list[Observation]:
    """The chunk `encode_handed` encoded (or `encode_observations`: version 1), as the rules
    see it: the same zone, device, times, retained flag, `lamp_on` and `reading_map`; a
    status's model equal to the original."""
    data = orjson.loads(body)
    if data.__class__ is not list or not data or data[0].__class__ is list:
        return _observations_v1(data)  # a list of entries (or anything else: it fails there)
    version, entries = data
    if version != JOURNAL_FORMAT:
        raise FormatError(f"journal record of format {version!r}: this version reads 1 and 2")
    parse = datetime.fromisoformat
    epoch, us = EPOCH, _US
    new, sent = Observation, SentReading
    received_text, received_at = None, epoch
    observations = []
    for entry in entries:
        if len(entry) == 6:
            zone, device_id, at_us, received, retained, fields = entry
            if received != received_text:  # a chunk's readings share theirs, as a rule
                received_text, received_at = received, parse(received)
            observations.append(
                new(zone, device_id, epoch + at_us * us, received_at, sent(fields), None, retained)
            )
        else:
            observations += _observations_v1([entry])
    return observations


def decode_status_entry(entry: list[Any]) -> Observation:
    """One entry of a status (version 1's form, as version 2 keeps it)."""
    return _observations_v1([entry])[0]


def encode_observations(observations: list[Observation]) -> bytes:
    """A chunk of observations as version 1 (a journal an earlier luxtel left holds it): one
    JSON array per observation, the models as their fields, the names of the fields sent, and
    the extra fields."""
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


def _model_part(model: BaseModel | SentReading | None) -> list[Any] | None:
    if model is None:
        return None
    if isinstance(model, SentReading):
        raise TypeError("a SentReading has no version 1 form (it is only read back)")
    return [
        type(model) is BatchReading,
        model.__dict__,
        list(model.__pydantic_fields_set__),
        model.__pydantic_extra__,
    ]


def decode_observations(body: bytes) -> list[Observation]:
    """The chunk `encode_observations` encoded, equal to the original."""
    return _observations_v1(orjson.loads(body))


def _observations_v1(entries: list[Any]) -> list[Observation]:
    parse = datetime.fromisoformat
    observations = []
    for zone, device_id, at, received_at, retained, part, status in entries:
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
