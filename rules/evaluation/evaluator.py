"""Rule evaluation as a pure function: `evaluate(book, state, now, observations)`.

Time and data are arguments, nothing is read from a clock or a queue, so the same inputs give
the same alerts (tests are tables of series and expected alerts per step).

Which clock decides what (the README's "How time works for rules"):

- Reading rules run in *reading time*, the readings' own `ts` (`Observation.at`). A reading
  is a sample: it shows the condition at its `ts`. A pending alert fires once a later reading
  of the device at or past `active_at + for` still shows the condition (or gives no verdict:
  its `when` is false), so the condition held from `active_at` through that reading; it is
  stamped `active_at + for`. A reading that shows the condition false drops it. A firing alert
  whose condition cleared resolves the same way, once a reading at or past `cleared_at +
  keep_firing_for` still shows it clear, stamped then. The wall clock (`now`) never moves
  them: a reading's age is not time the condition held, and a backlog replayed hours late, in
  chunks of any size, raises the same transitions, stamped alike, as the same readings
  arriving live. A reading at or before the device's newest judged reading
  (`DeviceView.last_reading_at`: a QoS 1 redelivery, a retained replay, a reading overtaken by
  a newer one) gets no verdict: it is contact for the deadman, and nothing else.
- Status rules run in the statuses' own time (`at`: the status's `ts`, or its receive time
  when it has none, as a Last Will). A status with a `ts` at or before the newest judged one
  of its device gets no verdict (a redelivered old faults list re-opened a repaired fault);
  one without a `ts` (a Last Will, stamped at receipt) is judged in arrival order, since no
  `ts` orders it against the device's own statuses. A device sends a status when its
  state changes, so a status's verdict holds until its next status: a later status moves the
  device's alerts up to its own time before its verdict applies, and the timer tick moves them
  by the silence since the device's last contact (or since this run of evaluation began, as
  for the deadman), `status_at + (now − last_seen_at)`: the wall-clock time that passed
  without a word from it, counted from its newest status's time.
- The deadman (`on: silence`) runs in *contact time*, luxtel's wall clock: it compares `now`
  with when the device was last heard from (the later of a message's `ts` and its receive
  time, and of when this run of evaluation began: luxtel's own downtime is not the device's
  silence, and the backlog the broker held for it comes after the start). It is checked on the
  timer tick only (silence sends no messages); its transitions are stamped `now` (pending,
  firing) and at the contact that ended it (resolved).

Each alert's transitions are stamped in its rule's clock, in order (never resolved before
fired).
"""

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from models import Observation
from models.timestamps import EPOCH
from rules.evaluation.alerts import Alert, AlertKey, Transition
from rules.evaluation.bucket_map import BucketMap
from rules.evaluation.columns import HELD, MIN_ROWS, ChunkRules, settle
from rules.evaluation.inventory import EMPTY, Device, Inventory
from rules.evaluation.sun import SunClock
from rules.evaluation.views import DeviceView
from rules.language.expressions import (
    HISTORY_READINGS,
    Bindings,
    Expression,
    device_map,
    history_facts,
    only_reading,
    reading_map,
    status_map,
)
from rules.language.loader import Rule, RuleSet
from rules.language.native import ASK_CEL, Fused, fuse
from rules.notify.templates import render


@dataclass(frozen=True, slots=True)
class EngineState:
    """Everything evaluation carries from one call to the next (and SQLite keeps)."""

    started_at: datetime | None = None
    """When this run of evaluation began (the engine sets it at each start): the deadman counts
    silence from then at the earliest, since luxtel cannot tell a device's silence from its own
    absence (a device never heard of is silent since then, one last heard before the restart
    is silent once `limit` has passed since it)."""
    alerts: Mapping[AlertKey, Alert] = field(default_factory=dict)
    """Pending and firing alerts, one per (rule, device)."""
    resolved: Mapping[str, Alert] = field(default_factory=dict)
    """Resolved alerts by id, until their resolved notice is handed over."""
    devices: Mapping[str, DeviceView] = field(default_factory=dict)
    """Per luminaire heard from; `evaluate()` returns a `BucketMap`, updated at the cost of
    what changed (any mapping is taken)."""


class _Place:
    """What a luminaire's conditions read that its observations do not change: its `device`
    variable and the sun at its place."""

    __slots__ = ("device", "sun")

    def __init__(self, device: Device) -> None:
        self.device = device_map(device, device.device_id, device.zone)
        self.sun = SunClock(device.lat, device.lon)


@dataclass(frozen=True, slots=True)
class Rulebook:
    """The rules and the inventory they read, and what evaluation keeps of them."""

    rules: RuleSet
    inventory: Inventory = EMPTY
    _places: dict[str, _Place] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Per luminaire of the inventory, filled as it is first heard from (and `_silences` per
    deadman rule). Neither can go stale: `rules` and `inventory` never change, another
    inventory is another Rulebook."""
    _silences: dict[str, tuple[tuple[Device, timedelta], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _verdicts: dict[str, "_Verdicts"] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _chunk_rules: list[ChunkRules | None] = field(
        default_factory=list, init=False, repr=False, compare=False
    )
    _summaries: dict[tuple[str, str, str, datetime, float, float], str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """A reading alert's summary by what it is rendered from (`summary`)."""

    def summary(self, rule: Rule, device_id: str, zone: str, since: datetime, value: float) -> str:
        """`_summary` of a luminaire's alert, kept (at most `SUMMARIES_KEPT`): a device in
        alert renders its summary again with each reading that holds it (the scalar path's
        costliest step), from a few values over and over (the inventory's device, `since`
        and the reading's value: the same rendering for the same ones)."""
        key = (rule.name, device_id, zone, since, value, math.copysign(1.0, value))
        found = self._summaries.get(key)
        if found is None:
            if len(self._summaries) >= SUMMARIES_KEPT:
                self._summaries.clear()
            device = self.inventory.get(device_id)
            found = self._summaries[key] = _summary(rule, device_id, zone, device, since, value)
        return found

    def chunk_rules(self) -> ChunkRules | None:
        """The reading rules' verdicts vectorised (None: outside what is mirrored)."""
        if not self._chunk_rules:
            rules = self.rules.of_source("reading")
            self._chunk_rules.append(ChunkRules.of(rules, self.rules.fields.get("reading", {})))
        return self._chunk_rules[0]

    def verdicts(self, source: Literal["reading", "status"]) -> "_Verdicts":
        """The verdicts of the rules on `source`, fused once per Rulebook."""
        found = self._verdicts.get(source)
        if found is None:
            found = self._verdicts[source] = _Verdicts.of(self.rules.of_source(source))
        return found

    def place(self, device_id: str) -> _Place | None:
        """The luminaire's `_Place`, None when it is not in the inventory."""
        place = self._places.get(device_id)
        if place is None:
            device = self.inventory.get(device_id)
            if device is None:
                return None
            place = self._places[device_id] = _Place(device)
        return place

    def silences(self, rule: Rule) -> tuple[tuple[Device, timedelta], ...]:
        """Every luminaire of the inventory, and how long the deadman `rule` lets it be silent."""
        found = self._silences.get(rule.name)
        if found is None:
            assert rule.absent_for_intervals is not None
            intervals = rule.absent_for_intervals
            found = self._silences[rule.name] = tuple(
                (device, timedelta(seconds=intervals * device.report_interval_s))
                for device in self.inventory
            )
        return found


SUMMARIES_KEPT = 4096
"""`Rulebook.summary`'s bound (a few hundred kB of strings)."""


@dataclass(slots=True)
class Counters:
    """Conditions that could not be evaluated, per rule (a field not sent, a type error)."""

    errors: dict[str, int] = field(default_factory=dict)


class _Run:
    """One evaluation call's working copy of the state."""

    def __init__(self, book: Rulebook, state: EngineState, counters: Counters | None) -> None:
        self.book = book
        self.alerts = dict(state.alerts)
        self.resolved = dict(state.resolved)
        self.seen = BucketMap.of(state.devices)
        self.devices: dict[str, DeviceView] = {}
        """The views this call changed, over `seen`."""
        self.transitions: list[Transition] = []
        self.counters = counters
        self.alerted = {device_id for _, device_id in self.alerts}
        """Devices with an alert in `alerts`, or that had one during this call (a superset:
        an alert removed leaves its device here). A device not in it has no alert to look up,
        to move or to clear: its observations only need their conditions run."""

    def device(self, device_id: str) -> DeviceView | None:
        view = self.devices.get(device_id)
        return self.seen.get(device_id) if view is None else view

    def count_error(self, rule: Rule) -> None:
        if self.counters is not None:
            self.counters.errors[rule.name] = self.counters.errors.get(rule.name, 0) + 1

    def fire(self, alert: Alert, at: datetime) -> Alert:
        fired = replace(alert, fired_at=at)
        self.alerts[alert.key] = fired
        self.transitions.append(Transition(fired, "firing", at))
        return fired

    def resolve(self, alert: Alert, at: datetime) -> None:
        del self.alerts[alert.key]
        done = replace(alert, resolved_at=at)
        self.resolved[done.id] = done
        self.transitions.append(Transition(done, "resolved", at))

    def advance(self, rule: Rule, alert: Alert, shown: datetime) -> Alert | None:
        """Bring `alert` up to `shown`, the time up to which its device has shown that its last
        verdict held (in the rule's clock): a pending alert fires at `active_at + for`, a
        cleared one resolves at `cleared_at + keep_firing_for`, when that is not after `shown`.
        Returns the alert, or None when it resolved."""
        if alert.fired_at is None:
            due = alert.active_at + rule.for_
            return self.fire(alert, due) if due <= shown else alert
        if alert.cleared_at is not None:
            due = alert.cleared_at + rule.keep_firing_for
            if due <= shown:
                self.resolve(alert, due)
                return None
        return alert

    def verdict(
        self,
        rule: Rule,
        alert: Alert | None,
        device_id: str,
        zone: str,
        holds: bool,
        at: datetime,
        value: float,
    ) -> None:
        """Apply one verdict of `rule` on a device at `at` (in the rule's clock); `alert` is
        the device's alert of that rule, already `advance`d as far as the observation shows."""
        if holds:
            device = self.book.inventory.get(device_id)
            if alert is None:
                alert = _new_alert(rule, device_id, zone, device, at, value)
                self.transitions.append(Transition(alert, "pending", at))
            else:
                since = alert.active_at
                summary = self.book.summary(rule, alert.device_id, alert.zone, since, value)
                alert = replace(alert, cleared_at=None, value=value, summary=summary)
            self.alerts[alert.key] = alert
            self.alerted.add(device_id)
            if alert.fired_at is None and not rule.for_:
                self.fire(alert, at)
            return
        if alert is None:
            return
        if alert.fired_at is None:
            del self.alerts[alert.key]
            return
        if alert.cleared_at is None:
            # Not before it fired: a status older than the one that fired it, judged later.
            alert = replace(alert, cleared_at=max(at, alert.fired_at))
            self.alerts[alert.key] = alert
            self.advance(rule, alert, alert.cleared_at or at)

    def contact(self, rule: Rule, alert: Alert, heard: datetime) -> None:
        """The device of a silence alert was heard from at `heard` (contact time): a pending
        one is dropped, a firing one clears (and resolves after `keep_firing_for`, on the
        timer)."""
        if alert.fired_at is None:
            del self.alerts[alert.key]
        elif alert.cleared_at is None:
            cleared = replace(alert, cleared_at=max(heard, alert.fired_at))
            self.alerts[alert.key] = cleared
            self.advance(rule, cleared, cleared.cleared_at or heard)


def evaluate(
    book: Rulebook,
    state: EngineState,
    now: datetime,
    observations: Iterable[Observation] = (),
    counters: Counters | None = None,
    *,
    deadman: bool = True,
    columnar_from: int | None = MIN_ROWS,
) -> tuple[EngineState, list[Transition]]:
    """Apply `observations` (in order), then the timers at `now`. Returns the new state and the
    transitions, in the order they happened. `state` is not changed. The deadman looks at every
    device of the inventory: the engine asks for it on its timer tick only (`deadman=False`
    when it evaluates a batch of observations).

    A chunk of at least `columnar_from` observations (None: never) is first evaluated
    column-wise (`rules.evaluation.columns`): the devices whose observations change nothing but
    their views get those views at once, and only the others go through `_observe`. The result
    is the same either way (`tests/test_rules_columns.py`)."""
    run = _Run(book, state, counters)
    reading_rules = book.verdicts("reading")
    status_rules = book.verdicts("status")
    silence_rules = book.rules.of_source("silence")
    if columnar_from is not None:
        observations = _settle(run, observations, columnar_from)
    for obs in observations:
        _observe(run, obs, reading_rules, status_rules, silence_rules)
    _tick(run, now, silence_rules if deadman else (), state.started_at or now)
    return (
        EngineState(
            state.started_at or now, run.alerts, run.resolved, run.seen.evolve(run.devices)
        ),
        run.transitions,
    )


def _settle(run: _Run, observations: Iterable[Observation], least: int) -> Iterable[Observation]:
    """Set the views of the devices whose observations change nothing else (from the chunk's
    columns); returns the observations left for `_observe`."""
    if not isinstance(observations, Sequence) or len(observations) < max(least, 1):
        return observations
    rules = run.book.chunk_rules()
    if rules is None:
        return observations
    reading = run.book.verdicts("reading").rules
    scalar, settled, raised = settle(
        run.book, rules, observations, run.device, run.alerted, _held(run, reading)
    )
    run.devices.update(settled)
    for (device_id, number), value in raised.items():
        rule = reading[number][0]
        alert = run.alerts[(rule.name, device_id)]
        summary = run.book.summary(rule, alert.device_id, alert.zone, alert.active_at, value)
        # As `_Run.verdict` leaves it after its last true verdict (`columns`' docstring).
        run.alerts[alert.key] = replace(alert, cleared_at=None, value=value, summary=summary)
    return scalar


def _held(run: _Run, reading: tuple[tuple[Rule, Expression], ...]) -> dict[str, dict[int, int]]:
    """The devices whose alerts are all pending or firing, not cleared, all of reading rules:
    per rule index (in `reading`'s order), from when (epoch microseconds, reading time) a
    reading would fire its alert (`columns.HELD`: it fires). Their readings may be settled
    column-wise."""
    number = {rule.name: i for i, (rule, _) in enumerate(reading)}
    held: dict[str, dict[int, int]] = {}
    other: set[str] = set()
    for (name, device_id), alert in run.alerts.items():
        i = number.get(name)
        if i is None or alert.cleared_at is not None:
            other.add(device_id)
        elif alert.fired_at is not None:
            held.setdefault(device_id, {})[i] = HELD
        else:
            due = alert.active_at + reading[i][0].for_
            held.setdefault(device_id, {})[i] = (due - EPOCH) // _MICROSECOND
    return {device_id: rules for device_id, rules in held.items() if device_id not in other}


_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class _Verdicts:
    """One source's rules with their verdict expressions, and those expressions' functions run
    as one (`rules.language.native.fuse`): `each` gives every result, `changes` None when they
    change nothing for a device without alerts."""

    rules: tuple[tuple[Rule, Expression], ...]
    each: Fused
    changes: Fused

    @classmethod
    def of(cls, rules: tuple[Rule, ...]) -> "_Verdicts":
        pairs = []
        for rule in rules:
            assert rule.verdict is not None
            pairs.append((rule, rule.verdict))
        natives = tuple(verdict.native for _, verdict in pairs)
        return cls(
            tuple(pairs),
            fuse(natives, changes_only=False),
            fuse(natives, changes_only=True),
        )


def _observe(
    run: _Run,
    obs: Observation,
    reading_rules: "_Verdicts",
    status_rules: "_Verdicts",
    silence_rules: tuple[Rule, ...],
) -> None:
    device_id, at, reading = obs.device_id, obs.at, obs.reading
    view = run.device(device_id)
    # Heard from when it was sent or when luxtel received it, whichever is later: the deadman
    # asks whether the controller is talking, so a backlog the broker held (luxtel restarted,
    # a gateway that buffered) counts as contact rather than raising a silence alarm for every
    # luminaire whose newest readings are still queued. A retained message replayed by the
    # broker is not contact.
    heard = at if obs.retained else max(at, obs.received_at)
    last_seen = heard if view is None else max(view.last_seen_at, heard)
    alerts = run.alerts
    quiet = device_id not in run.alerted
    if not quiet:
        for rule in silence_rules:
            silent = alerts.get((rule.name, device_id))
            if silent is not None:
                run.contact(rule, silent, heard)
    wanted = run.book.rules.fields.get("reading" if reading is not None else "status", {})
    values: dict[str, Any] | None = None
    previous: dict[str, Any] = {}
    if view is None:
        view = DeviceView(obs.zone, last_seen)
    if reading is not None:
        newest = view.last_reading_at
        if newest is not None and at <= newest:
            # Already judged, or older than a reading judged: contact, and nothing else.
            run.devices[device_id] = replace(view, last_seen_at=last_seen)
            return
        history = (*view.lamp_history, reading.lamp_on)[-HISTORY_READINGS:]
        values = reading_map(reading)
        kept = view.last_reading
        if kept is not None and newest is not None:
            previous = {**kept, "minutes_ago": (at - newest).total_seconds() / 60}
        if "previous" in wanted:
            kept = only_reading(values, wanted["previous"])
        view = DeviceView(obs.zone, last_seen, history, kept, at, view.status_at, view.status_ts_at)
        rules = reading_rules
    else:
        stated = view.status_ts_at
        sent = obs.status is not None and obs.status.ts is not None
        if sent and stated is not None and at <= stated:
            # A status judged already (a QoS 1 redelivery), or older than one judged.
            run.devices[device_id] = replace(view, last_seen_at=last_seen)
            return
        status_at = at if view.status_at is None else max(view.status_at, at)
        view = replace(
            view,
            zone=obs.zone,
            last_seen_at=last_seen,
            status_at=status_at,
            status_ts_at=at if sent else stated,
        )
        history = view.lamp_history
        rules = status_rules
    run.devices[device_id] = view
    if not rules.rules:
        return
    bindings = Bindings(_variables(run.book, obs, wanted, values, history, previous), wanted)
    variables = bindings.variables
    results = rules.changes(variables) if quiet else rules.each(variables)
    if results is None:
        return  # no alert to move or clear, and no verdict that would open one (the hot path)
    first = len(run.transitions)
    status = reading is None
    for (rule, verdict), holds in zip(rules.rules, results, strict=True):
        error = None
        if holds is ASK_CEL:
            holds, error = bindings.cel(verdict)
        if holds is False and quiet:
            continue  # no alert to move or clear: the verdict changes nothing
        if holds is not True and holds is not False:
            if holds is not None or error is not None:
                run.count_error(rule)  # not evaluable here, or not a boolean
            holds = None  # null (`when` is false) or not: no verdict, the alert keeps its state
        alert = None if quiet else alerts.get((rule.name, device_id))
        if alert is not None and (status or holds is None or holds is (alert.fired_at is None)):
            # How long the alert's state lasted: a status's verdict holds until the device's
            # next status; a reading shows a pending alert's condition still held (or a
            # cleared one's still not) up to its `ts` when its verdict agrees, or it has none.
            alert = run.advance(rule, alert, at)
        if holds is None or (holds is False and alert is None):
            continue  # what `verdict()` would conclude
        value = 1.0 if holds else 0.0
        if holds and rule.value is not None:
            number, _ = bindings.run(rule.value)
            if isinstance(number, int | float) and not isinstance(number, bool):
                value = float(number)
        run.verdict(rule, alert, device_id, obs.zone, holds, at, value)
    if len(run.transitions) - first > 1:
        # One rule's alert fired (stamped when its `for` ended) after another's went pending
        # at this observation: the device's transitions in time order.
        run.transitions[first:] = sorted(run.transitions[first:], key=lambda t: t.at)


def _variables(
    book: Rulebook,
    obs: Observation,
    wanted: Mapping[str, frozenset[str] | None],
    values: dict[str, Any] | None,
    history: tuple[bool, ...],
    previous: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """The observation's variables, as `rules.language.expressions` describes them (not yet narrowed
    to the fields the rules read: `Bindings` does that for CEL)."""
    place = book.place(obs.device_id)
    variables: dict[str, dict[str, Any]] = {}
    if "device" in wanted:
        variables["device"] = (
            place.device if place is not None else device_map(None, obs.device_id, obs.zone)
        )
    if place is not None and "sun" in wanted:
        variables["sun"] = place.sun.facts(obs.at)
    if values is not None:
        variables["reading"] = values
        if "history" in wanted:
            variables["history"] = history_facts(history)
        if "previous" in wanted:
            variables["previous"] = previous
    elif obs.status is not None:
        variables["status"] = status_map(obs.status)
    return variables


def _tick(run: _Run, now: datetime, silence_rules: tuple[Rule, ...], started: datetime) -> None:
    """The timer at `now` (wall clock): alerts of removed rules end; status alerts move by
    their device's silence since its last contact; the deadman (when `silence_rules`) looks at
    every luminaire. Reading alerts are left alone: only their device's readings move them."""
    rules = {rule.name: rule for rule in run.book.rules.rules}
    device_view = run.device
    for key, alert in list(run.alerts.items()):
        rule = rules.get(alert.rule)
        if rule is None:  # the rule was removed from the file: its alerts end
            if alert.fired_at is not None:
                run.resolve(alert, max(now, _last_stamp(alert)))
            else:
                del run.alerts[key]
        elif rule.source == "status":
            view = device_view(alert.device_id)
            if view is not None and view.status_at is not None:
                quiet = max(now - max(view.last_seen_at, started), timedelta(0))
                run.advance(rule, alert, view.status_at + quiet)
        elif rule.source == "silence" and alert.cleared_at is not None:
            run.advance(rule, alert, now)  # heard from again: keep_firing_for in contact time
    changed, seen = run.devices, run.seen
    for rule in silence_rules:
        for device, limit in run.book.silences(rule):
            view = changed.get(device.device_id) or seen.get(device.device_id)
            last = started if view is None else max(view.last_seen_at, started)
            silent_since = last + limit
            if now < silent_since:
                continue
            minutes = (now - last).total_seconds() / 60
            key = (rule.name, device.device_id)
            summary = _summary(rule, device.device_id, device.zone, device, last, minutes)
            found = run.alerts.get(key)
            if found is None:
                found = _new_alert(rule, device.device_id, device.zone, device, silent_since, 0.0)
                run.transitions.append(Transition(found, "pending", now))
            silent = replace(found, value=minutes, summary=summary)
            run.alerts[key] = silent
            run.alerted.add(device.device_id)
            if silent.fired_at is None and now - silent.active_at >= rule.for_:
                run.fire(silent, now)


def _last_stamp(alert: Alert) -> datetime:
    """The latest of an alert's own times: a transition stamped after it keeps them in order."""
    return max(t for t in (alert.active_at, alert.fired_at, alert.cleared_at) if t is not None)


def mark_sent(state: EngineState, ids: Iterable[str], at: datetime) -> EngineState:
    """Record that notifications carried these alerts; a resolved one is then forgotten."""
    wanted = set(ids)
    if not wanted:
        return state
    alerts = {
        key: replace(alert, last_sent_at=at) if alert.id in wanted else alert
        for key, alert in state.alerts.items()
    }
    resolved = {i: alert for i, alert in state.resolved.items() if i not in wanted}
    return replace(state, alerts=alerts, resolved=resolved)


def _new_alert(
    rule: Rule, device_id: str, zone: str, device: Device | None, at: datetime, value: float
) -> Alert:
    return Alert(
        rule=rule.name,
        device_id=device_id,
        zone=zone,
        circuit=device.circuit if device is not None else "",
        severity=rule.severity,
        labels=tuple(sorted(rule.labels.items())),
        value=value if math.isfinite(value) else 0.0,
        summary=_summary(rule, device_id, zone, device, at, value),
        active_at=at,
    )


@functools.lru_cache(maxsize=4096)
def _since_text(since: datetime) -> str:
    """An alert's `since` as its summary shows it: its `active_at`, rendered again with each
    reading that holds it (`strftime` was a third of rendering a summary)."""
    return since.strftime("%Y-%m-%d %H:%M UTC")


def _summary(
    rule: Rule, device_id: str, zone: str, device: Device | None, since: datetime, value: float
) -> str:
    values: dict[str, object] = {
        "rule": rule.name,
        "severity": rule.severity,
        "device_id": device_id,
        "zone": zone,
        "circuit": device.circuit if device else "?",
        "lat": device.lat if device else "?",
        "lon": device.lon if device else "?",
        "model": device.model if device else "?",
        "rated_power_w": device.rated_power_w if device else "?",
        "value": value,
        "since": _since_text(since),
    }
    return render(rule.summary, values)
