"""Routing (Alertmanager's tree), grouping into incidents, silences, acknowledgements and
repeats, as pure functions of time."""

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from rules.evaluation.alerts import Alert
from rules.evaluation.evaluator import EngineState, Rulebook, evaluate
from rules.evaluation.inhibit import InhibitRule, InhibitRuleSpec, inhibited
from rules.language.errors import RuleFileError
from rules.language.loader import load_rules
from rules.notify.config import parse_notify
from rules.notify.dispatch import Dispatched, Group, Silence, dispatch
from rules.notify.routing import Matcher
from tests.rules_fixtures import at, device, inventory, reading, status

SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "rules" / "streetlight.yaml"

TREE = """\
receivers:
  - {name: default, apprise: ["json://127.0.0.1:1/"]}
  - {name: north, apprise: ["json://127.0.0.1:1/"]}
  - {name: critical, apprise: ["json://127.0.0.1:1/"]}
  - {name: pager, apprise: ["json://127.0.0.1:1/"]}
route:
  receiver: default
  group_wait: 1m
  routes:
    - matchers: ["severity=critical"]
      receiver: critical
      continue: true
    - matchers: ["zone=north"]
      receiver: north
      group_by: [zone]
      routes:
        - matchers: ["rule=~supply_.*"]
          receiver: pager
    - matchers: ["zone=~north|south"]
      receiver: never-reached-for-north
"""


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"zone": "east", "severity": "minor", "rule": "x"}, ["default"]),
        ({"zone": "north", "severity": "minor", "rule": "x"}, ["north"]),
        ({"zone": "north", "severity": "critical", "rule": "x"}, ["critical", "north"]),
        ({"zone": "north", "severity": "critical", "rule": "supply_loss"}, ["critical", "pager"]),
        ({"zone": "south", "severity": "minor", "rule": "x"}, ["never-reached-for-north"]),
    ],
)
def test_routing_is_depth_first_with_continue(labels: dict[str, str], receivers: list[str]) -> None:
    text = TREE.replace("never-reached-for-north", "default")
    route = parse_notify(text).route
    expected = [r.replace("never-reached-for-north", "default") for r in receivers]
    assert [r.receiver for r in route.match(labels)] == expected


def test_options_are_inherited_and_never_mutated() -> None:
    route = parse_notify(TREE.replace("never-reached-for-north", "default")).route
    north = route.routes[1]
    pager = north.routes[0]
    assert route.group_by == ("rule", "circuit")
    assert (north.group_by, pager.group_by) == (("zone",), ("zone",))
    assert pager.group_wait == timedelta(minutes=1)
    assert route.group_interval == timedelta(minutes=5)
    assert route.repeat_interval == timedelta(hours=4)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("zone=north", {"zone": "north"}, True),
        ("zone!=north", {"zone": "north"}, False),
        ("severity=~major|critical", {"severity": "critical"}, True),
        ("severity=~major", {"severity": "majorly"}, False),
        ("rule!~lamp_.*", {"rule": "lamp_failure"}, False),
        ("circuit=", {}, True),
    ],
)
def test_matchers(text: str, labels: dict[str, str], expected: bool) -> None:
    assert Matcher.parse(text).matches(labels) is expected


CIRCUIT = [device(f"lum-{i:02d}", circuit="C12") for i in range(40)]


def dark_circuit(dark: int) -> tuple[Rulebook, EngineState]:
    rules = load_rules(SHIPPED, {"nominal_voltage_v": 220.0})
    book = Rulebook(rules, inventory(*CIRCUIT))
    state = EngineState()
    for minute in range(0, 31, 5):
        obs = [
            reading(d.device_id, minute + i * 0.1, lamp_on=False, power_w=0.0, voltage_v=0.0)
            for i, d in enumerate(CIRCUIT[:dark])
        ]
        obs += [reading(d.device_id, minute) for d in CIRCUIT[dark:]]
        state, _ = evaluate(book, state, at(minute + 5), obs)
    return book, state


def run_dispatch(
    book: Rulebook,
    state: EngineState,
    minute: float,
    groups: dict[str, Group] | None = None,
    *,
    silences: list[Silence] | None = None,
    acked: set[str] | None = None,
) -> Dispatched:
    route = parse_notify("receivers: [{name: default, apprise: ['json://x']}]").route
    firing = [a for a in state.alerts.values() if a.fired_at is not None]
    return dispatch(
        route,
        groups or {},
        firing,
        list(state.resolved.values()),
        at(minute),
        rules=book.rules,
        inventory=book.inventory,
        silences=silences or [],
        acked=acked or set(),
    )


def test_a_whole_circuit_dark_is_one_incident() -> None:
    book, state = dark_circuit(37)
    firing = [a for a in state.alerts.values() if a.fired_at is not None]
    assert len(firing) == 37
    first = run_dispatch(book, state, 35)
    assert first.notifications == [], "group_wait gathers the incident first"
    later = run_dispatch(book, state, 36, dict(first.groups))
    assert len(later.notifications) == 1
    note = later.notifications[0]
    assert note.title == "circuit C12: 37 of 40 luminaires without supply"
    assert len(note.firing) == 37
    again = run_dispatch(book, state, 50, dict(later.groups))
    assert again.notifications == [], "nothing new: no second notification"
    repeat = run_dispatch(book, state, 36 + 4 * 60 + 1, dict(again.groups))
    assert len(repeat.notifications) == 1, "repeat_interval reminds"


def test_acknowledged_alerts_are_not_repeated_but_their_resolution_is_told() -> None:
    book, state = dark_circuit(2)
    groups = dict(run_dispatch(book, state, 35).groups)
    groups = dict(run_dispatch(book, state, 36, groups).groups)
    acked = {a.id for a in state.alerts.values()}
    assert run_dispatch(book, state, 36 + 5 * 60, groups, acked=acked).notifications == []
    resolved = {a.id: replace(a, resolved_at=at(300)) for a in state.alerts.values()}
    done = replace(state, alerts={}, resolved=resolved)
    result = run_dispatch(book, done, 301, groups, acked=acked)
    assert [n.title.startswith("RESOLVED") for n in result.notifications] == [True]
    assert result.handled == frozenset(resolved)
    assert result.groups == {}


def test_silenced_alerts_are_not_notified_until_the_silence_ends() -> None:
    book, state = dark_circuit(3)
    silence = Silence("s1", (Matcher.parse("zone=north"),), at(0), at(60), "works")
    groups = dict(run_dispatch(book, state, 35, silences=[silence]).groups)
    assert groups == {}
    result = run_dispatch(book, state, 61, groups, silences=[silence])
    result = run_dispatch(book, state, 62, dict(result.groups), silences=[silence])
    assert len(result.notifications) == 1


def test_a_resolved_alert_that_was_never_notified_is_let_go() -> None:
    book, state = dark_circuit(1)
    alert: Alert = next(iter(state.alerts.values()))
    done = replace(state, alerts={}, resolved={alert.id: replace(alert, resolved_at=at(40))})
    result = run_dispatch(book, done, 40)
    assert result.notifications == []
    assert result.handled == {alert.id}


INHIBIT = """\
receivers: [{name: crew, apprise: ['json://x']}]
route: {receiver: crew, group_by: [rule, device_id], group_wait: 0s, group_interval: 1m}
inhibit_rules:
  - source_matchers: ["rule=device_offline"]
    target_matchers: ["rule=communication_loss"]
    equal: [device_id]
"""


def test_an_offline_device_is_not_notified_again_as_silent() -> None:
    """The Last Will at minute 0; 45 min of silence later the deadman fires too, but only the
    offline alert is ever notified — for the device whose Last Will came. Another device that
    merely went silent is notified."""
    rules = load_rules(SHIPPED, {"nominal_voltage_v": 220.0})
    book = Rulebook(rules, inventory(device("a"), device("b")))
    notify = parse_notify(INHIBIT)
    state, _ = evaluate(book, EngineState(), at(-1), [reading("a", -1), reading("b", -1)])
    state, _ = evaluate(book, state, at(0), [status("a", 0, online=False)])
    groups: dict[str, Group] = {}
    told: list[tuple[str, str]] = []
    for minute in range(1, 61):
        state, _ = evaluate(book, state, at(minute))
        firing = [a for a in state.alerts.values() if a.fired_at is not None]
        result = dispatch(
            notify.route,
            groups,
            firing,
            list(state.resolved.values()),
            at(minute),
            rules=book.rules,
            inventory=book.inventory,
            inhibit_rules=notify.inhibit_rules,
        )
        groups = dict(result.groups)
        told += [(a.rule, a.device_id) for n in result.notifications for a in n.firing]
    held = {(a.rule, a.device_id) for a in state.alerts.values() if a.fired_at is not None}
    assert ("communication_loss", "a") in held, "the alert itself still fires (and is recorded)"
    assert sorted(set(told)) == [("communication_loss", "b"), ("device_offline", "a")]


def alert(rule: str, device_id: str, *, firing: bool = True) -> Alert:
    return Alert(
        rule=rule,
        device_id=device_id,
        zone="north",
        circuit="C01",
        severity="major",
        labels=(),
        value=0.0,
        summary=f"{rule} {device_id}",
        active_at=at(0),
        fired_at=at(1) if firing else None,
    )


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        ([alert("src", "a"), alert("dst", "a")], {"dst a"}),
        ([alert("src", "a"), alert("dst", "b")], set()),  # equal: [device_id] differs
        ([alert("src", "a", firing=False), alert("dst", "a")], set()),  # pending inhibits not
        ([alert("dst", "a")], set()),
        ([alert("both", "a"), alert("both", "a")], set()),  # matching both sides: no self-muting
        ([alert("src", "a"), alert("both", "a")], {"both a"}),
    ],
)
def test_inhibition_semantics(alerts: list[Alert], expected: set[str]) -> None:
    rule = InhibitRule.of(
        InhibitRuleSpec(
            source_matchers=["rule=~src|both"],
            target_matchers=["rule=~dst|both"],
            equal=["device_id"],
        )
    )
    muted = inhibited([rule], alerts)
    assert {a.summary for a in alerts if a.id in muted} == expected


def test_inhibit_rule_problems_have_lines() -> None:
    text = INHIBIT.replace('"rule=communication_loss"', '"rule"')
    with pytest.raises(RuleFileError, match=r"n.yaml:5: inhibit_rules.0.target_matchers: "):
        parse_notify(text, Path("n.yaml"))


WAIT = """\
receivers: [{name: crew, apprise: ['json://x']}]
route: {receiver: crew, group_by: [circuit], group_wait: 1m, group_interval: 5m}
"""


def dispatch_at(
    minute: float,
    groups: dict[str, Group],
    alerts: list[Alert],
    fired: frozenset[str] = frozenset(),
) -> Dispatched:
    """One cycle's dispatch of `alerts` (firing or resolved) on `WAIT`'s route."""
    rules = load_rules(SHIPPED, {"nominal_voltage_v": 220.0})
    return dispatch(
        parse_notify(WAIT).route,
        groups,
        [a for a in alerts if a.resolved_at is None],
        [a for a in alerts if a.resolved_at is not None],
        at(minute),
        rules=rules,
        inventory=inventory(),
        fired=fired,
    )


def test_an_alert_resolved_before_the_first_flush_is_told_once_as_resolved() -> None:
    """Fired at minute 1, resolved at minute 1.5, the group's first flush at minute 2: one
    notification, carrying it as resolved with both times; nothing more after."""
    firing = alert("lamp_failure", "a")
    done = replace(firing, resolved_at=at(1.5))
    first = dispatch_at(1, {}, [firing])
    assert first.notifications == []
    waiting = dispatch_at(1.5, dict(first.groups), [done])
    assert waiting.notifications == []
    assert firing.id not in waiting.handled, "its notice is still owed: keep the alert"
    flushed = dispatch_at(2, dict(waiting.groups), [done])
    [note] = flushed.notifications
    assert (note.firing, note.resolved) == ((), (done,))
    assert note.title == "RESOLVED: lamp_failure a"
    assert "fired 2026-01-10 14:01:00 UTC, resolved 2026-01-10 14:01:30 UTC" in note.body
    assert flushed.handled == {firing.id}
    assert flushed.groups == {}
    assert dispatch_at(7, dict(flushed.groups), []).notifications == []


def test_an_alert_fired_and_resolved_in_one_cycle_is_told_at_the_first_flush() -> None:
    firing = alert("lamp_failure", "a")
    done = replace(firing, resolved_at=at(1.5))
    first = dispatch_at(1.5, {}, [done], frozenset({firing.id}))
    assert first.notifications == []
    assert firing.id not in first.handled
    flushed = dispatch_at(2.5, dict(first.groups), [done])
    assert [(n.firing, n.resolved) for n in flushed.notifications] == [((), (done,))]
    assert flushed.handled == {firing.id}
    assert flushed.groups == {}


def test_an_alert_that_fires_and_resolves_between_two_flushes_is_told_at_the_next() -> None:
    """The incident was told at minute 2 (a firing); b fires at minute 3 and resolves at 4,
    before the next flush at 7: that flush tells a still firing and b resolved."""
    a = alert("lamp_failure", "a")
    b = replace(alert("lamp_failure", "b"), fired_at=at(3))
    b_done = replace(b, resolved_at=at(4))
    groups = dict(dispatch_at(1, {}, [a]).groups)
    told = dispatch_at(2, groups, [a])
    assert [len(n.firing) for n in told.notifications] == [1]
    groups = dict(dispatch_at(3, dict(told.groups), [a, b]).groups)
    quiet = dispatch_at(4, groups, [a, b_done])
    assert quiet.notifications == []
    assert b.id not in quiet.handled
    later = dispatch_at(7, dict(quiet.groups), [a, b_done])
    assert [(n.firing, n.resolved) for n in later.notifications] == [((a,), (b_done,))]
    assert b.id in later.handled
    assert dispatch_at(12, dict(later.groups), [a]).notifications == []


def test_an_alert_fired_and_resolved_in_one_cycle_is_inhibited_like_a_firing_one() -> None:
    """Device a's Last Will fired `device_offline`; within one evaluation cycle its
    `communication_loss` fired and resolved. It is the same problem as the firing offline
    alert, so no notification tells it, as none would while it fired; b's, with no offline
    alert, is told as resolved."""
    notify = parse_notify(INHIBIT)
    rules = load_rules(SHIPPED, {"nominal_voltage_v": 220.0})
    offline = alert("device_offline", "a")
    silent_a = replace(alert("communication_loss", "a"), resolved_at=at(1.5))
    silent_b = replace(alert("communication_loss", "b"), resolved_at=at(1.5))
    result = dispatch(
        notify.route,
        {},
        [offline],
        [silent_a, silent_b],
        at(2),
        rules=rules,
        inventory=inventory(),
        inhibit_rules=notify.inhibit_rules,
        fired=frozenset({silent_a.id, silent_b.id}),
    )
    told = {(n.receiver, a.rule, a.device_id) for n in result.notifications for a in n.resolved}
    firing = {(a.rule, a.device_id) for n in result.notifications for a in n.firing}
    assert firing == {("device_offline", "a")}
    assert told == {("crew", "communication_loss", "b")}
    assert silent_a.id in result.handled, "muted and resolved: nothing is owed, let it go"
