"""Rule evaluation as a pure function: `evaluate(book, state, now, observations)`.

Time and data are arguments, nothing is read from a clock or a queue, so the same inputs give
the same alerts (tests are tables of series and expected alerts per step). Observations carry
their own time (`at`): a condition's verdict holds from that moment until the device's next
observation says otherwise, and `for` / `keep_firing_for` are checked both when an observation
arrives and at `now` (the timer tick), so an alert fires `for` after its first failing reading
even when the device reports less often than that. The deadman (rules `on: silence`) is only
ever checked at `now`: silence sends no messages.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from models import Observation
from rules.evaluation.alerts import Alert, AlertKey, Transition
from rules.evaluation.inventory import EMPTY, Device, Inventory
from rules.evaluation.sun import SunClock
from rules.language.expressions import (
    HISTORY_READINGS,
    Bindings,
    device_map,
    history_facts,
    only,
    reading_map,
    status_map,
)
from rules.language.loader import Rule, RuleSet
from rules.language.native import NotMirroredError
from rules.notify.templates import render


@dataclass(frozen=True, slots=True)
class DeviceView:
    """What the engine remembers of a device between observations."""

    zone: str
    last_seen_at: datetime
    lamp_history: tuple[bool, ...] = ()
    last_reading: Mapping[str, Any] | None = None
    """The newest reading's fields that rules read as `previous.NAME` (None: none kept)."""
    last_reading_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EngineState:
    """Everything evaluation carries from one call to the next (and SQLite keeps)."""

    started_at: datetime | None = None
    """When evaluation began: a device never heard of is silent since then."""
    alerts: Mapping[AlertKey, Alert] = field(default_factory=dict)
    """Pending and firing alerts, one per (rule, device)."""
    resolved: Mapping[str, Alert] = field(default_factory=dict)
    """Resolved alerts by id, until their resolved notice is handed over."""
    devices: Mapping[str, DeviceView] = field(default_factory=dict)


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
        self.devices = dict(state.devices)
        self.transitions: list[Transition] = []
        self.counters = counters

    def count_error(self, rule: Rule) -> None:
        if self.counters is not None:
            self.counters.errors[rule.name] = self.counters.errors.get(rule.name, 0) + 1

    def fire(self, alert: Alert, at: datetime) -> Alert:
        fired = replace(alert, fired_at=at)
        self.transitions.append(Transition(fired, "firing", at))
        return fired

    def resolve(self, alert: Alert, at: datetime) -> None:
        del self.alerts[alert.key]
        done = replace(alert, resolved_at=at)
        self.resolved[done.id] = done
        self.transitions.append(Transition(done, "resolved", at))

    def verdict(
        self, rule: Rule, device_id: str, zone: str, holds: bool, at: datetime, value: float
    ) -> None:
        """Apply one verdict of `rule` on a device at `at`."""
        key = (rule.name, device_id)
        alert = self.alerts.get(key)
        if holds:
            device = self.book.inventory.get(device_id)
            if alert is None:
                alert = _new_alert(rule, device_id, zone, device, at, value)
                self.transitions.append(Transition(alert, "pending", at))
            else:
                since = alert.active_at
                summary = _summary(rule, alert.device_id, alert.zone, device, since, value)
                alert = replace(alert, cleared_at=None, value=value, summary=summary)
            if alert.fired_at is None and at - alert.active_at >= rule.for_:
                alert = self.fire(alert, at)
            self.alerts[key] = alert
            return
        if alert is None:
            return
        if alert.fired_at is None:
            del self.alerts[key]
            return
        cleared = alert.cleared_at if alert.cleared_at is not None else at
        if alert.cleared_at is None:
            alert = replace(alert, cleared_at=at)
            self.alerts[key] = alert
        if at - cleared >= rule.keep_firing_for:
            self.resolve(alert, at)


def evaluate(
    book: Rulebook,
    state: EngineState,
    now: datetime,
    observations: Iterable[Observation] = (),
    counters: Counters | None = None,
    *,
    deadman: bool = True,
) -> tuple[EngineState, list[Transition]]:
    """Apply `observations` (in order), then the timers at `now`. Returns the new state and the
    transitions, in the order they happened. `state` is not changed. The deadman looks at every
    device of the inventory: the engine asks for it on its timer tick only (`deadman=False`
    when it evaluates a batch of observations)."""
    run = _Run(book, state, counters)
    reading_rules = book.rules.of_source("reading")
    status_rules = book.rules.of_source("status")
    silence_rules = book.rules.of_source("silence")
    for obs in observations:
        _observe(run, obs, reading_rules, status_rules, silence_rules)
    _tick(run, now, silence_rules if deadman else (), state.started_at or now)
    return (
        EngineState(state.started_at or now, run.alerts, run.resolved, run.devices),
        run.transitions,
    )


def _observe(
    run: _Run,
    obs: Observation,
    reading_rules: tuple[Rule, ...],
    status_rules: tuple[Rule, ...],
    silence_rules: tuple[Rule, ...],
) -> None:
    device_id, at, reading = obs.device_id, obs.at, obs.reading
    view = run.devices.get(device_id)
    history = view.lamp_history if view is not None else ()
    kept = view.last_reading if view is not None else None
    kept_at = view.last_reading_at if view is not None else None
    wanted = run.book.rules.fields.get("reading" if reading is not None else "status", {})
    values: dict[str, Any] | None = None
    previous: dict[str, Any] = {}
    if reading is not None:
        history = (*history, reading.lamp_on)[-HISTORY_READINGS:]
        values = reading_map(reading)
        newest = kept_at is None or at > kept_at
        if newest and kept is not None and kept_at is not None:
            previous = {**kept, "minutes_ago": (at - kept_at).total_seconds() / 60}
        if newest and "previous" in wanted:
            kept, kept_at = only(values, wanted["previous"]), at
    # Heard from when it was sent or when luxtel received it, whichever is later: the deadman
    # asks whether the controller is talking, so a backlog the broker held (luxtel restarted,
    # a gateway that buffered) counts as contact rather than raising a silence alarm for every
    # luminaire whose newest readings are still queued. A retained message replayed by the
    # broker is not contact.
    heard = at if obs.retained else max(at, obs.received_at)
    last_seen = heard if view is None else max(view.last_seen_at, heard)
    run.devices[device_id] = DeviceView(obs.zone, last_seen, history, kept, kept_at)
    alerts = run.alerts
    for rule in silence_rules:
        if (rule.name, device_id) in alerts:
            run.verdict(rule, device_id, obs.zone, False, at, 0.0)
    rules = reading_rules if reading is not None else status_rules
    if not rules:
        return
    bindings = Bindings(_variables(run.book, obs, wanted, values, history, previous), wanted)
    variables = bindings.variables
    for rule in rules:
        verdict = rule.verdict
        assert verdict is not None
        native, error = verdict.native, None
        if native is None:
            holds, error = bindings.cel(verdict)
        else:
            try:  # `bindings.run(verdict)` without its call: the hot path
                holds = native(variables)
            except NotMirroredError:
                holds, error = bindings.cel(verdict)
        if holds is not True and holds is not False:
            if holds is not None or error is not None:
                run.count_error(rule)  # not evaluable here, or not a boolean
            continue  # null (`when` is false) or not: no verdict, the alert keeps its state
        if holds is False and (rule.name, device_id) not in alerts:
            continue  # what `verdict()` would conclude
        value = 1.0 if holds else 0.0
        if holds and rule.value is not None:
            number, _ = bindings.run(rule.value)
            if isinstance(number, int | float) and not isinstance(number, bool):
                value = float(number)
        run.verdict(rule, device_id, obs.zone, holds, at, value)


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
    rules = {rule.name: rule for rule in run.book.rules.rules}
    for key, alert in list(run.alerts.items()):
        rule = rules.get(alert.rule)
        if rule is None:  # the rule was removed from the file: its alerts end
            if alert.fired_at is not None:
                run.resolve(alert, now)
            else:
                del run.alerts[key]
            continue
        if alert.fired_at is None and now - alert.active_at >= rule.for_:
            run.alerts[key] = run.fire(alert, now)
        elif alert.cleared_at is not None and now - alert.cleared_at >= rule.keep_firing_for:
            run.resolve(alert, now)
    devices = run.devices
    for rule in silence_rules:
        for device, limit in run.book.silences(rule):
            view = devices.get(device.device_id)
            last = view.last_seen_at if view is not None else started
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
            if silent.fired_at is None and now - silent.active_at >= rule.for_:
                silent = run.fire(silent, now)
            run.alerts[key] = silent


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
        "since": since.strftime("%Y-%m-%d %H:%M UTC"),
    }
    return render(rule.summary, values)
