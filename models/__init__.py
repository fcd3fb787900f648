"""The schemas of what luminaires send and what luxtel keeps: see ../shared/docs/CONTRACT.md."""

from models.deadletter import DeadLetter
from models.identifiers import ID_PATTERN, Identifier, is_identifier
from models.observation import (
    Handed,
    JournalRun,
    Observation,
    ObservedReading,
    SentReading,
    SentValues,
)
from models.reading import BatchReading, Reading
from models.reasons import Reason
from models.status import Status
from models.timestamps import EARLIEST_TS

__all__ = [
    "EARLIEST_TS",
    "ID_PATTERN",
    "BatchReading",
    "DeadLetter",
    "Handed",
    "Identifier",
    "JournalRun",
    "Observation",
    "ObservedReading",
    "Reading",
    "Reason",
    "SentReading",
    "SentValues",
    "Status",
    "is_identifier",
]
