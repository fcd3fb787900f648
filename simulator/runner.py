"""The composition root: build the fleet, its faults and schedule, and play it to the broker.

``run_simulation`` is importable so ``luxtel up`` can run a fleet in a thread and stop it with a
``threading.Event``; ``luxtel simulate`` is a thin typer shell over it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from simulator.clock import from_ms, to_ms
from simulator.config import SimulationConfig, TimePlan, plan_time
from simulator.dimming import DimmingProfile
from simulator.episodes import Episode
from simulator.faults import applied, parse_faults, schedule_faults
from simulator.fleet import Luminaire, build_fleet, write_inventory_csv
from simulator.publisher import FleetPublisher, PublishStoppedError, parse_mqtt_url
from simulator.schedule import Drop, FleetSchedule, Publish, Rejoin
from simulator.truth import write_energy_truth, write_ground_truth

_PROGRESS_EVERY_S = 0.25
_DRAIN_S = 120.0
_DRAIN_AFTER_STOP_S = 10.0
_SERVE_EVERY = 64
"""Unpaced runs serve the sockets after this many publishes, so writes and acks keep flowing."""


@dataclass(frozen=True, slots=True)
class Progress:
    sim_ms: int
    start_ms: int
    end_ms: int | None
    sent: int
    acked: int
    readings: int
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    mode: str
    connections: str
    devices: int
    start: datetime
    stop: datetime
    """Simulated time the run reached (exclusive)."""
    messages: int
    """Messages the broker acknowledged."""
    unacknowledged: int
    readings: int
    telemetry: int
    batches: int
    statuses: int
    drops: int
    """Connections dropped uncleanly (Last Wills fired by the broker)."""
    wall_s: float
    episodes_planned: int
    episodes_applied: int
    stopped: bool
    """Stopped by the stop event before its end."""
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(slots=True)
class _Counts:
    sent: int = 0
    readings: int = 0
    telemetry: int = 0
    batches: int = 0
    statuses: int = 0
    drops: int = 0


class _StoppedError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a run is made of, before any I/O: also what a scorer rebuilds to get the truth."""

    config: SimulationConfig
    time: TimePlan
    fleet: list[Luminaire]
    episodes: list[Episode]
    schedule: FleetSchedule


def build_plan(config: SimulationConfig, now_ms: int | None = None) -> Plan:
    """The fleet, fault episodes and event schedule of a run; deterministic given ``now_ms``."""
    config.validate()
    times = plan_time(config, to_ms(datetime.now(UTC)) if now_ms is None else now_ms)
    tz = ZoneInfo(config.tz)
    fleet = build_fleet(
        config.devices,
        config.centre_lat,
        config.centre_lon,
        config.zones,
        config.circuits_per_zone,
        config.seed,
        config.interval_s,
        as_of=from_ms(times.start_ms).date(),
        firmware=config.firmware,
    )
    episodes = schedule_faults(
        fleet, parse_faults(config.faults), times.start_ms, times.fault_horizon_ms, tz, config.seed
    )
    schedule = FleetSchedule(
        fleet,
        DimmingProfile.parse(config.dimming),
        tz,
        episodes,
        times.start_ms,
        times.end_ms,
        seed=config.seed,
        jitter_ms=config.jitter_ms,
        topic_root=config.topic_root,
        emulate_will=not config.per_device,
        gateway_batch=config.gateway_batch,
        gateway_max_age_ms=config.gateway_max_age_ms,
        nominal_v=config.nominal_voltage_v,
        payload_format=config.payload_format,
    )
    return Plan(config, times, fleet, episodes, schedule)


class _Pacer:
    """Maps simulated time to the wall-clock instant an event may go out, and caps the rate."""

    def __init__(self, config: SimulationConfig, times: TimePlan) -> None:
        self.mode = times.mode
        self.speed = config.speed
        self.rate = None if config.flood else config.rate
        self.start_ms = times.start_ms
        self.wall0_ms = time.time() * 1000
        self.sent0 = 0

    def release_ms(self, t_ms: int, sent: int) -> float:
        """Unix ms (wall clock) before which the next message, due at sim ``t_ms``, must wait."""
        at = 0.0
        if self.mode == "realtime":
            at = float(t_ms)
        elif self.mode == "accelerated":
            at = max(self.wall0_ms + (t_ms - self.start_ms) / self.speed, float(t_ms))
        if self.rate is not None:
            at = max(at, self.wall0_ms + (sent - self.sent0) * 1000.0 / self.rate)
        return at

    def sim_now_ms(self) -> int | None:
        """The simulated present for paced modes, None when the run is not paced by the clock."""
        now = time.time() * 1000
        if self.mode == "realtime":
            return int(now)
        if self.mode == "accelerated":
            return int(min(self.start_ms + (now - self.wall0_ms) * self.speed, now))
        return None


def run_simulation(
    config: SimulationConfig,
    stop_event: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> SimulationSummary:
    """Run a simulation to its end or until ``stop_event`` is set; raises ``ConfigError`` on bad
    options and ``PublishError`` when the broker cannot be reached."""
    stop = stop_event or threading.Event()
    plan = build_plan(config)
    times, schedule = plan.time, plan.schedule
    files: dict[str, Path] = {}
    if config.inventory_path is not None:
        write_inventory_csv(config.inventory_path, plan.fleet)
        files["inventory"] = config.inventory_path
    if config.ground_truth_path is not None:
        write_ground_truth(config.ground_truth_path, plan.episodes)
        files["ground_truth"] = config.ground_truth_path
    broker = parse_mqtt_url(config.mqtt_url)
    if config.mqtt_username is not None:
        broker = replace(broker, username=config.mqtt_username, password=config.mqtt_password)
    publisher = FleetPublisher(
        broker, qos=config.qos, window=config.window, client_id=config.client_id, stop=stop
    )
    wall0 = time.monotonic()
    counts = _Counts()
    stop_ms = times.start_ms
    try:
        publisher.connect(
            ((lum.zone, lum.device_id) for lum in plan.fleet),
            config.topic_root,
            shared=not config.per_device,
        )
        pacer = _Pacer(config, times)
        stop_ms = _play(plan, publisher, pacer, counts, stop, progress, wall0)
        for message in schedule.finish(stop_ms):
            _send(publisher, message, counts, stoppable=False)
        if progress is not None:
            elapsed = time.monotonic() - wall0
            progress(
                Progress(
                    stop_ms,
                    times.start_ms,
                    times.end_ms,
                    counts.sent,
                    publisher.acked,
                    counts.readings,
                    elapsed,
                )
            )
    finally:
        drained = publisher.close(_DRAIN_AFTER_STOP_S if stop.is_set() else _DRAIN_S)
    wall_s = time.monotonic() - wall0
    applied_episodes = applied(plan.episodes, stop_ms)
    if config.ground_truth_path is not None:
        write_ground_truth(config.ground_truth_path, applied_episodes)
    if config.energy_truth_path is not None:
        write_energy_truth(config.energy_truth_path, schedule.tallies, times.start_ms, stop_ms)
        files["energy_truth"] = config.energy_truth_path
    return SimulationSummary(
        mode=times.mode,
        connections="per-device" if config.per_device else "shared",
        devices=len(plan.fleet),
        start=from_ms(times.start_ms),
        stop=from_ms(stop_ms),
        messages=publisher.acked,
        unacknowledged=0 if drained else publisher.inflight,
        readings=counts.readings,
        telemetry=counts.telemetry,
        batches=counts.batches,
        statuses=counts.statuses,
        drops=counts.drops,
        wall_s=wall_s,
        episodes_planned=len(plan.episodes),
        episodes_applied=len(applied_episodes),
        stopped=stop.is_set(),
        files=files,
    )


def _send(
    publisher: FleetPublisher, message: Publish, counts: _Counts, *, stoppable: bool = True
) -> None:
    client = publisher.sender(message.sender)
    publisher.publish(client, message.topic, message.payload, message.retain, stoppable=stoppable)
    counts.sent += 1
    counts.readings += message.readings
    if message.kind == "telemetry":
        counts.telemetry += 1
    elif message.kind == "batch":
        counts.batches += 1
    else:
        counts.statuses += 1


def _play(
    plan: Plan,
    publisher: FleetPublisher,
    pacer: _Pacer,
    counts: _Counts,
    stop: threading.Event,
    progress: Callable[[Progress], None] | None,
    wall0: float,
) -> int:
    """Publish the schedule's events at their time; returns the simulated time reached."""
    times = plan.time
    paced = times.mode in ("realtime", "accelerated") or pacer.rate is not None
    wall_deadline = None if times.wall_limit_s is None else wall0 + times.wall_limit_s
    next_progress = 0.0
    last_ms = times.start_ms
    for event in plan.schedule.events():
        if paced:
            release = pacer.release_ms(event.t_ms, counts.sent)
            try:
                _wait_until(publisher, release, stop)
            except _StoppedError:
                return _reached(pacer, last_ms, event.t_ms)
        if stop.is_set() or (wall_deadline is not None and time.monotonic() >= wall_deadline):
            return _reached(pacer, last_ms, event.t_ms)
        if isinstance(event, Publish):
            try:
                _send(publisher, event, counts)
            except PublishStoppedError:
                return _reached(pacer, last_ms, event.t_ms)
            if not paced and counts.sent % _SERVE_EVERY == 0:
                publisher.serve(0)
        elif isinstance(event, Drop):
            publisher.drop(event.device_id)
            counts.drops += 1
        elif isinstance(event, Rejoin):
            publisher.rejoin(event.device_id)
        last_ms = event.t_ms
        if progress is not None and time.monotonic() >= next_progress:
            next_progress = time.monotonic() + _PROGRESS_EVERY_S
            progress(
                Progress(
                    last_ms,
                    times.start_ms,
                    times.end_ms,
                    counts.sent,
                    publisher.acked,
                    counts.readings,
                    time.monotonic() - wall0,
                )
            )
    assert times.end_ms is not None
    return times.end_ms


def _reached(pacer: _Pacer, last_ms: int, next_ms: int) -> int:
    """Simulated time a stopped run reached: up to the first event it did not send."""
    now = pacer.sim_now_ms()
    reached = next_ms if now is None else min(now, next_ms)
    return max(reached, last_ms + 1)


def _wait_until(publisher: FleetPublisher, unix_ms: float, stop: threading.Event) -> None:
    while True:
        remaining = unix_ms - time.time() * 1000
        if stop.is_set():
            raise _StoppedError
        if remaining <= 0:
            return
        publisher.serve(min(remaining / 1000, 0.1))
