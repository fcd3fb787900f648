"""Fault injection: the spec, the seeded schedule, and readings that show each fault exactly while
the ground truth says it is active, and never outside."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from simulator.clock import rfc3339, to_ms
from simulator.dimming import DimmingProfile
from simulator.episodes import (
    CIRCUIT_OUTAGE,
    COUNTER_RESET,
    CYCLING,
    DAY_BURNING,
    DRIVER_OVERTEMP,
    FAULT_KINDS,
    LAMP_FAILURE,
    OFFLINE,
    POWER_FACTOR_LOW,
    VOLTAGE_HIGH,
    VOLTAGE_LOW,
    Episode,
)
from simulator.faults import applied, night_windows, parse_faults, schedule_faults
from simulator.fleet import Luminaire, build_fleet
from simulator.physics import LampModel, power_factor
from simulator.schedule import Drop, FleetSchedule, Publish, Rejoin
from simulator.truth import GROUND_TRUTH_COLUMNS, write_ground_truth

TZ = ZoneInfo("Asia/Shanghai")
PROFILE = DimmingProfile.parse("23:00=50,05:00=100")
START = to_ms(datetime(2026, 6, 20, tzinfo=UTC))
END = to_ms(datetime(2026, 6, 23, tzinfo=UTC))
NOMINAL = 220.0
SEED = 11
ALL_FAULTS = (
    "lamp_failure=0.05,day_burning=0.05,offline=0.05,voltage_high=0.05,voltage_low=0.05,"
    "cycling=0.05,power_factor_low=0.05,driver_overtemp=0.05,counter_reset=0.05,circuit_outage=0.2"
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", {}),
        ("lamp_failure=0.02", {LAMP_FAILURE: 0.02}),
        (" offline = 0.01 , cycling=1 ", {OFFLINE: 0.01, CYCLING: 1.0}),
        ("counter_reset=0", {COUNTER_RESET: 0.0}),
    ],
)
def test_parse_faults(spec: str, expected: dict[str, float]) -> None:
    assert parse_faults(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lamp_fail=0.02", "unknown fault kind 'lamp_fail'; known kinds: lamp_failure, "),
        ("offline", "has no fraction"),
        ("offline=lots", "between 0 and 1, not 'lots'"),
        ("offline=1.5", "between 0 and 1"),
        ("offline=-0.1", "between 0 and 1"),
        ("offline=nan", "between 0 and 1"),
        ("offline=0.1,offline=0.2", "given twice"),
    ],
)
def test_parse_faults_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_faults(spec)


def _fleet() -> list[Luminaire]:
    return build_fleet(60, zones=2, circuits_per_zone=3, seed=SEED, interval_s=600)


def _episodes(fleet: list[Luminaire], spec: str = ALL_FAULTS, seed: int = SEED) -> list[Episode]:
    return schedule_faults(fleet, parse_faults(spec), START, END, TZ, seed)


def test_schedule_is_seeded_and_gives_each_luminaire_at_most_one_fault() -> None:
    fleet = _fleet()
    episodes = _episodes(fleet)
    assert episodes == _episodes(fleet)
    assert episodes != _episodes(fleet, seed=SEED + 1)
    kinds = Counter(ep.kind for ep in episodes if ep.kind != CIRCUIT_OUTAGE)
    assert kinds == dict.fromkeys(set(FAULT_KINDS) - {CIRCUIT_OUTAGE}, 3)  # 5 % of 60
    devices = [ep.device_id for ep in episodes]
    assert len(devices) == len(set(devices))
    outage = [ep for ep in episodes if ep.kind == CIRCUIT_OUTAGE]
    circuit = {ep.circuit for ep in outage}
    assert len(circuit) == 1
    assert {ep.device_id for ep in outage} == {
        lum.device_id for lum in fleet if lum.circuit in circuit
    }
    assert len({(ep.start_ms, ep.end_ms) for ep in outage}) == 1
    by_id = {lum.device_id: lum for lum in fleet}
    for ep in episodes:
        assert START <= ep.start_ms <= ep.end_ms <= END
        assert ep.start_ms % 1000 == 0
        assert ep.end_ms % 1000 == 0
        if ep.kind != COUNTER_RESET:
            assert ep.end_ms - ep.start_ms >= 4 * 600_000
        nights = night_windows(by_id[ep.device_id], TZ, START, END)
        inside_night = any(a <= ep.start_ms and ep.end_ms <= b for a, b in nights)
        if ep.kind in (LAMP_FAILURE, CYCLING, POWER_FACTOR_LOW, DRIVER_OVERTEMP, CIRCUIT_OUTAGE):
            assert inside_night, ep
        if ep.kind == DAY_BURNING:
            assert not any(a < ep.end_ms and ep.start_ms < b for a, b in nights), ep


def test_too_many_faults_for_the_fleet() -> None:
    with pytest.raises(ValueError, match="more faulty luminaires than the fleet has"):
        _episodes(_fleet(), "lamp_failure=0.6,offline=0.6")


def test_night_faults_are_skipped_when_the_run_has_no_night() -> None:
    fleet = _fleet()
    noon = to_ms(datetime(2026, 6, 21, 2, tzinfo=UTC))  # 10:00 in Shanghai
    episodes = schedule_faults(
        fleet, parse_faults("lamp_failure=0.1,voltage_high=0.1"), noon, noon + 4 * 3_600_000, TZ
    )
    assert {ep.kind for ep in episodes} == {VOLTAGE_HIGH}


@dataclass
class _Run:
    fleet: list[Luminaire]
    episodes: list[Episode]
    events: list[Publish | Drop | Rejoin]

    def messages(self, kind: str) -> list[tuple[Publish, Any]]:
        return [
            (e, orjson.loads(e.payload))
            for e in self.events
            if isinstance(e, Publish) and e.kind == kind
        ]


def _run(*, emulate_will: bool = False, gateway_batch: int = 0, seed: int = SEED) -> _Run:
    fleet = _fleet()
    episodes = _episodes(fleet, seed=seed)
    schedule = FleetSchedule(
        fleet,
        PROFILE,
        TZ,
        episodes,
        START,
        END,
        seed=seed,
        jitter_ms=30_000,
        emulate_will=emulate_will,
        gateway_batch=gateway_batch,
    )
    return _Run(fleet, episodes, list(schedule.events()))


@pytest.fixture(scope="module")
def run() -> _Run:
    return _run()


def test_readings_show_each_fault_exactly_inside_its_episode(run: _Run) -> None:
    by_id = {lum.device_id: lum for lum in run.fleet}
    twins = {lum.device_id: LampModel(lum, PROFILE, TZ, (), SEED) for lum in run.fleet}
    episodes = defaultdict(list)
    for ep in run.episodes:
        episodes[ep.device_id].append(ep)
    seen: Counter[tuple[str, str]] = Counter()
    cycling_states: defaultdict[str, set[bool]] = defaultdict(set)
    for message, r in run.messages("telemetry"):
        lum = by_id[r["device_id"]]
        t = message.t_ms
        assert rfc3339(t) == r["ts"]
        dark, on, dim, p_cw, _ = twins[lum.device_id].segment(t)
        active = {ep.kind: ep for ep in episodes[lum.device_id] if ep.active(t)}
        for kind in active:
            seen[lum.device_id, kind] += 1
        assert OFFLINE not in active, "an offline luminaire sent a reading"
        if CIRCUIT_OUTAGE in active:
            assert (r["lamp_on"], r["power_w"], r["voltage_v"]) == (False, 0.0, 0.0)
        elif LAMP_FAILURE in active and dark:
            assert r["lamp_on"]
            assert 0 < r["power_w"] < 0.1 * lum.rated_power_w
        elif DAY_BURNING in active:
            assert r["lamp_on"]
            assert not dark
            assert r["power_w"] > 0.9 * lum.rated_power_w
        elif CYCLING in active and dark:
            ep = active[CYCLING]
            expect_on = (t - ep.start_ms) // int(ep.level) % 2 == 1
            assert r["lamp_on"] == expect_on
            assert r["power_w"] == (p_cw / 100 if expect_on else 0.0)
            cycling_states[lum.device_id].add(expect_on)
        else:
            assert r["lamp_on"] == on == dark
            assert r["power_w"] == p_cw / 100
            assert r["dim_pct"] == dim
        voltage = r["voltage_v"]
        if VOLTAGE_HIGH in active:
            assert voltage > 1.1 * NOMINAL
        elif VOLTAGE_LOW in active:
            assert voltage < 0.9 * NOMINAL
        elif CIRCUIT_OUTAGE not in active:
            assert 0.965 * NOMINAL <= voltage <= 1.035 * NOMINAL
        if r["lamp_on"]:
            if POWER_FACTOR_LOW in active:
                assert r["power_factor"] < 0.7
            else:
                assert r["power_factor"] >= power_factor(r["dim_pct"]) - 0.0105
            if DRIVER_OVERTEMP in active:
                assert r["driver_temp_c"] > 90
        else:
            assert "power_factor" not in r
            assert r["current_a"] == 0.0
        if DRIVER_OVERTEMP not in active:
            assert r["driver_temp_c"] < 60
    for ep in run.episodes:
        if ep.kind not in (OFFLINE, COUNTER_RESET):
            assert seen[ep.device_id, ep.kind] >= 3, f"episode never seen: {ep}"
    assert all(states == {True, False} for states in cycling_states.values())
    assert len(cycling_states) == 3


def test_offline_drops_the_connection_and_comes_back_with_a_birth(run: _Run) -> None:
    offline = sorted(
        (ep.start_ms, ep.end_ms, ep.device_id) for ep in run.episodes if ep.kind == OFFLINE
    )
    drops = sorted((e.t_ms, e.device_id) for e in run.events if isinstance(e, Drop))
    rejoins = sorted((e.t_ms, e.device_id) for e in run.events if isinstance(e, Rejoin))
    assert drops == [(s, d) for s, _, d in offline]
    assert rejoins == sorted((e, d) for _, e, d in offline)
    births = {
        (m.t_ms, m.topic.split("/")[2])
        for m, body in run.messages("status")
        if body == {"online": True, "firmware": "2.3.1", "ts": rfc3339(m.t_ms)}
    }
    assert {(e, d) for _, e, d in offline} <= births
    assert len(births) >= len(run.fleet)


def test_offline_in_shared_mode_publishes_the_offline_status_itself() -> None:
    shared = _run(emulate_will=True)
    assert not any(isinstance(e, Drop | Rejoin) for e in shared.events)
    wills = [(m, body) for m, body in shared.messages("status") if body.get("online") is False]
    offline = sorted((ep.start_ms, ep.device_id) for ep in shared.episodes if ep.kind == OFFLINE)
    assert sorted((m.t_ms, m.topic.split("/")[2]) for m, _ in wills) == offline
    assert all(m.retain and m.sender is not None for m, _ in wills)


def test_driver_overtemp_sends_its_fault_code(run: _Run) -> None:
    statuses = {
        (m.topic.split("/")[2], m.t_ms, tuple(body["faults"]))
        for m, body in run.messages("status")
        if "faults" in body
    }
    expected = set()
    for ep in run.episodes:
        if ep.kind == DRIVER_OVERTEMP:
            expected |= {
                (ep.device_id, ep.start_ms, (DRIVER_OVERTEMP,)),
                (ep.device_id, ep.end_ms, ()),
            }
    assert statuses == expected


def test_counters_never_go_back_except_at_an_injected_reset(run: _Run) -> None:
    resets = {ep.device_id: ep.start_ms for ep in run.episodes if ep.kind == COUNTER_RESET}
    offline = {ep.device_id: ep for ep in run.episodes if ep.kind == OFFLINE}
    last: dict[str, tuple[int, float, int]] = {}
    falls: dict[str, int] = {}
    for message, r in run.messages("telemetry"):
        device = r["device_id"]
        if device in last:
            t0, wh0, seq0 = last[device]
            if r["energy_wh"] < wh0:
                falls[device] = message.t_ms
                assert t0 < resets[device] <= message.t_ms
                assert r["seq"] == 0
            elif device in offline and t0 < offline[device].start_ms < message.t_ms:
                assert r["seq"] > seq0 + 1  # the readings lost while offline leave a gap
            else:
                assert r["seq"] == seq0 + 1
        last[device] = (message.t_ms, r["energy_wh"], r["seq"])
    assert set(falls) == set(resets)


def test_the_same_seed_gives_the_same_run(run: _Run) -> None:
    again = _run()
    assert again.events == run.events
    other = _run(seed=SEED + 1)
    assert other.events != run.events


def test_gateway_batches_carry_the_same_readings(run: _Run) -> None:
    gateway = _run(gateway_batch=5)
    assert not any(isinstance(e, Drop | Rejoin) for e in gateway.events)
    by_id = {lum.device_id: lum for lum in run.fleet}
    relayed = []
    for message, body in gateway.messages("batch"):
        _, zone, gw_id, _ = message.topic.split("/")
        assert 1 <= len(body) <= 5
        assert message.sender is None
        assert message.readings == len(body)
        for r in body:
            lum = by_id[r["device_id"]]
            assert (lum.zone, lum.gateway_id) == (zone, gw_id)
            assert to_ms(datetime.fromisoformat(r["ts"])) <= message.t_ms
        relayed += body
    direct = [r for _, r in run.messages("telemetry")]
    key = lambda r: (r["device_id"], r["seq"], r["ts"])  # noqa: E731
    assert sorted(relayed, key=key) == sorted(direct, key=key)


def test_ground_truth_files(tmp_path: Path, run: _Run) -> None:
    csv_path, jsonl_path = tmp_path / "truth.csv", tmp_path / "truth.jsonl"
    write_ground_truth(csv_path, run.episodes)
    write_ground_truth(jsonl_path, run.episodes)
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == GROUND_TRUTH_COLUMNS
        rows = list(reader)
    lines = [orjson.loads(line) for line in jsonl_path.read_bytes().splitlines()]
    assert rows == lines
    assert [
        (r["device_id"], r["kind"], to_ms(datetime.fromisoformat(r["start"])), r["end"])
        for r in rows
    ] == [(ep.device_id, ep.kind, ep.start_ms, rfc3339(ep.end_ms)) for ep in run.episodes]
    assert all(r["start"].endswith("Z") and len(r["start"]) == 24 for r in rows)


def test_a_stopped_run_applied_only_what_had_started(run: _Run) -> None:
    stop = START + (END - START) // 2
    kept = applied(run.episodes, stop)
    assert [ep.start_ms for ep in kept] == [
        ep.start_ms for ep in run.episodes if ep.start_ms < stop
    ]
    assert all(ep.end_ms <= stop for ep in kept)
