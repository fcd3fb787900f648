"""`rules.runtime.state_points`: each inventory luminaire's state (alarm, silent, on, off) from the
engine's state, as `luminaire_state` lines — a table of situations, a property over open-ended
fleets, and the engine's snapshot writer giving up quietly when InfluxDB is unreachable."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from influx.client import InfluxTarget, InfluxWriter
from models import Observation
from rules.evaluation.alerts import Alert
from rules.evaluation.evaluator import EngineState
from rules.evaluation.inventory import Inventory
from rules.evaluation.views import DeviceView
from rules.language.loader import load_rules
from rules.runtime.engine import RulesEngine
from rules.runtime.state_points import (
    MEASUREMENT,
    NOT_FIRING,
    STATE_CODES,
    LuminaireState,
    SnapshotEncoder,
    StatePolicy,
    device_state,
    encode_state,
    firing_by_device,
    state_lines,
)
from servers import free_port
from tests.rules_fixtures import T0, at, device, inventory, reading

SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "rules" / "streetlight.yaml"
DEADMAN = StatePolicy(3.0, frozenset({"communication_loss"}))
CODES: dict[str, int] = dict(STATE_CODES.items())
NOW = at(120)
"""Devices report every 15 min: silent after 45 min without a word."""


def _view(last_seen_min_ago: float, *lamps: bool) -> DeviceView:
    return DeviceView("north", NOW - timedelta(minutes=last_seen_min_ago), lamps)


def _alert(rule: str, device_id: str = "a", *, firing: bool = True) -> Alert:
    since = NOW - timedelta(minutes=50)
    fired = since if firing else None
    return Alert(rule, device_id, "north", "C01", "major", (), 1.0, "", since, fired)


def _parse(line: str) -> tuple[dict[str, str], dict[str, str], int]:
    """A `luminaire_state` line's tags, fields (as written) and time; the test data needs no
    escapes (identifiers, and states without spaces or commas)."""
    head, fields, ts = line.split(" ")
    measurement, *tags = head.split(",")
    assert measurement == MEASUREMENT
    return (
        dict(tag.split("=", 1) for tag in tags),
        dict(field.split("=", 1) for field in fields.split(",")),
        int(ts),
    )


@pytest.mark.parametrize(
    ("view", "alerts", "policy", "expected"),
    [
        pytest.param(None, [], DEADMAN, ("silent", 0), id="never heard from"),
        pytest.param(_view(10, False, True), [], DEADMAN, ("on", 0), id="last reading lit"),
        pytest.param(_view(10, True, False), [], DEADMAN, ("off", 0), id="last reading dark"),
        pytest.param(_view(44, True), [], DEADMAN, ("on", 0), id="quiet, not yet silent"),
        pytest.param(_view(45, True), [], DEADMAN, ("silent", 0), id="3 intervals: silent"),
        pytest.param(_view(31, True), [], StatePolicy(2.0), ("silent", 0), id="the rules' own k"),
        pytest.param(_view(1), [], DEADMAN, ("silent", 0), id="statuses only, no reading"),
        pytest.param(
            _view(10, True), [_alert("lamp_failure")], DEADMAN, ("alarm", 1), id="firing: alarm"
        ),
        pytest.param(
            _view(10, False),
            [_alert("lamp_failure", firing=False)],
            DEADMAN,
            ("off", 0),
            id="pending is not an alarm",
        ),
        pytest.param(
            _view(60, True),
            [_alert("communication_loss")],
            DEADMAN,
            ("silent", 1),
            id="the deadman's alert is the silence",
        ),
        pytest.param(
            _view(60, True),
            [_alert("communication_loss"), _alert("lamp_failure")],
            DEADMAN,
            ("alarm", 2),
            id="silent with a firing alarm: alarm",
        ),
        pytest.param(
            _view(60, True),
            [_alert("communication_loss")],
            StatePolicy(),
            ("alarm", 1),
            id="no deadman rule: any firing alert is an alarm",
        ),
        pytest.param(
            _view(10, True), [_alert("lamp_failure", "b")], DEADMAN, ("on", 0), id="another's"
        ),
    ],
)
def test_device_situations(
    view: DeviceView | None,
    alerts: list[Alert],
    policy: StatePolicy,
    expected: tuple[LuminaireState, int],
) -> None:
    state = EngineState(
        NOW - timedelta(hours=2),
        {alert.key: alert for alert in alerts},
        {},
        {"a": view} if view is not None else {},
    )
    devices = inventory(device("a", circuit="C01"), device("b", circuit="C02", zone="south"))
    lines = {
        _parse(line)[0]["device_id"]: line for line in state_lines(state, devices, NOW, policy)
    }
    assert sorted(lines) == ["a", "b"]
    tags, fields, ts = _parse(lines["a"])
    assert tags == {"device_id": "a", "zone": "north", "circuit": "C01"}
    name, firing = expected
    assert fields == {
        "state": f'"{name}"',
        "state_code": f"{STATE_CODES[name]}i",
        "lat": "31.23",
        "lon": "121.47",
        "firing": f"{firing}i",
    }
    assert ts == int(NOW.timestamp() * 1000)


def test_the_shipped_rules_give_k_and_the_deadman() -> None:
    assert StatePolicy.of(load_rules(SHIPPED)) == DEADMAN


def test_rules_without_a_deadman_use_three_intervals(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - name: hot\n    source: reading\n"
        "    condition: reading.driver_temp_c > 85.0\n    severity: major\n"
    )
    assert StatePolicy.of(load_rules(path)) == StatePolicy(3.0, frozenset())


def test_the_codes_rank_the_states_by_urgency() -> None:
    assert sorted(STATE_CODES, key=STATE_CODES.__getitem__) == ["silent", "off", "on", "alarm"]


_IDS = st.lists(st.from_regex(r"[a-z0-9][a-z0-9_.:-]{0,8}", fullmatch=True), unique=True)
_VIEWS = st.one_of(
    st.none(),
    st.builds(
        lambda ago, lamps: _view(ago, *lamps),
        st.floats(0, 200),
        st.lists(st.booleans(), max_size=3),
    ),
)
_ALERTS = st.lists(
    st.tuples(st.sampled_from(["lamp_failure", "communication_loss", "cycling"]), st.booleans()),
    max_size=3,
    unique_by=lambda pair: pair[0],
)


@given(st.data(), _IDS, st.sampled_from([60, 900, 3600]))
def test_every_device_once_and_state_agrees_with_code(
    data: st.DataObject, ids: list[str], interval_s: int
) -> None:
    devices = Inventory.of(
        [device(i, circuit=f"C{n % 3}", interval_s=interval_s) for n, i in enumerate(ids)]
    )
    views: dict[str, DeviceView] = {}
    alerts: dict[tuple[str, str], Alert] = {}
    for device_id in [*ids, "unknown-device"]:
        view = data.draw(_VIEWS)
        if view is not None:
            views[device_id] = view
        for rule, fired in data.draw(_ALERTS):
            alerts[(rule, device_id)] = _alert(rule, device_id, firing=fired)
    state = EngineState(NOW - timedelta(hours=3), alerts, {}, views)
    lines = list(state_lines(state, devices, NOW, DEADMAN))

    seen = [_parse(line)[0]["device_id"] for line in lines]
    assert sorted(seen) == sorted(ids)
    firing = firing_by_device(alerts.values(), DEADMAN)
    for line in lines:
        tags, fields, _ = _parse(line)
        name = fields["state"].strip('"')
        assert fields["state_code"] == f"{CODES[name]}i"
        counts = firing.get(tags["device_id"])
        assert fields["firing"] == f"{counts.total if counts else 0}i"
        assert (name == "alarm") == bool(counts and counts.alarms)
        view = views.get(tags["device_id"])
        if name in ("on", "off"):
            assert view is not None
            assert view.lamp_history[-1] == (name == "on")
            assert NOW - view.last_seen_at < timedelta(seconds=3 * interval_s)


@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True),
            st.floats(-90, 90),
            st.floats(-180, 180),
        ),
        unique_by=lambda row: row[0],
        max_size=8,
    ),
    st.data(),
)
def test_the_encoder_writes_what_encode_line_writes(
    rows: list[tuple[str, float, float]], data: st.DataObject
) -> None:
    """Its kept series keys included: two snapshots of different states through one encoder."""
    devices = Inventory.of(
        [
            device(i, circuit=f"c.{i}", zone=f"z:{i}").model_copy(update={"lat": la, "lon": lo})
            for i, la, lo in rows
        ]
    )
    encoder = SnapshotEncoder(devices)
    for minutes in (0, 50):
        now = NOW + timedelta(minutes=minutes)
        views = {i: data.draw(_VIEWS) for i, _, _ in rows}
        alerts = {
            (rule, i): _alert(rule, i, firing=fired)
            for i, _, _ in rows
            for rule, fired in data.draw(_ALERTS)
        }
        state = EngineState(NOW, alerts, {}, {i: v for i, v in views.items() if v is not None})
        firing = firing_by_device(alerts.values(), DEADMAN)
        expected = []
        for d in devices:
            counts = firing.get(d.device_id, NOT_FIRING)
            name = device_state(d, views[d.device_id], counts, now, DEADMAN)
            expected.append(encode_state(d, name, counts.total, int(now.timestamp() * 1000)))
        assert list(encoder.lines(state, now, DEADMAN)) == expected


def _sample(engine: RulesEngine, name: str) -> float:
    return engine.metrics.registry.get_sample_value(name) or 0.0


def test_an_unreachable_influxdb_costs_a_snapshot_not_the_engine(tmp_path: Path) -> None:
    """Every snapshot fails and is counted; evaluation goes on regardless."""
    target = InfluxTarget(f"http://127.0.0.1:{free_port()}", "lighting", timeout_s=1.0)

    async def scenario() -> RulesEngine:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        async with InfluxWriter(target) as writer:
            engine = RulesEngine(
                SHIPPED,
                inventory(device("lum-0")),
                tmp_path,
                influx=writer,
                clock=lambda: T0,
                tick_s=0.01,
                state_interval_s=0.01,
            )
            task = asyncio.create_task(engine.run(inbox))
            for _ in range(2000):
                if _sample(engine, "luxtel_rules_state_failures_total") >= 2:
                    break
                await asyncio.sleep(0.01)
            await inbox.put([reading("lum-0", 0)])
            await inbox.put(None)
            await task
        return engine

    engine = asyncio.run(scenario())
    assert _sample(engine, "luxtel_rules_state_failures_total") >= 2
    assert _sample(engine, "luxtel_rules_state_points_total") == 0
    assert engine.counters.observations == 1
