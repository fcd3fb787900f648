"""A journal record's observations as columns (`rules.evaluation.rows.Rows`), straight from its
bytes (`rules.runtime.handed_rows`, C: see its header for why), with the journal position after
it (`RowsChunk`). A record the C module does not take (another version, escapes, statuses of
another form, anything not plain) is decoded by `rules.runtime.channel.decode_handed` instead,
which decides what it holds: both give the same observations (`tests/test_rules_rows.py`).

A row's `Observation` is made only when asked for, from the record's bytes (its entry's span,
with orjson), as `decode_handed` makes it; a status's, rare, at once.
"""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import orjson

from models import Observation, SentReading
from models.timestamps import EPOCH
from rules.evaluation.field_values import AnyField, FieldKinds, FieldValues
from rules.evaluation.rows import Rows
from rules.language.expressions import READING_FIELDS
from rules.runtime.channel import decode_status_entry
from rules.runtime.handed_rows import parse

if TYPE_CHECKING:
    from rules.runtime.journal import Position

_US = timedelta(microseconds=1)
_FIELD = {name: i for i, name in enumerate(READING_FIELDS)}
_LOWEST_US = (datetime.min.replace(tzinfo=UTC) - EPOCH) // _US
_HIGHEST_US = (datetime.max.replace(tzinfo=UTC) - EPOCH) // _US
"""The `ts` a datetime can hold: outside them `decode_handed` decides (it cannot read it)."""


class RowsChunk(Rows):
    """The observations of one journal record, as columns, with the position after it and the
    record's size in bytes (what the engine's gathering is bounded by)."""

    __slots__ = ("position", "size")
    position: "Position"
    size: int


def rows_of(body: bytes) -> RowsChunk | None:
    """The record body's observations as columns (`position` and `size` left for the caller to
    set); None when the C module does not take it (then `decode_handed` reads it)."""
    parsed = parse(body, READING_FIELDS)
    if parsed is None:
        return None
    (
        count,
        device_bytes,
        device_names,
        zone_bytes,
        zone_names,
        at_bytes,
        received_bytes,
        received_texts,
        retained_bytes,
        status_bytes,
        start_bytes,
        end_bytes,
        kind_bytes,
        value_bytes,
    ) = parsed
    at_us = np.frombuffer(at_bytes, np.int64)
    if count and (at_us.min() < _LOWEST_US or at_us.max() > _HIGHEST_US):
        return None
    received_at = [datetime.fromisoformat(text) for text in received_texts]
    received_us = np.array([(r - EPOCH) // _US for r in received_at] + [0], dtype=np.int64)
    retained = np.frombuffer(retained_bytes, np.uint8).astype(bool)
    reading = np.frombuffer(status_bytes, np.uint8) == 0
    heard_us = np.where(
        retained, at_us, np.maximum(at_us, received_us[np.frombuffer(received_bytes, np.int64)])
    )
    starts = np.frombuffer(start_bytes, np.int64).tolist()
    ends = np.frombuffer(end_bytes, np.int64).tolist()
    zone = np.frombuffer(zone_bytes, np.int64)
    received = np.frombuffer(received_bytes, np.int64)
    statuses: dict[int, Observation] = {}
    if not reading.all():
        at_us = at_us.copy()
        for i in np.flatnonzero(~reading).tolist():
            obs = statuses[i] = decode_status_entry(orjson.loads(body[starts[i] : ends[i]]))
            at_us[i] = (obs.at - EPOCH) // _US
            heard_us[i] = (
                at_us[i] if obs.retained else max(at_us[i], (obs.received_at - EPOCH) // _US)
            )
    kinds = np.frombuffer(kind_bytes, np.int8).reshape(len(READING_FIELDS), count)
    values = np.frombuffer(value_bytes, np.float64).reshape(len(READING_FIELDS), count)

    def fields(names: set[str]) -> Mapping[str, AnyField]:
        return {
            name: FieldKinds(kinds[_FIELD[name]], values[_FIELD[name]])
            if name in _FIELD
            else FieldValues.absent(count)
            for name in names
        }

    def make(i: int) -> Observation:
        return take([i])[0]

    def take(rows: list[int]) -> list[Observation]:
        """The rows' observations, as `decode_handed` makes them, from their entries' bytes
        (one orjson call for all of them)."""
        entries = orjson.loads(b"[%s]" % b",".join(body[starts[i] : ends[i]] for i in rows))
        out = []
        for i, entry in zip(rows, entries, strict=True):
            found = statuses.get(i)
            if found is not None:
                out.append(found)
                continue
            zone_name, device_id, at, _, retained_flag, sent = entry
            out.append(
                Observation(
                    zone_name,
                    device_id,
                    EPOCH + at * _US,
                    received_at[received[i]],
                    SentReading(sent),
                    None,
                    retained_flag,
                )
            )
        return out

    return RowsChunk(
        device_names,
        np.frombuffer(device_bytes, np.int64),
        at_us,
        heard_us,
        reading,
        fields,
        make,
        lambda i: zone_names[zone[i]],
        lambda i: make(i).at if i in statuses else EPOCH + int(at_us[i]) * _US,
        take,
    )
