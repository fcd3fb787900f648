"""Grouping, silences and repeats: which notifications go out, as a pure function of time.

Alertmanager's semantics: each firing alert goes to the routes it matches and, in each, to the
group of alerts sharing its `group_by` labels (rule and circuit by default: a dark circuit is one
incident, "circuit C12: 37 of 40 luminaires without supply", not 37 messages). A new group waits
`group_wait` to gather its alerts, then is flushed every `group_interval`; a flush notifies only
when something changed (a new firing alert, or the end of the incident: every alert notified as
firing resolved) or, for alerts still firing and not acknowledged, when `repeat_interval` has
passed. One deviation from Alertmanager: a partial recovery is not a notification of its own;
it rides on the incident's next one, so a circuit coming back does not send one message per
luminaire as each reports again. An alert that fires and resolves before a flush (within the
`group_wait` of a new group, or between two flushes) is not lost: the group keeps it as
`unnotified` from the cycle it is seen firing — or, when it fired and resolved within one
evaluation cycle, from the `fired` ids the engine hands over — and its next flush tells it as
resolved, with its firing and resolved times (Alertmanager does so with send_resolved): crews
hear of a fault that happened even when it is already over, once. Silenced alerts, and alerts a
firing alert inhibits (`rules.evaluation.inhibit`: a device offline by its Last Will is not also
notified as silent; also one that fired and resolved within one cycle, by what fires now), are
left out. Resolved alerts are handed back (`handled`) once a flush has dealt with them, so the
evaluator can forget them.
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from rules.evaluation.alerts import Alert
from rules.evaluation.inhibit import InhibitRule, inhibited
from rules.evaluation.inventory import Inventory
from rules.language.loader import RuleSet
from rules.notify.routing import Matcher, Route, matches_all
from rules.notify.templates import render


@dataclass(frozen=True, slots=True)
class Silence:
    """A maintenance window: alerts matching every matcher are not notified meanwhile."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str = ""

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at and matches_all(self.matchers, labels)


@dataclass(frozen=True, slots=True)
class Group:
    key: str
    route_id: str
    receiver: str
    labels: tuple[tuple[str, str], ...]
    created_at: datetime
    next_flush_at: datetime
    last_notified_at: datetime | None = None
    notified_firing: frozenset[str] = frozenset()
    """Ids of the alerts the last notification carried as firing."""
    unnotified: frozenset[str] = frozenset()
    """Ids of the alerts seen firing in the group since its last notification and not carried
    by one yet: one that resolves meanwhile is still owed, as resolved, at the next flush."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one receiver about one group."""

    receiver: str
    group_key: str
    group_labels: tuple[tuple[str, str], ...]
    title: str
    firing: tuple[Alert, ...]
    resolved: tuple[Alert, ...]
    at: datetime

    @property
    def body(self) -> str:
        lines = [f"FIRING {a.summary}" for a in self.firing]
        lines += [f"RESOLVED {a.summary}{_span(a)}" for a in self.resolved]
        return "\n".join(lines)


def _span(alert: Alert) -> str:
    """When a resolved alert fired and resolved (each in its rule's clock, UTC)."""
    if alert.fired_at is None or alert.resolved_at is None:
        return ""
    fired = alert.fired_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    resolved = alert.resolved_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"; fired {fired}, resolved {resolved}"


@dataclass(frozen=True, slots=True)
class Dispatched:
    groups: Mapping[str, Group]
    notifications: list[Notification] = field(default_factory=list)
    handled: frozenset[str] = frozenset()
    """Alert ids a notification carried, or that need none (resolved and never notified)."""


def dispatch(
    route: Route,
    groups: Mapping[str, Group],
    firing: Sequence[Alert],
    resolved: Sequence[Alert],
    now: datetime,
    *,
    rules: RuleSet,
    inventory: Inventory,
    silences: Sequence[Silence] = (),
    acked: Collection[str] = frozenset(),
    inhibit_rules: Sequence[InhibitRule] = (),
    fired: Collection[str] = frozenset(),
) -> Dispatched:
    """The notifications due at `now` and the groups' new state. `fired`: ids of the alerts
    that fired since the last dispatch (the cycle's firing transitions); those of them already
    in `resolved` fired and resolved within the cycle, and are owed a notice all the same."""
    members: dict[str, list[Alert]] = {}
    routes: dict[str, Route] = {}
    handled: set[str] = set()
    joined: dict[str, set[str]] = {}
    """Per group, the alerts seen firing in it for the first time since its last notice."""
    out = dict(groups)
    fleeting = [a for a in resolved if a.id in fired] if fired else []
    muted = inhibited(inhibit_rules, firing, fleeting)
    for alert in (*firing, *resolved):
        labels = alert.label_set()
        ident = alert.id  # a hash: computed once
        if ident in muted or any(s.mutes(labels, now) for s in silences):
            if alert.resolved_at is not None:
                handled.add(ident)
            continue
        # Seen firing now: still firing, or fired and resolved within this cycle.
        seen_firing = alert.resolved_at is None or ident in fired
        for target in route.match(labels):
            key = group_key(target, labels)
            members.setdefault(key, []).append(alert)
            routes[key] = target
            if key not in out and seen_firing:
                out[key] = Group(
                    key,
                    target.id,
                    target.receiver,
                    tuple((name, labels.get(name, "")) for name in target.group_by),
                    now,
                    now + target.group_wait,
                )
            group = out.get(key)
            if (
                seen_firing
                and group is not None
                and ident not in group.notified_firing
                and ident not in group.unnotified
            ):
                joined.setdefault(key, set()).add(ident)
    for key, ids in joined.items():
        out[key] = replace(out[key], unnotified=out[key].unnotified | ids)
    notifications: list[Notification] = []
    for key, group in list(out.items()):
        if group.next_flush_at > now:
            continue
        found = members.get(key, [])
        live = [a for a in found if a.resolved_at is None]
        gone = [a for a in found if a.resolved_at is not None]
        told = [a for a in gone if a.id in group.notified_firing]
        missed = [a for a in gone if a.id in group.unnotified]
        fresh = [a for a in live if a.id not in group.notified_firing]
        repeat = group.last_notified_at is not None and (
            now - group.last_notified_at >= routes[key].repeat_interval if key in routes else False
        )
        unacked = [a for a in live if a.id not in acked]
        # A partial recovery waits for the incident's end (or its next notification): crews
        # want "circuit C12 back", not a message per luminaire as each reports again. An alert
        # that fired and resolved unnotified is news like a fresh one.
        send = (
            bool(fresh) or bool(missed) or (bool(told) and not live) or (repeat and bool(unacked))
        )
        if send:
            notifications.append(
                Notification(
                    group.receiver,
                    key,
                    group.labels,
                    _title(group, live, [*told, *missed], rules, inventory),
                    tuple(live),
                    (*told, *missed),
                    now,
                )
            )
            handled.update(a.id for a in live)
        if not live:
            del out[key]
            continue
        interval = routes[key].group_interval
        out[key] = replace(
            group,
            next_flush_at=now + interval,
            last_notified_at=now if send else group.last_notified_at,
            notified_firing=frozenset(a.id for a in live) if send else group.notified_firing,
            unnotified=frozenset() if send else group.unnotified,
        )
    # A resolved alert is let go once no group still owes its notice (an alert may sit in the
    # groups of several routes, flushed at different times).
    owed = {i for group in out.values() for i in (*group.notified_firing, *group.unnotified)}
    handled.update(a.id for a in resolved if a.id not in owed)
    return Dispatched(out, notifications, frozenset(handled))


def group_key(route: Route, labels: Mapping[str, str]) -> str:
    values = ",".join(f"{name}={labels.get(name, '')}" for name in route.group_by)
    return f"{route.id}|{route.receiver}|{values}"


def _title(
    group: Group,
    live: Sequence[Alert],
    told: Sequence[Alert],
    rules: RuleSet,
    inventory: Inventory,
) -> str:
    shown = live or told
    first = shown[0]
    if len(live) == 1 and not told:
        return first.summary
    if not live and len(told) == 1:
        return f"RESOLVED: {first.summary}"
    labels = dict(group.labels)
    if labels.get("circuit"):
        circuit = labels["circuit"]
        scope, total = f"circuit {circuit}", inventory.circuit_sizes.get(circuit)
    elif labels.get("zone"):
        scope, total = f"zone {labels['zone']}", inventory.zone_sizes.get(labels["zone"])
    else:
        scope, total = "luxtel", len(inventory) or None
    rule = rules.by_name(first.rule) if labels.get("rule") else None
    template = rule.group_summary if rule is not None else "{scope}: {count} of {total} alerts"
    text = render(
        template,
        {
            "scope": scope,
            "count": len(shown),
            "total": total if total is not None else len(shown),
            "rule": first.rule if rule is not None else "several rules",
            "severity": first.severity,
            "zone": labels.get("zone", first.zone),
            "circuit": labels.get("circuit", first.circuit),
        },
    )
    return text if live else f"RESOLVED: {text}"
