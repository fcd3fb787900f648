"""The common case — a plain, valid reading — checked and encoded without pydantic.

Why: pydantic's validation of a reading costs ~12 µs here and the whole full-path decode ~35 µs;
nearly every message a city sends is a plain valid reading, so this path handles exactly that
and nothing else, in one C call per message (`ingest/reading_lines.c`, whose header says what
it accepts and why it is written by hand: `python -m ingest.bench_decode` measures it).

It decides only one way: it returns the message's lines or `None`, and `None` sends the message
down the full path (orjson + the pydantic models), which makes every decision about rejections,
their reasons and their sentences. The fast path never rejects anything itself, and it must
accept only what the models accept, with the same values and the same lines — held to that by
property tests against `Reading`/`BatchReading` + `encode_reading`.

A reading without `ts` is written at its receive stamp from a `Stamps` (unique per device; see
`ingest.reading_lines.Stamps`), the one object both paths stamp with: the C module stamps a
reading only once it is sure to take it, and rolls back a batch it then leaves to the full path.
"""

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from ingest.reading_lines import Stamps, batch, telemetry
from models import Reading
from models.checked import from_checked
from models.timestamps import EPOCH, from_epoch_ms

if TYPE_CHECKING:
    from ingest.reading_lines import Checked

__all__ = ["Stamps", "batch", "reading_of", "telemetry"]

_UNSENT: Final = dict.fromkeys(Reading.model_fields)
"""Every field of a reading, none sent."""


def reading_of(checked: "Checked") -> tuple[Reading, datetime]:
    """The `Reading` the full path would have built from the same JSON (property-tested), for
    the rules, and when it was: its `ts`, or for a reading without one the receive stamp it was
    written with (ms). Only built when the rules are on."""
    _, device_id, ts_us, values, stamp_ms = checked
    when = None if ts_us is None else EPOCH + timedelta(microseconds=ts_us)
    fields = {**_UNSENT, **values, "device_id": device_id, "ts": when}
    sent = set(values)
    if device_id is not None:
        sent.add("device_id")
    if when is not None:
        sent.add("ts")
    at = when if when is not None else from_epoch_ms(stamp_ms or 0)  # C: a stamp when no ts
    return from_checked(Reading, fields, sent), at
