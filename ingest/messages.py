"""What flows between the ingest stages."""

from dataclasses import dataclass, field
from datetime import datetime

from ingest.acks import Delivery
from ingest.decode import Point
from models import DeadLetter


@dataclass(slots=True)
class Inbound:
    """A message as it came off the broker. `delivery` is None for QoS 0 (nothing to ack)."""

    topic: str
    payload: bytes
    retained: bool
    received_at: datetime
    delivery: Delivery | None


@dataclass(slots=True)
class Batch:
    """Points to write, dead letters to keep, and the deliveries to acknowledge afterwards."""

    points: list[Point] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.points)
