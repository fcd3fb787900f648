"""The column-wise evaluation of a chunk (`rules.evaluation.columns`, `rules.language.vectorised`)
gives exactly what the scalar path gives: the same state, transitions and error counts, over
random chunks (several devices, out-of-order and repeated `ts`, redeliveries, fields absent,
null, ints and NaN, statuses, devices with alerts, day and night, polar night, devices not in
the inventory, states carrying odd kept readings)."""

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import Observation, SentReading, Status
from rules.evaluation.alerts import Alert, AlertKey
from rules.evaluation.columns import ChunkColumns, ChunkRules, first_else, groups_of
from rules.evaluation.evaluator import Counters, EngineState, Rulebook, evaluate
from rules.evaluation.inventory import Device
from rules.evaluation.rows import Rows
from rules.evaluation.views import DeviceView
from rules.language.loader import compile_document, load_rules
from rules.language.native import NotMirroredError
from rules.language.vectorised import Column, Frame, vectorise, vectorise_all
from rules.language.yaml_lines import parse_yaml
from tests.rules_fixtures import at, device, inventory, reading

SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "rules" / "streetlight.yaml"

ODD_RULES = """\
rules:
  - name: ratio
    source: reading
    when: has(reading.voltage_v) || previous.minutes_ago > 20.0
    condition: >-
      reading.power_w / reading.voltage_v > 0.5
      || (has(previous.power_w) ? previous.power_w - reading.power_w > 30.0 : false)
    for: 10m
    keep_firing_for: 5m
  - name: dim
    source: reading
    when: reading.lamp_on && !(history.switches >= 3.0)
    condition: double(reading.dim_pct) < 50.0 && -reading.power_w < -40.0
    value: reading.dim_pct
  - name: will
    source: status
    when: has(status.online)
    condition: "!status.online"
    for: 1m
"""

POLAR = Device(
    device_id="p",
    zone="arctic",
    circuit="C09",
    lat=78.22,
    lon=15.65,
    rated_power_w=40.0,
    baseline_power_w=50.0,
    report_interval_s=900,
    model="LX-P",
)
DEVICES = ("a", "b", "c", "p", "x")
"""`x` is not in the inventory; `p` is in a polar night in January."""


def books() -> list[Rulebook]:
    devices = inventory(device("a"), device("b", zone="south"), device("c"), POLAR)
    odd = compile_document(parse_yaml(ODD_RULES, Path("odd.yaml")))
    return [Rulebook(load_rules(SHIPPED), devices), Rulebook(odd, devices)]


BOOKS = books()

_numbers = st.sampled_from([0.0, 5.0, 12.0, 30.0, 45.0, 60.0, 80.0, 230.0, 260.0, 0.5, 0.9])
_field = st.one_of(
    _numbers,
    _numbers,
    _numbers,
    st.none(),
    st.sampled_from([0, 50, 100, 2**60, math.nan, True, "7"]),
)


@st.composite
def observations(draw: st.DrawFn, count: int, base: float) -> list[Observation]:
    out: list[Observation] = []
    fields: dict[str, Any]
    healthy = draw(st.sets(st.sampled_from(DEVICES)))
    """Devices whose readings are all healthy here (their rows are left to the columns when
    their state allows it); the others' are a mix of odd and healthy readings and statuses."""
    for i in range(count):
        device_id = draw(st.sampled_from(DEVICES))
        # Mostly in order (long histories), some late, repeated or far out of order.
        step = draw(st.sampled_from([0, 0, 0, 0, -1, -2, 1, -40]))
        minute = base + max(0, i // 3 + step) * 7.5
        when = at(minute)
        received = when + timedelta(seconds=draw(st.sampled_from([0, 0, 30, -30, 3600])))
        retained = draw(st.booleans()) and draw(st.booleans())
        zone = draw(st.sampled_from(["north", "north", "south"]))
        kind = 19 if device_id in healthy else draw(st.integers(0, 19))
        if kind >= 10:
            # A healthy lamp, lit at its rated power: no verdict at night, so its device's rows
            # are left to the columns (unless another of its rows is odd).
            fields = {
                "lamp_on": True,
                "power_w": 60.0,
                "voltage_v": 230.0,
                "power_factor": 0.95,
                "dim_pct": 100,
                "energy_wh": 1000.0 + minute,
            }
            for name in ("voltage_v", "power_factor", "dim_pct"):  # the rules ask has() first
                if not draw(st.integers(0, 2)):
                    del fields[name]
            out.append(
                Observation(zone, device_id, when, received, SentReading(fields), None, retained)
            )
            continue
        if kind == 0:
            online = draw(st.sampled_from([True, False, None]))
            faults = draw(st.sampled_from([None, [], ["driver"]]))
            status = Status(online=online, faults=faults)
            out.append(
                Observation(zone, device_id, when, received, status=status, retained=retained)
            )
            continue
        if kind == 1:
            obs = reading(device_id, minute, zone=zone, power_w=draw(_numbers), energy_wh=500.0)
            out.append(replace(obs, received_at=received, retained=retained))
            continue
        fields = {"lamp_on": draw(st.sampled_from([True, False, True, 1]))}
        for name in ("power_w", "voltage_v", "energy_wh", "power_factor", "dim_pct"):
            if draw(st.integers(0, 4)):
                fields[name] = draw(_field)
        if draw(st.booleans()):
            fields["driver_temp_c"] = draw(_numbers)
        out.append(
            Observation(zone, device_id, when, received, SentReading(fields), None, retained)
        )
    return out


@st.composite
def cases(draw: st.DrawFn) -> tuple[Rulebook, EngineState, list[Observation], int]:
    rulebook = draw(st.sampled_from(BOOKS))
    hour = draw(st.sampled_from([0.0, -300.0, -480.0, 600.0]))  # night, dusk, day in Shanghai
    before = draw(observations(draw(st.integers(0, 30)), hour))
    state, _ = evaluate(rulebook, EngineState(), at(hour + 400), before, columnar_from=None)
    tamper = draw(st.booleans())
    if state.devices and tamper:
        device_id = draw(st.sampled_from(sorted(state.devices)))
        view = state.devices[device_id]
        kept: dict[str, Any] = draw(
            st.sampled_from([{"power_w": 5, "lamp_on": True}, {"power_w": None}, {}])
        )
        devices = {**state.devices, device_id: replace(view, last_reading=kept)}
        state = replace(state, devices=devices)
    if draw(st.booleans()):
        state = replace(state, alerts=fired(rulebook, state.alerts))
    chunk = draw(observations(draw(st.integers(0, 60)), hour + draw(st.sampled_from([0, 150]))))
    return rulebook, state, chunk, draw(st.sampled_from([1, 2, 5]))


def fired(rulebook: Rulebook, alerts: Mapping[AlertKey, Alert]) -> dict[AlertKey, Alert]:
    """`alerts` with the pending ones fired when their `for` ends: devices whose alerts all
    fire, whose readings the columns may settle when their verdicts keep them so."""
    rules = {rule.name: rule for rule in rulebook.rules.rules}
    return {
        key: alert
        if alert.fired_at is not None
        else replace(alert, fired_at=alert.active_at + rules[alert.rule].for_)
        for key, alert in alerts.items()
    }


def run(
    rulebook: Rulebook, state: EngineState, chunk: list[Observation], columnar_from: int | None
) -> tuple[Any, ...]:
    counters = Counters()
    new, transitions = evaluate(
        rulebook, state, at(900), chunk, counters, deadman=False, columnar_from=columnar_from
    )
    devices = {device_id: nan_as_text(view) for device_id, view in new.devices.items()}
    return devices, new.alerts, new.resolved, new.started_at, transitions, counters.errors


def nan_as_text(view: DeviceView) -> DeviceView:
    """A kept reading's NaN as text: the columns keep a NaN as a new float, the scalar path the
    reading's own, and a dict compares those unequal (NaN != NaN) though they read the same."""
    kept = view.last_reading
    if kept is None or not any(isinstance(v, float) and math.isnan(v) for v in kept.values()):
        return view
    text = {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in kept.items()}
    return replace(view, last_reading=text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_columns_give_what_the_scalar_path_gives(
    case: tuple[Rulebook, EngineState, list[Observation], int],
) -> None:
    rulebook, state, chunk, least = case
    assert run(rulebook, state, chunk, least) == run(rulebook, state, chunk, None)


def test_the_shipped_verdicts_are_vectorised() -> None:
    """Otherwise the rules process evaluates every chunk the scalar way."""
    rulebook = BOOKS[0]
    rules = rulebook.rules.of_source("reading")
    assert ChunkRules.of(rules, rulebook.rules.fields["reading"]) is not None


@contextmanager
def scalar_rows() -> Iterator[list[Observation]]:
    """The observations that go through the scalar path (`evaluator._observe`) meanwhile."""
    from rules.evaluation import evaluator

    calls: list[Observation] = []
    original = evaluator._observe

    def counted(run_: Any, obs: Observation, *rest: Any) -> None:
        calls.append(obs)
        original(run_, obs, *rest)

    evaluator._observe = counted  # type: ignore[assignment]
    try:
        yield calls
    finally:
        evaluator._observe = original


def test_a_quiet_chunk_settles_without_the_scalar_path() -> None:
    """Night, every lamp lit at its rated power: no device's verdict is true, so no reading
    goes through `_observe` (the views are still those the scalar path makes)."""
    rulebook = BOOKS[0]
    chunk = [reading(d, m * 15.0) for m in range(4) for d in ("a", "b", "c")]
    with scalar_rows() as calls:
        state, transitions = evaluate(rulebook, EngineState(), at(60), chunk, columnar_from=1)
    assert calls == []
    assert transitions == []
    scalar, _ = evaluate(rulebook, EngineState(), at(60), chunk, columnar_from=None)
    assert dict(state.devices) == dict(scalar.devices)


def test_firing_alerts_held_by_their_readings_settle_without_the_scalar_path() -> None:
    """By day, lamps lit: each device's day-burning alert fires through `for`; then a chunk of
    lit readings (a different power each) keeps them firing. None of those readings goes
    through `_observe`, and the alerts carry the last reading's value and summary, as the
    scalar path leaves them."""
    rulebook = BOOKS[0]
    devices = ("a", "b", "c")
    day = 600.0
    before = [reading(d, day + m * 15.0) for m in range(4) for d in devices]
    state, transitions = evaluate(rulebook, EngineState(), at(day + 60), before, columnar_from=None)
    assert [t.kind for t in transitions].count("firing") == len(devices)
    chunk = [
        reading(d, day + 60 + m * 15.0, power_w=50.0 + m + i)
        for m in range(1, 5)
        for i, d in enumerate(devices)
    ]
    with scalar_rows() as calls:
        columns = run(rulebook, state, chunk, 1)
    assert calls == []
    assert columns == run(rulebook, state, chunk, None)
    alerts = columns[1]
    assert {a.value for a in alerts.values()} == {54.0, 55.0, 56.0}
    assert all(a.state == "firing" for a in alerts.values())
    assert columns[4] == []


@pytest.mark.parametrize(("last", "scalar"), [(25.0, 0), (30.0, 4)])
def test_pending_alerts_settle_until_they_are_due(last: float, scalar: int) -> None:
    """Day-burning alerts pending since minute 0 (`for: 30m`): readings that keep them pending
    settle column-wise; a reading at minute 30, when they fire, sends its device's rows to the
    scalar path. The same state and transitions either way."""
    rulebook = BOOKS[0]
    day = 600.0
    devices = ("a", "b", "c")
    before = [reading(d, day + m) for m in (0.0, 10.0) for d in devices]
    state, transitions = evaluate(rulebook, EngineState(), at(day), before, columnar_from=None)
    assert [t.kind for t in transitions] == ["pending"] * len(devices)
    chunk = [reading(d, day + m) for m in (20.0, last) for d in devices[:2]]
    chunk.append(reading("c", day + 20.0, power_w=61.0))
    with scalar_rows() as calls:
        columns = run(rulebook, state, chunk, 1)
    assert columns == run(rulebook, state, chunk, None)
    assert len(calls) == scalar  # both rows of a and b, none of c
    assert [t.kind for t in columns[4]] == ["firing"] * (len(calls) // 2)
    assert columns[1][("day_burning", "c")].value == 61.0


def frame(rows: int, **columns: tuple[type, Any, Any]) -> Frame:
    made = {
        ("reading", k): Column(kind, np.asarray(v), np.asarray(a))
        for k, (kind, v, a) in columns.items()
    }
    present = {key: ~np.asarray(column.ask) for key, column in made.items()}
    return Frame(rows, made, present, {"reading": True})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # `&&` is decided by its first operand that is not true, as the native function is.
        ("reading.x > 1.0 && reading.y > 1.0", [False, False, "ask", True]),
        ("reading.y > 1.0 || reading.x > 1.0", ["ask", True, "ask", True]),
        ("reading.x / reading.y > 1.0", ["ask", "ask", "ask", True]),
        ("has(reading.y) ? reading.x < 3.0 : null", [None, True, True, True]),
    ],
)
def test_vectorised_rows_as_the_native_function(source: str, expected: list[object]) -> None:
    function = vectorise(source)
    assert function is not None
    got = function(
        frame(
            4,
            x=(float, [0.0, 2.0, 2.0, 2.0], [False, False, False, False]),
            y=(float, [9.0, 0.0, math.nan, 1.5], [True, False, False, False]),
        )
    )
    ask = np.broadcast_to(np.asarray(got.ask | False), 4)
    null = np.broadcast_to(np.asarray(got.null | False), 4)
    value = np.broadcast_to(np.asarray(got.value), 4)
    answers = [
        "ask" if a else None if n else bool(v) for a, n, v in zip(ask, null, value, strict=True)
    ]
    assert answers == expected


def answers(column: Column, rows: int) -> list[object]:
    ask = np.broadcast_to(np.asarray(column.ask | False), rows)
    null = np.broadcast_to(np.asarray(column.null | False), rows)
    value = np.broadcast_to(np.asarray(column.value), rows)
    out = [
        "ask" if a else None if n else v.item() for a, n, v in zip(ask, null, value, strict=True)
    ]
    return ["nan" if isinstance(v, float) and math.isnan(v) else v for v in out]


def test_shared_subexpressions_are_computed_once_and_answer_alike() -> None:
    """`vectorise_all` computes what its expressions share once a frame; each answers as it
    does vectorised alone. `1`, `1.0` and `true` are different literals: `x > 1` (an int
    against a double: not mirrored) is not `x > 1.0`."""
    sources = [
        "reading.x > 1.0 && reading.y > 1.0",
        "reading.y > 1.0 || reading.x > 1.0",
        "(reading.x > 1.0 && reading.y > 1.0) == true",
        "reading.x > 1",
        "has(reading.y) ? reading.x / reading.y : 0.0",
        "has(reading.y) ? reading.x / reading.y > 1.0 : null",
    ]
    made = frame(
        4,
        x=(float, [0.0, 2.0, 2.0, 2.0], [False, False, False, False]),
        y=(float, [9.0, 0.0, math.nan, 1.5], [True, False, False, False]),
    )
    together = vectorise_all(sources)
    assert all(function is not None for function in together)
    got = [answers(function(made), 4) for function in together if function is not None]
    assert len(made.memo) == 4  # x > 1.0, y > 1.0, their &&, x / y
    alone = []
    for source in sources:
        function = vectorise(source)
        assert function is not None
        alone.append(answers(function(frame(4, **made_columns(made))), 4))
    assert got == alone
    assert got[3] == ["ask"] * 4


def made_columns(made: Frame) -> dict[str, tuple[type, Any, Any]]:
    return {
        field: (column.kind, column.value, column.ask)
        for (_, field), column in made.columns.items()
    }


def test_outside_the_subset_is_not_vectorised() -> None:
    assert vectorise("size(status.faults) > 0") is None
    assert vectorise("params.x > 1.0") is None


def _scalar_variables(
    rulebook: Rulebook, state: EngineState, chunk: list[Observation]
) -> dict[int, dict[str, dict[str, Any]]]:
    """The variables the scalar path gives each judged reading (by the observation's id)."""
    from rules.evaluation import evaluator

    seen: dict[int, dict[str, dict[str, Any]]] = {}
    original = evaluator._variables

    def recorded(book: Rulebook, obs: Observation, *rest: Any) -> dict[str, dict[str, Any]]:
        variables = original(book, obs, *rest)
        if obs.reading is not None:
            seen[id(obs)] = variables
        return variables

    evaluator._variables = recorded  # type: ignore[assignment]
    try:
        evaluate(rulebook, state, at(900), chunk, deadman=False, columnar_from=None)
    finally:
        evaluator._variables = original
    return seen


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_columns_hold_the_variables_and_verdicts_of_the_scalar_path(
    case: tuple[Rulebook, EngineState, list[Observation], int],
) -> None:
    """Row by row, the columns hold what the scalar path's variables hold (a value where they
    answer, `ask` where a native function could not use it), which rows are judged, and the
    vectorised verdicts answer as the native functions do, or ask where those raise."""
    rulebook, state, chunk, _ = case
    rules = rulebook.chunk_rules()
    assert rules is not None
    scalar = _scalar_variables(rulebook, state, chunk)
    readers = [o for o in chunk if o.reading is not None]
    if not readers:
        return
    columns = ChunkColumns(
        rulebook,
        rules,
        Rows.of(readers),
        np.arange(len(readers)),
        lambda device_id: state.devices.get(device_id),
    )
    # Without statuses in between, a device's judged readings are those the scalar path judged.
    statuses = {o.device_id for o in chunk if o.reading is None}
    judged = [readers[i] for i in columns.order]
    assert {id(o) for o in judged if o.device_id not in statuses} == {
        id(o) for o in readers if id(o) in scalar and o.device_id not in statuses
    }
    frame, bad = columns.frame()
    verdicts = [function(frame) for function in rules.verdicts]
    natives = [rule.verdict.native for rule in rulebook.rules.of_source("reading")]  # type: ignore[union-attr]
    noisy = statuses | {obs.device_id for obs, b in zip(judged, bad, strict=True) if b}
    for row, obs in enumerate(judged):
        if obs.device_id in noisy:
            continue
        variables = scalar[id(obs)]
        for (variable, name), column in frame.columns.items():
            there = variable in variables and name in variables[variable]
            present = np.broadcast_to(np.asarray(frame.present[(variable, name)]), frame.rows)
            exists = np.broadcast_to(np.asarray(frame.exists[variable]), frame.rows)
            if exists[row]:
                assert bool(present[row]) == there, (variable, name)
            else:
                assert variable not in variables
            ask = np.broadcast_to(np.asarray(column.ask), frame.rows)[row]
            if not ask:
                value = variables[variable][name]
                got = np.broadcast_to(np.asarray(column.value), frame.rows)[row]
                assert type(value) is column.kind, (variable, name, value)
                assert value == got or (value != value and got != got), (variable, name)
        for native, verdict in zip(natives, verdicts, strict=True):
            ask = np.broadcast_to(np.asarray(verdict.ask | False), frame.rows)[row]
            try:
                answer = native(variables) if native is not None else NotMirroredError
            except NotMirroredError:
                answer = NotMirroredError
            if answer is NotMirroredError:
                assert ask
                continue
            if ask:
                continue  # the scalar path answers: allowed, only slower
            null = np.broadcast_to(np.asarray(verdict.null | False), frame.rows)[row]
            value = np.broadcast_to(np.asarray(verdict.value), frame.rows)[row]
            assert (None if null else value) == answer


@given(st.lists(st.integers(-3, 3), max_size=30), st.booleans())
def test_groups_of_are_the_distinct_keys_ranked(keys: list[int], ordered: bool) -> None:
    """`groups_of` (no sort when the keys are in order) gives what `np.unique` ranks: each
    row's group and each group's first row, ordered or not."""
    key = np.array(sorted(keys) if ordered else keys, dtype=np.int64)
    group, first = groups_of(key)
    distinct, rank = np.unique(key, return_inverse=True)
    assert group.tolist() == rank.tolist()
    assert first.tolist() == [int(np.flatnonzero(key == k)[0]) for k in distinct]


@given(st.lists(st.tuples(st.integers(0, 3), st.floats(allow_nan=False)), max_size=30))
def test_first_else_is_where_first_start_else_prior(rows: list[tuple[int, float]]) -> None:
    """`first_else` gives `np.where(first, start[device], own[prior])` over rows by device:
    a device's first row its `start`, every other row its prior row's `own`."""
    rows.sort(key=lambda row: row[0])
    device = np.array([d for d, _ in rows], dtype=np.int64)
    own = np.array([v for _, v in rows])
    start = np.array([-1.5, 2.0, np.inf, 0.0])
    first = np.ones(len(rows), dtype=bool)
    first[1:] = device[1:] != device[:-1]
    prior = np.maximum(np.arange(len(rows)) - 1, 0)
    expected = np.where(first, start[device], own[prior])
    got = first_else(np.flatnonzero(first), device, start, own, prior)
    assert got.tolist() == expected.tolist()
    flags = own > 0
    assert (
        first_else(np.flatnonzero(first), device, start > 0, flags, prior).tolist()
        == np.where(first, (start > 0)[device], flags[prior]).tolist()
    )
