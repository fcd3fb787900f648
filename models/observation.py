"""What the rules engine sees of each accepted message: who, where, when, and what it said."""

from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from models.reading import Reading
from models.status import Status

SentValues: TypeAlias = dict[str, bool | int | float | None]
"""A reading's measured fields that were sent, with their values (None for a field sent as
null), as the decoder checked them (`ingest.reading_lines`'s `Checked`, which also holds
`device_id` and `ts` as None when they were sent as null)."""


class SentReading:
    """A reading as the rules process gets it back from the journal: its measured fields sent
    (`fields`, None for one sent as null; `device_id` and `ts` are the observation's) — what
    the rules read of a reading (`lamp_on`, `rules.language.expressions.reading_map`), without
    a model: the decoder validated the values before they were journaled, and rebuilding the
    models cost the rules process ~3.5 µs an observation (`python bench/journal.py`) for
    nothing it reads."""

    __slots__ = ("fields", "lamp_on")

    def __init__(self, fields: SentValues) -> None:
        self.fields = fields
        self.lamp_on: bool = fields["lamp_on"]  # type: ignore[assignment]  # checked: a bool

    def __eq__(self, other: object) -> bool:
        """Equal to a `SentReading` of the same fields, and to a `Reading` model that sent the
        same measured fields with the same values (what the rules can see of it: not its
        extra fields, nor its `device_id` and `ts`, which are the observation's)."""
        if isinstance(other, SentReading):
            return measured(self.fields) == measured(other.fields)
        if isinstance(other, Reading):
            return measured(self.fields) == sent_values(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # as a dict's

    def __repr__(self) -> str:
        return f"SentReading({self.fields!r})"


MEASURED = frozenset(Reading.model_fields) - {"device_id", "ts"}
"""A reading's measured fields: all but `device_id` and `ts`."""


def measured(fields: SentValues) -> SentValues:
    """`fields` without `device_id` and `ts` (which the C module gives as None when they were
    sent as null)."""
    return {name: value for name, value in fields.items() if name in MEASURED}


def sent_values(reading: Reading) -> SentValues:
    """The measured fields a `Reading` model was sent with, and their values."""
    values = reading.__dict__
    return {name: values[name] for name in reading.model_fields_set if name in MEASURED}


@dataclass(slots=True)
class Observation:
    """One accepted reading or status of one luminaire. `at` is the reading's own `ts` (or the
    receive time when it had none); `received_at` is when luxtel received it. `retained` marks
    a message the broker replayed from its retained store: it updates the view of the device
    but is not a new event.

    `reading` is the decoder's model (`Reading`, `BatchReading`), or in the rules process a
    `SentReading` read back from the journal. A value: nothing changes an observation once it
    is made (not a frozen dataclass only because building one cost ~1 µs more, paid for every
    observation the rules process reads)."""

    zone: str
    device_id: str
    at: datetime
    received_at: datetime
    reading: Reading | SentReading | None = None
    status: Status | None = None
    retained: bool = False


ObservedReading: TypeAlias = tuple[str, str, int, datetime, bool, SentValues]
"""A reading the decoder's fast path checked, as plain data for the rules' journal rather than
an `Observation` with a `Reading` model (building those cost `luxtel run` ~5.5 µs a reading, and
nothing in it reads them; it now hands the same entry already written as JSON, bytes): zone,
device_id, `at` in epoch microseconds (the reading's `ts`, or the receive stamp it was written
with), `received_at`, `retained`, and its measured fields sent (`SentValues`)."""


class JournalRun(bytearray):
    """Consecutive readings the decoder's fast path checked, as their journal entries written
    by the C module straight into this buffer, comma-separated (`ingest.reading_lines`'s
    `run`), and how many there are (`readings`): no Python object per reading (a bytes object
    and a tuple each, then joining them, cost `luxtel run` ~0.15 µs a reading more:
    `python bench/journal.py`)."""

    __slots__ = ("readings",)
    readings: int

    @classmethod
    def empty(cls) -> "JournalRun":
        """A new run (no `__init__` of its own: it cost ~0.15 µs more a run, and the full path's
        observations end a run)."""
        run = cls()
        run.readings = 0
        return run


Handed: TypeAlias = Observation | ObservedReading | bytes | JournalRun
"""What the decoder hands the rules' journal (`Limits.hand_over`): readings its fast path
checked as a `JournalRun` of their journal entries already written as JSON text (or one entry
alone, bytes: `ingest.reading_lines`'s `Entry`), or as plain data (`ObservedReading`),
anything else (statuses, readings of the full path) as an `Observation`."""

__all__ = [
    "MEASURED",
    "Handed",
    "JournalRun",
    "Observation",
    "ObservedReading",
    "SentReading",
    "SentValues",
    "measured",
    "sent_values",
]
