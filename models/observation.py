"""What the rules engine sees of each accepted message: who, where, when, and what it said."""

from dataclasses import dataclass
from datetime import datetime

from models.reading import Reading
from models.status import Status


@dataclass(frozen=True, slots=True)
class Observation:
    """One accepted reading or status of one luminaire. `at` is the reading's own `ts` (or the
    receive time when it had none); `received_at` is when luxtel received it. `retained` marks
    a message the broker replayed from its retained store: it updates the view of the device
    but is not a new event."""

    zone: str
    device_id: str
    at: datetime
    received_at: datetime
    reading: Reading | None = None
    status: Status | None = None
    retained: bool = False
