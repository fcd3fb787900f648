"""What the evaluator remembers of each luminaire between observations (`EngineState.devices`)."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class DeviceView:
    """What the engine remembers of a device between observations."""

    zone: str
    last_seen_at: datetime
    """Contact time: the later of the newest message's `ts` and its receive time."""
    lamp_history: tuple[bool, ...] = ()
    last_reading: Mapping[str, Any] | None = None
    """The newest reading's fields that rules read as `previous.NAME` (None: none kept)."""
    last_reading_at: datetime | None = None
    """The newest judged reading's `ts`: a reading at or before it gets no verdict."""
    status_at: datetime | None = None
    """The newest status's time (`at`): where the timer starts counting its silence."""
    status_ts_at: datetime | None = None
    """The newest judged status's own `ts`: a status with a `ts` at or before it gets no
    verdict (one without, a Last Will, is judged in arrival order)."""
