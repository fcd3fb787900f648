"""What flows between the ingest stages."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from ingest.decode import Point
from models import DeadLetter, Handed, Observation
from mqtt.acks import Delivery


class Inbound(NamedTuple):
    """A message as it came off the broker. `delivery` is None for QoS 0 (nothing to ack).
    A named tuple, built per message with `new_inbound` (see `mqtt.codec._new_publish`)."""

    topic: str
    payload: bytes
    retained: bool
    received_at: datetime
    delivery: Delivery | None


new_inbound = tuple.__new__
"""`new_inbound(Inbound, (topic, payload, retained, received_at, delivery))`: built in C, where
`Inbound(...)` runs the named tuple's Python-level `__new__` (~0.3 µs a message)."""


@dataclass(slots=True)
class Batch:
    """Points to write, dead letters to keep, the accepted readings and statuses for the rules
    (journaled with the batch, when the rules are on), and the deliveries to acknowledge
    afterwards."""

    points: list[Point] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    handed: list[Handed] = field(default_factory=list)
    """The same for the rules' journal, as `luxtel run` hands them (`Limits.hand_over`)."""

    def __len__(self) -> int:
        return len(self.points)
