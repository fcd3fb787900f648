"""An alert and its lifecycle, told by timestamps (as Prometheus does), not by flags.

pending (active_at) → firing (fired_at) → resolved (resolved_at); `cleared_at` is when the
condition last turned false while firing (`keep_firing_for` counts from it); `last_sent_at` is
when a notification last carried it. One active alert per (rule, device); a resolved one is kept
apart, under its id, until its resolved notice has been handed to the notifier.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

AlertKey = tuple[str, str]
"""(rule, device_id)"""

State = Literal["pending", "firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    device_id: str
    zone: str
    circuit: str
    severity: str
    labels: tuple[tuple[str, str], ...]
    value: float
    summary: str
    active_at: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    cleared_at: datetime | None = None
    last_sent_at: datetime | None = None
    _id: str = field(default="", init=False, repr=False, compare=False)
    """`id`, once asked for (a copy made by `replace` asks again)."""

    @property
    def key(self) -> AlertKey:
        return (self.rule, self.device_id)

    @property
    def id(self) -> str:
        """Stable and short, for `luxtel alerts ack ID`: the rule, device and start. Kept: each
        cycle asks every alert's (the store's diff, dispatch, `mark_sent`), and a hash costs
        more than the rest of an unchanged alert's share of a cycle."""
        found = self._id
        if not found:
            text = f"{self.rule}|{self.device_id}|{self.active_at.isoformat()}"
            found = hashlib.blake2b(text.encode(), digest_size=5).hexdigest()
            object.__setattr__(self, "_id", found)
        return found

    @property
    def state(self) -> State:
        if self.resolved_at is not None:
            return "resolved"
        return "pending" if self.fired_at is None else "firing"

    def label_set(self) -> dict[str, str]:
        """The labels routes and silences match on."""
        out = dict(self.labels)
        out.update(
            rule=self.rule,
            alertname=self.rule,
            severity=self.severity,
            zone=self.zone,
            device_id=self.device_id,
        )
        if self.circuit:
            out["circuit"] = self.circuit
        return out


TransitionKind = Literal["pending", "firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert entering a state, at a time; firing and resolved ones are published."""

    alert: Alert
    kind: TransitionKind
    at: datetime
