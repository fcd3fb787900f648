"""Evaluation as a pure function of (rules, state, time, observations): tables of input series
and the alerts expected after each step, and properties over random series."""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import Observation, Status
from rules.evaluation.alerts import Transition
from rules.evaluation.evaluator import Counters, EngineState, Rulebook, evaluate, mark_sent
from rules.evaluation.sun import sun_facts
from rules.language.loader import load_rules
from rules.language.yaml_lines import parse_yaml
from tests.rules_fixtures import T0, at, device, inventory, reading, status

SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "rules" / "streetlight.yaml"

TEST_RULES = """\
rules:
  - name: hot
    source: reading
    when: has(reading.driver_temp_c)
    condition: reading.driver_temp_c > 80.0
    value: reading.driver_temp_c
    for: 10m
    keep_firing_for: 10m
    severity: major
    annotations:
      summary: "{device_id} at {value:.0f} °C"
  - name: silent
    source: silence
    absent_for_intervals: 3
  - name: will
    source: status
    when: has(status.online)
    condition: "!status.online"
"""
NO_DEADMAN = TEST_RULES[: TEST_RULES.index("  - name: silent")]
"""The test rules without the deadman, which runs on the wall clock."""


def book(text: str = TEST_RULES, *devices: str) -> Rulebook:
    from rules.language.loader import compile_document

    rules = compile_document(parse_yaml(text, Path("t.yaml")))
    return Rulebook(rules, inventory(*(device(d) for d in devices or ("a",))))


@dataclass
class Step:
    minute: float
    observations: list[Observation]
    expect: set[tuple[str, str, str]]
    """(rule, device, state) of every alert held after the step."""
    transitions: list[tuple[str, str]] | None = None
    """(rule, kind) of the step's transitions, when checked."""


def hot(device_id: str, minute: float, temp: float) -> Observation:
    return reading(device_id, minute, driver_temp_c=temp)


def run_steps(rulebook: Rulebook, steps: list[Step]) -> None:
    """Each step's observations are received, and evaluated, at the step's minute."""
    state = EngineState()
    for step in steps:
        now = at(step.minute)
        received = [replace(obs, received_at=now) for obs in step.observations]
        state, transitions = evaluate(rulebook, state, now, received)
        held = {(a.rule, a.device_id, a.state) for a in state.alerts.values()}
        held |= {(a.rule, a.device_id, a.state) for a in state.resolved.values()}
        assert held == step.expect, f"minute {step.minute}"
        if step.transitions is not None:
            assert [(t.alert.rule, t.kind) for t in transitions] == step.transitions
        state = mark_sent(state, [a.id for a in state.resolved.values()], at(step.minute))


TABLES = {
    "fires after for, resolves after keep_firing_for": [
        Step(0, [hot("a", 0, 90)], {("hot", "a", "pending")}, [("hot", "pending")]),
        Step(5, [], {("hot", "a", "pending")}, []),
        Step(10, [hot("a", 10, 90)], {("hot", "a", "firing")}, [("hot", "firing")]),
        Step(15, [hot("a", 15, 40)], {("hot", "a", "firing")}, []),
        Step(24, [hot("a", 24, 40)], {("hot", "a", "firing")}, []),
        Step(25, [hot("a", 25, 40)], {("hot", "a", "resolved")}, [("hot", "resolved")]),
        Step(26, [], set(), []),
    ],
    "a blip shorter than for never fires": [
        Step(0, [hot("a", 0, 90)], {("hot", "a", "pending")}),
        Step(5, [hot("a", 5, 40)], set(), []),
        Step(30, [], set(), []),
    ],
    "flapping inside keep_firing_for stays one alert": [
        Step(0, [hot("a", 0, 90)], {("hot", "a", "pending")}),
        Step(10, [hot("a", 10, 95)], {("hot", "a", "firing")}),
        Step(12, [hot("a", 12, 40)], {("hot", "a", "firing")}),
        Step(18, [hot("a", 18, 95)], {("hot", "a", "firing")}, []),
        Step(25, [hot("a", 25, 40)], {("hot", "a", "firing")}, []),
        Step(40, [hot("a", 40, 40)], {("hot", "a", "resolved")}, [("hot", "resolved")]),
    ],
    "a reading that arrives late is judged at its own time": [
        Step(11, [hot("a", 0, 90)], {("hot", "a", "pending")}, [("hot", "pending")]),
        Step(12, [hot("a", 10, 90)], {("hot", "a", "firing")}, [("hot", "firing")]),
    ],
    "a stale reading does not fire at once": [
        Step(60, [hot("a", 0, 90)], {("hot", "a", "pending")}, [("hot", "pending")]),
        Step(61, [], {("hot", "a", "pending")}, []),
        Step(62, [hot("a", 5, 40)], set(), []),
        Step(90, [], set(), []),
    ],
    "a pending alert advances by its device's readings, not by the wall clock": [
        Step(0, [hot("a", 0, 90)], {("hot", "a", "pending")}),
        Step(30, [], {("hot", "a", "pending")}, []),
        Step(31, [hot("a", 12, 90)], {("hot", "a", "firing")}, [("hot", "firing")]),
    ],
    "a firing alert resolves by its device's readings, not by the wall clock": [
        Step(0, [hot("a", 0, 90), hot("a", 10, 90)], {("hot", "a", "firing")}),
        Step(15, [hot("a", 15, 40)], {("hot", "a", "firing")}, []),
        Step(59, [], {("hot", "a", "firing")}, []),
        Step(61, [hot("a", 20, 40)], {("hot", "a", "firing")}, []),
        Step(62, [hot("a", 30, 40)], {("hot", "a", "resolved")}, [("hot", "resolved")]),
    ],
    "a redelivered old reading gets no verdict": [
        Step(0, [hot("a", 0, 90)], {("hot", "a", "pending")}),
        Step(10, [hot("a", 10, 90)], {("hot", "a", "firing")}),
        Step(15, [hot("a", 15, 40)], {("hot", "a", "firing")}),
        Step(25, [hot("a", 25, 40)], {("hot", "a", "resolved")}, [("hot", "resolved")]),
        Step(30, [hot("a", 10, 90)], set(), []),
        Step(31, [hot("a", 25, 90)], set(), []),
        Step(60, [], set(), []),
    ],
    "a reading older than one before it in the same chunk gets no verdict": [
        Step(0, [hot("a", 5, 40), hot("a", 0, 90)], set(), []),
        Step(20, [hot("a", 20, 40)], set(), []),
    ],
    "no verdict when `when` is false: the alert keeps its state": [
        Step(0, [hot("a", 0, 90)], {("hot", "a", "pending")}),
        Step(3, [reading("a", 3, driver_temp_c=None)], {("hot", "a", "pending")}),
        Step(10, [reading("a", 10, driver_temp_c=None)], {("hot", "a", "firing")}),
    ],
    "the deadman fires on the timer, without any message": [
        Step(0, [hot("a", 0, 40)], set()),
        Step(44, [], set()),
        Step(45, [], {("silent", "a", "firing")}, [("silent", "pending"), ("silent", "firing")]),
        Step(60, [hot("a", 60, 40)], {("silent", "a", "resolved")}, [("silent", "resolved")]),
    ],
    "the Last Will fires, a birth message resolves": [
        Step(0, [status("a", 0, online=False)], {("will", "a", "firing")}),
        Step(5, [status("a", 5, firmware="2.0")], {("will", "a", "firing")}),
        Step(6, [status("a", 6, online=True)], {("will", "a", "resolved")}),
    ],
}


@pytest.mark.parametrize("name", list(TABLES))
def test_series(name: str) -> None:
    run_steps(book(), TABLES[name])


def test_a_device_never_heard_of_is_silent_since_start() -> None:
    rulebook = book(TEST_RULES, "a", "b")
    state, _ = evaluate(rulebook, EngineState(), at(0), [hot("a", 0, 40)])
    state, _ = evaluate(rulebook, state, at(46), [hot("a", 46, 40)])
    assert {(a.rule, a.device_id) for a in state.alerts.values()} == {("silent", "b")}


def test_the_deadman_counts_silence_from_the_start_of_evaluation() -> None:
    """After a restart (a new `started_at`), a device last heard before it is silent only once
    its limit has passed since the start: luxtel's own downtime is not the device's silence."""
    rulebook = book(TEST_RULES, "a")
    state, _ = evaluate(rulebook, EngineState(), at(0), [hot("a", 0, 40)])
    restarted = replace(state, started_at=at(600))
    state, _ = evaluate(rulebook, restarted, at(600))
    assert not state.alerts
    state, _ = evaluate(rulebook, state, at(644))
    assert not state.alerts
    state, transitions = evaluate(rulebook, state, at(645))
    assert [(t.alert.rule, t.kind) for t in transitions] == [
        ("silent", "pending"),
        ("silent", "firing"),
    ]


def test_contact_is_the_later_of_sent_and_received_but_not_a_retained_replay() -> None:
    """A backlog delivered late (old `ts`, received now) is contact; a retained message the
    broker replays is not."""
    rulebook = book(TEST_RULES, "a", "b")
    state, _ = evaluate(rulebook, EngineState(), at(0), [hot("a", 0, 40), hot("b", 0, 40)])
    late = replace(hot("a", 1, 40), received_at=at(46))
    replayed = replace(hot("b", 1, 40), received_at=at(46), retained=True)
    state, _ = evaluate(rulebook, state, at(46), [late, replayed])
    assert {(a.rule, a.device_id) for a in state.alerts.values()} == {("silent", "b")}


def test_one_alert_per_rule_and_device_and_a_new_one_after_resolution() -> None:
    rulebook = book()
    state = EngineState()
    ids = []
    for start in (0, 60):
        heated = [hot("a", start, 90), hot("a", start + 10, 90)]
        state, _ = evaluate(rulebook, state, at(start + 10), heated)
        assert len(state.alerts) == 1
        ids.append(next(iter(state.alerts.values())).id)
        cooled = [hot("a", start + 11, 30), hot("a", start + 25, 30)]
        state, _ = evaluate(rulebook, state, at(start + 30), cooled)
    assert ids[0] != ids[1]
    assert len(state.resolved) == 2, "resolved alerts wait for their notice"
    state = mark_sent(state, ids, at(100))
    assert not state.resolved


def test_evaluation_does_not_change_its_input_state() -> None:
    rulebook = book()
    state, _ = evaluate(rulebook, EngineState(), at(0), [hot("a", 0, 90)])
    before = (dict(state.alerts), dict(state.devices))
    evaluate(rulebook, state, at(30), [hot("a", 20, 30)])
    assert (dict(state.alerts), dict(state.devices)) == before


def test_unevaluable_conditions_are_counted() -> None:
    text = TEST_RULES.replace("    when: has(reading.driver_temp_c)\n", "")
    counters = Counters()
    evaluate(book(text), EngineState(), at(0), [reading("a", 0, driver_temp_c=None)], counters)
    assert counters.errors == {"hot": 1}


def shipped() -> Rulebook:
    rules = load_rules(SHIPPED, {"nominal_voltage_v": 220.0})
    return Rulebook(rules, inventory(device("a")))


@pytest.mark.parametrize(
    ("fields", "minutes", "expected"),
    [
        ({"power_w": 3.0}, 0, "lamp_failure"),
        ({"power_w": 0.0, "lamp_on": False, "voltage_v": 0.0}, 0, "supply_loss"),
        ({"voltage_v": 250.0}, 0, "voltage_high"),
        ({"voltage_v": 180.0}, 0, "voltage_low"),
        ({"power_factor": 0.6}, 0, "power_factor_low"),
        ({"power_factor": 0.6, "dim_pct": 50, "power_w": 30.0}, 0, "power_factor_low"),
        ({"power_w": 45.0}, 0, "power_off_expected"),
        ({"driver_temp_c": 98.0}, 0, "driver_overtemp"),
        ({}, 10 * 60, "day_burning"),  # 08:00 in Shanghai, lamp lit
        ({}, 0, None),
        ({"power_factor": 0.8, "dim_pct": 50, "power_w": 30.0}, 0, None),  # PF falls when dimmed
        ({"lamp_on": False, "power_w": 0.0}, 10 * 60, None),  # dark by day: fine
    ],
)
def test_shipped_rules_on_a_held_fault(
    fields: dict[str, Any], minutes: float, expected: str | None
) -> None:
    rulebook = shipped()
    state = EngineState()
    fired: set[str] = set()
    for k in range(5):
        obs = reading("a", minutes + 15 * k, **fields)
        state, transitions = evaluate(rulebook, state, at(minutes + 15 * k), [obs])
        fired |= {t.alert.rule for t in transitions if t.kind == "firing"}
    assert fired == ({expected} if expected else set())


def _offline(transitions: list[Transition]) -> list[tuple[str, datetime]]:
    return [(t.kind, t.at) for t in transitions if t.alert.rule == "device_offline"]


def test_a_status_holds_until_the_next_one_live_or_replayed() -> None:
    """device_offline (`for: 1m`) on a Last Will: live, the timer fires it once the device
    has been silent a minute since; replayed late with the birth that followed, the birth
    shows the minute passed. The same transitions, stamped the same."""
    rulebook = shipped()
    will, birth = status("a", 0, online=False), status("a", 30, online=True)
    live: list[Transition] = []
    state = EngineState()
    for minute, observations in [(0.0, [will]), (0.5, []), (1.5, []), (30.0, [birth])]:
        state, transitions = evaluate(rulebook, state, at(minute), observations)
        live += transitions
    late = at(600)
    backlog = [replace(will, received_at=late), replace(birth, received_at=late)]
    _, replayed = evaluate(rulebook, EngineState(), late, backlog)
    expected = [("pending", at(0)), ("firing", at(1)), ("resolved", at(30))]
    assert _offline(live) == expected
    assert _offline(replayed) == expected


def test_a_stale_status_counts_only_the_silence_after_it_was_heard() -> None:
    """A Last Will heard an hour after its time fires a minute of silence after it was heard
    (stamped a minute after its own time), not at once."""
    rulebook = shipped()
    state = EngineState()
    will = replace(status("a", 0, online=False), received_at=at(60))
    seen: list[Transition] = []
    for minute, observations in [(60.0, [will]), (60.5, []), (61.5, [])]:
        state, transitions = evaluate(rulebook, state, at(minute), observations)
        assert {rule for rule, _ in state.alerts} == {"device_offline"}, minute
        seen += transitions
    assert _offline(seen) == [("pending", at(0)), ("firing", at(1))]
    offline = state.alerts[("device_offline", "a")]
    assert offline.fired_at == at(1)


def test_a_restart_is_not_silence_after_a_status() -> None:
    """A Last Will heard just before luxtel went down for ten hours: after the restart the
    minute of silence that fires device_offline counts from the start."""
    rulebook = shipped()
    state, _ = evaluate(rulebook, EngineState(), at(0), [status("a", 0, online=False)])
    state = replace(state, started_at=at(600))
    state, transitions = evaluate(rulebook, state, at(600.5))
    assert _offline(transitions) == []
    state, transitions = evaluate(rulebook, state, at(601.5))
    assert _offline(transitions) == [("firing", at(1))]


def _rules_of(transitions: list[Transition], rule: str) -> list[tuple[str, datetime]]:
    return [(t.kind, t.at) for t in transitions if t.alert.rule == rule]


def test_a_redelivered_old_status_does_not_reopen_a_repaired_fault() -> None:
    """A faults list, its repair, then the faults list again (QoS 1): the old status, `ts` and
    all, gets no verdict."""
    rulebook = shipped()
    broken = status("a", 0, ts=at(0).isoformat(), faults=["driver_overtemp"])
    repaired = status("a", 10, ts=at(10).isoformat(), faults=[])
    state = EngineState()
    seen: list[Transition] = []
    for minute, obs in [(0, broken), (10, repaired), (12, broken), (13, repaired)]:
        state, transitions = evaluate(rulebook, state, at(minute), [obs])
        seen += transitions
    assert _rules_of(seen, "device_fault") == [
        ("pending", at(0)),
        ("firing", at(0)),
        ("resolved", at(10)),
    ]


def test_a_last_will_without_ts_is_judged_in_arrival_order() -> None:
    """Replayed after an outage, a Last Will (no `ts`: stamped at receipt) comes before the
    birth that followed it, whose `ts` is older than that receipt: the birth still answers it."""
    rulebook = shipped()
    arrival = at(600)
    will = Observation("north", "a", arrival, arrival, status=Status(online=False))
    birth = replace(status("a", 30, ts=at(30).isoformat(), online=True), received_at=arrival)
    state, transitions = evaluate(rulebook, EngineState(), arrival, [will, birth])
    assert _rules_of(transitions, "device_offline") == [("pending", arrival)]
    assert not state.alerts
    state, transitions = evaluate(rulebook, state, at(700))
    assert _rules_of(transitions, "device_offline") == []


def test_shipped_rules_see_cycling_and_device_faults() -> None:
    rulebook = shipped()
    state = EngineState()
    fired: set[str] = set()
    series = [
        reading("a", 15 * k, lamp_on=k % 2 == 0, power_w=60.0 * (k % 2 == 0)) for k in range(6)
    ]
    series.append(status("a", 90, faults=["driver_overtemp"]))
    for obs in series:
        state, transitions = evaluate(rulebook, state, obs.at, [obs])
        fired |= {t.alert.rule for t in transitions if t.kind == "firing"}
    assert fired == {"cycling", "device_fault"}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.floats(min_value=0, max_value=30),
            st.sampled_from([30.0, 90.0]),
            st.floats(min_value=0, max_value=120),
        ),
        max_size=40,
    )
)
def test_lifecycle_properties(series: list[tuple[str, float, float, float]]) -> None:
    """Whatever the series, and however late each reading is evaluated: at most one active
    alert per (rule, device); an alert fires only after `for`, transitions of an alert go
    pending → firing → resolved, stamped in time order."""
    rulebook = book(TEST_RULES, "a", "b")
    state = EngineState()
    minute = 0.0
    seen: dict[str, list[str]] = {}
    stamped: dict[str, list[datetime]] = {}
    now = at(0)
    for device_id, gap, temp, late in series:
        minute += gap
        now = max(now, at(minute + late))
        obs = replace(hot(device_id, minute, temp), received_at=now)
        state, transitions = evaluate(rulebook, state, now, [obs])
        keys = [a.key for a in state.alerts.values()]
        assert len(keys) == len(set(keys))
        for t in transitions:
            seen.setdefault(t.alert.id, []).append(t.kind)
            stamped.setdefault(t.alert.id, []).append(t.at)
            if t.kind == "firing" and t.alert.rule == "hot":
                assert t.alert.fired_at is not None
                assert t.alert.fired_at - t.alert.active_at >= rulebook.rules.rules[0].for_
    for stamps in stamped.values():
        assert stamps == sorted(stamps), "an alert's transitions are stamped in order"
    for kinds in seen.values():
        # A pending alert whose condition turns false before it fires is dropped without a
        # transition; pending again at the same instant, it is the same alert (same id).
        once = [k for i, k in enumerate(kinds) if i == 0 or (k, kinds[i - 1]) != ("pending",) * 2]
        assert once in (["pending"], ["pending", "firing"], ["pending", "firing", "resolved"]), (
            kinds
        )


def test_transitions_are_stamped_in_reading_time_in_order() -> None:
    """Firing is stamped when the device's readings show `for` elapsed (`active_at + for`),
    resolution when they show `keep_firing_for` elapsed after the condition cleared, both
    decided by a later reading, whatever the wall clock of the evaluation."""
    state = EngineState()
    stamps: list[tuple[str, datetime]] = []
    for minute, temp in [(0, 90), (15, 90), (20, 40), (35, 40)]:
        obs = [hot("a", minute, temp)]
        state, transitions = evaluate(book(NO_DEADMAN), state, at(minute + 120), obs)
        stamps += [(t.kind, t.at) for t in transitions]
    assert stamps == [("pending", at(0)), ("firing", at(10)), ("resolved", at(30))]
    resolved = next(iter(state.resolved.values()))
    assert (resolved.active_at, resolved.fired_at, resolved.cleared_at, resolved.resolved_at) == (
        at(0),
        at(10),
        at(20),
        at(30),
    )


def _kept(transitions: list[Transition]) -> list[tuple[str, str, str, str, datetime]]:
    return [(t.alert.id, t.alert.rule, t.alert.device_id, t.kind, t.at) for t in transitions]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.floats(min_value=0.5, max_value=30),
            st.sampled_from([30.0, 90.0]),
        ),
        min_size=1,
        max_size=30,
    ),
    st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=10),
    st.sets(st.integers(min_value=0, max_value=29)),
    st.floats(min_value=0, max_value=600),
)
def test_a_backlog_replayed_late_raises_what_live_raises(
    series: list[tuple[str, float, float]],
    chunks: list[int],
    redelivered: set[int],
    late_min: float,
) -> None:
    """The same readings evaluated live (each as it is sent, the timer ticking between them)
    and replayed hours late (received at once, in chunks of any size, with some redelivered
    after newer ones): the same transitions, stamped alike, in the same order."""
    rulebook = book(NO_DEADMAN, "a", "b")
    minute = 0.0
    observations = []
    for device_id, gap, temp in series:
        minute += gap
        observations.append(hot(device_id, minute, temp))
    live: list[Transition] = []
    state = EngineState()
    for obs in observations:
        state, transitions = evaluate(rulebook, state, obs.at, [obs])
        live += transitions
        state, transitions = evaluate(rulebook, state, obs.at + timedelta(minutes=0.25))
        live += transitions
    arrival = at(minute + late_min)
    backlog = []
    for index, obs in enumerate(observations):
        backlog.append(replace(obs, received_at=arrival))
        if index in redelivered and index > 0:
            backlog.append(replace(observations[index - 1], received_at=arrival))
    replayed: list[Transition] = []
    state = EngineState()
    position, sizes = 0, iter(chunks * len(backlog))
    while position < len(backlog):
        size = next(sizes)
        chunk, position = backlog[position : position + size], position + size
        state, transitions = evaluate(rulebook, state, arrival, chunk)
        replayed += transitions
    assert _kept(replayed) == _kept(live)


PREVIOUS_RULES = """\
rules:
  - name: seen_before
    source: reading
    condition: has(previous.power_w)
    value: "has(previous.minutes_ago) ? previous.minutes_ago : -1.0"
"""


def test_previous_is_the_newest_earlier_reading() -> None:
    """`previous`: empty on a device's first reading; otherwise the newest reading before, and
    how many minutes before. A reading older than one seen gets no verdict: nothing changes."""
    rulebook = book(PREVIOUS_RULES)
    state = EngineState()
    expected: list[tuple[float, float | None]] = [(0, None), (15, 15.0), (10, 15.0), (30, 15.0)]
    for minute, value in expected:
        state, _ = evaluate(rulebook, state, at(minute), [reading("a", minute)])
        alerts = list(state.alerts.values())
        assert [a.value for a in alerts] == ([] if value is None else [value]), minute
        state = mark_sent(state, list(state.resolved), at(minute))


@dataclass(frozen=True)
class Lamp:
    """One reading of a luminaire of 60 W: its state and the energy drawn since the last one."""

    minute: float
    on: bool
    drawn_wh: float
    volts: float = 225.0


def steady(minutes: range, on: bool = True) -> list[Lamp]:
    return [Lamp(m, on, 15.0 if on else 0.0) for m in minutes]


CYCLING_SERIES: dict[str, tuple[list[Lamp], bool]] = {
    "on and off at consecutive readings": (
        [Lamp(0, True, 15.0), Lamp(15, False, 7.5), Lamp(30, True, 7.5), Lamp(45, False, 7.5)],
        True,
    ),
    "on at every reading, but the counter says off half the time": (
        [Lamp(m, True, 15.0 if m == 0 else 7.5) for m in range(0, 61, 15)],
        True,
    ),
    "off at every reading, but the counter says on half the time": (
        [Lamp(m, False, 7.5) for m in range(0, 61, 15)],
        True,
    ),
    "a steady lamp": (steady(range(0, 121, 15)), False),
    "switched off once (for the night)": (
        [Lamp(0, True, 15.0), *steady(range(15, 121, 15), on=False)],
        False,
    ),
    "out for one report and back: one off-and-on": (
        [*steady(range(0, 31, 15)), Lamp(45, False, 7.5), *steady(range(60, 121, 15))],
        False,
    ),
    "a circuit outage and its end": (
        [
            *steady(range(0, 16, 15)),
            Lamp(30, False, 7.5, volts=0.0),
            Lamp(45, False, 0.0, volts=0.0),
            Lamp(60, True, 10.0),
            *steady(range(75, 121, 15)),
        ],
        False,
    ),
    "a replaced controller: its counter restarts": (
        [*steady(range(0, 31, 15)), Lamp(45, True, -10_000.0), *steady(range(60, 121, 15))],
        False,
    ),
}


def run_lamp(series: list[Lamp], base: datetime = T0) -> set[str]:
    rulebook = shipped()
    state = EngineState()
    fired: set[str] = set()
    energy = 10_000.0
    for lamp in series:
        energy += lamp.drawn_wh
        obs = reading(
            "a",
            lamp.minute,
            base=base,
            lamp_on=lamp.on,
            power_w=60.0 if lamp.on else 0.0,
            energy_wh=energy,
            voltage_v=lamp.volts,
        )
        state, transitions = evaluate(rulebook, state, obs.at, [obs])
        fired |= {t.alert.rule for t in transitions if t.kind == "firing"}
    return fired


@pytest.mark.parametrize("name", list(CYCLING_SERIES))
def test_cycling_needs_two_consecutive_switches_seen_by_state_or_counter(name: str) -> None:
    series, cycling = CYCLING_SERIES[name]
    assert ("cycling" in run_lamp(series)) is cycling


def test_dusk_and_dawn_are_not_cycling() -> None:
    """A healthy lamp over a whole night, reading every 15 min: off by day, on by night."""
    lum = device("a")
    base = T0 - timedelta(hours=6)  # 16:00 in Shanghai
    series = []
    for minute in range(0, 18 * 60, 15):
        facts = sun_facts(lum.lat, lum.lon, at(minute, base))
        series.append(Lamp(minute, not facts["is_day"], 0.0 if facts["is_day"] else 15.0))
    assert {lamp.on for lamp in series} == {True, False}
    assert run_lamp(series, base) == set()


def test_cycling_fires_its_for_after_the_first_evidence() -> None:
    """Three readings in a row that show a switch: 30 min at a 15-min report interval."""
    rulebook = shipped()
    state = EngineState()
    firing_at = None
    lamps = [(True, 100.0), (False, 107.5), (True, 115.0), (False, 122.5)]
    for k, (on, energy) in enumerate(lamps):
        obs = reading("a", 15 * k, lamp_on=on, power_w=60.0 * on, energy_wh=energy)
        state, transitions = evaluate(rulebook, state, obs.at, [obs])
        firing_at = firing_at or next(
            (t.at for t in transitions if t.kind == "firing" and t.alert.rule == "cycling"), None
        )
    assert firing_at == at(45)
    cycling = state.alerts[("cycling", "a")]
    assert cycling.active_at == at(15)
    assert cycling.value == pytest.approx(0.5)


def _pending(rulebook: Rulebook, obs: Observation) -> set[str]:
    state, _ = evaluate(rulebook, EngineState(), obs.at, [obs])
    return {rule for rule, _ in state.alerts}


def test_a_new_inventory_is_read_afresh() -> None:
    """What is kept per luminaire (its `device` variable, its sun clock) belongs to the
    Rulebook: the same luminaire moved or re-rated in a new inventory is judged by its new row,
    even after its old row answered."""
    rules = load_rules(SHIPPED, {"nominal_voltage_v": 220.0})
    lum = device("a")  # Shanghai, where T0 is 22:00
    lit = reading("a", 0, power_w=30.0, dim_pct=50)
    first = Rulebook(rules, inventory(lum))
    assert _pending(first, lit) == set()
    moved = Rulebook(rules, inventory(lum.model_copy(update={"lat": 40.7, "lon": -74.0})))
    assert _pending(moved, lit) == {"day_burning"}  # 09:00 in New York
    rerated = Rulebook(rules, inventory(lum.model_copy(update={"rated_power_w": 200.0})))
    assert _pending(rerated, lit) == {"lamp_failure"}  # 30 W of 200 W
    assert _pending(first, lit) == set()


def test_what_the_functions_cannot_answer_cel_does() -> None:
    """`90 == 90.0` is true in CEL (comparison across int and double), which the Python
    functions leave to CEL: the verdict is CEL's."""
    text = TEST_RULES.replace("reading.driver_temp_c > 80.0", "reading.driver_temp_c == 90")
    counters = Counters()
    state, _ = evaluate(book(text), EngineState(), at(0), [hot("a", 0, 90)], counters)
    assert {rule for rule, _ in state.alerts} == {"hot"}
    assert counters.errors == {}


def test_a_new_inventory_has_its_own_deadman_limits() -> None:
    """The deadman's limit per luminaire is kept per Rulebook: a report interval shortened in
    a new inventory counts at the next tick."""
    rules = book().rules
    slow = Rulebook(rules, inventory(device("a")))
    fast = Rulebook(rules, inventory(device("a", interval_s=60)))
    state, _ = evaluate(slow, EngineState(), at(0), [hot("a", 0, 40)])
    assert not evaluate(slow, state, at(10))[0].alerts
    assert {rule for rule, _ in evaluate(fast, state, at(10))[0].alerts} == {"silent"}
    assert not evaluate(slow, state, at(10))[0].alerts
