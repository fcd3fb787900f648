"""Score the rules against the simulator's ground truth: recall, false alerts, detection delay.

    python -m bench.rules_score --devices 400 --days 2 --faults lamp_failure=0.02,offline=0.01,...
    python -m bench.rules_score --devices 200 --days 7 --faults ""        # a healthy week
    python -m bench.rules_score --replay-backlog 8      # luxtel down 8 h, then the backlog at once

The simulated fleet's messages (`simulator.build_plan`) go through the real decoder
(`ingest.decode`, with observations on) into the pure evaluator and dispatcher, ticking every
`--tick` simulated seconds, with no broker or database: minutes of CPU for a simulated week.

- recall: injected episodes (per kind) that raised one of the kind's alerts on that luminaire
  between the episode's start and its end plus two report intervals;
- false alerts: firing alerts on a luminaire with no episode within two report intervals of
  that time; "other" are alerts of another kind during an episode (a symptom of it);
- delay: from the moment the fault is detectable by its alarm's definition to the alert firing,
  with percentiles, against the bound `for` + one report interval (+ the jitter, + a tick) of
  the rule that fired. That moment is the episode's start, except for day burning: its rule
  (`deploy/rules/streetlight.yaml`) defines daylight as from `twilight_margin_min` (20 min)
  after sunrise to as long before sunset, because photocells and astronomical clocks switch
  a little off the almanac, so a day-burning episode that starts at dawn (the lamp does not
  switch off) is detectable from sunrise + that margin. The report says how many episodes
  that moved, and by how much; `--from-start` measures every delay from the start instead;
- notifications per circuit outage: notifications about that circuit's supply loss that
  carried newly firing alerts (the goal: the first within seconds of the first alert, and one
  update once the rest of the circuit has reported), and resolved notices; and how long after
  the outage began the crew had the first one;
- evaluation: the process's CPU µs per observation in `evaluate()` (CPU, not wall time, so
  other work on a shared machine does not count; `python -m bench.rules_eval` isolates it).

Reading rules fire in reading time, only when a later reading shows their condition held for
`for` (`rules.evaluation.evaluator`): an episode that the end of the run cuts before that could
happen
(detectable + its fastest alarm's `for` + one report interval and the jitter, past the run's
end) and that raised nothing is counted apart as "cut off", not as a miss.

`--replay-backlog HOURS` scores a restart after an outage: luxtel (rules included) is down for
HOURS from `--replay-from` (hours after the start; default: the backlog centred in the run),
the broker holds what the fleet sends meanwhile, and when luxtel is back it all arrives at once,
received then, after the messages of the last `--redeliver-min` minutes before the outage again
(QoS 1 redeliveries of what was in flight: already judged, they must change nothing). The
score must be the same as live: the same alerts of reading and status rules, fired at the same
reading times. The deadman runs in contact time by definition, so a silence the outage hid is
not raised again (a luminaire offline meanwhile is told by its Last Will's `device_offline`).
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ingest.decode import Limits, decode
from models import Observation, Status
from rules.evaluation.alerts import Alert
from rules.evaluation.columns import MIN_ROWS
from rules.evaluation.evaluator import EngineState, Rulebook, evaluate, mark_sent
from rules.evaluation.inventory import Device, Inventory
from rules.evaluation.sun import sun_facts
from rules.language.loader import load_rules
from rules.notify.config import NO_RECEIVERS, NotifyConfig, load_notify
from rules.notify.dispatch import Group, dispatch
from simulator import SimulationConfig, build_plan
from simulator.clock import from_ms, to_ms
from simulator.episodes import Episode
from simulator.runner import Plan
from simulator.schedule import Drop, Publish

DETECTS: dict[str, frozenset[str]] = {
    "lamp_failure": frozenset({"lamp_failure"}),
    "day_burning": frozenset({"day_burning"}),
    "offline": frozenset({"device_offline", "communication_loss"}),
    "voltage_high": frozenset({"voltage_high"}),
    "voltage_low": frozenset({"voltage_low"}),
    "cycling": frozenset({"cycling"}),
    "power_factor_low": frozenset({"power_factor_low"}),
    "driver_overtemp": frozenset({"driver_overtemp", "device_fault"}),
    "circuit_outage": frozenset({"supply_loss"}),
    "counter_reset": frozenset(),
}
"""Which rules detect each injected fault kind (a counter reset is not an alarm)."""

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = ROOT / "deploy" / "rules" / "streetlight.yaml"
DEFAULT_NOTIFY = ROOT / "deploy" / "rules" / "notify.example.yaml"


GRACE_PARAM: dict[str, str] = {"day_burning": "twilight_margin_min"}
"""Fault kinds whose alarm, by its definition, applies only from this param's minutes after
sunrise (the rules file's `params`)."""


@dataclass(frozen=True)
class Replay:
    """luxtel down from `start` for `hours`, then the held backlog delivered at once, after
    the messages of the last `redeliver_min` minutes before `start` again."""

    start: datetime
    hours: float
    redeliver_min: float = 15.0

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=self.hours)


@dataclass
class KindScore:
    episodes: int = 0
    detected: int = 0
    delays_s: list[float] = field(default_factory=list)
    within_bound: int = 0
    deferred: int = 0
    """Episodes detectable only after their start (day burning at dawn)."""
    deferred_s: float = 0.0
    """The longest such deferral."""
    cut_off: int = 0
    """Episodes not detected that the run ended on before their alarm could fire (not counted
    in `episodes`)."""


@dataclass
class Score:
    devices: int
    days: float
    readings: int
    kinds: dict[str, KindScore]
    false_alerts: list[Alert]
    other_alerts: int
    outage_notifications: dict[str, tuple[int, int]]
    """circuit → (notifications with newly firing alerts, resolved notices)."""
    notifications: int
    eval_us_per_observation: float
    grace_min: dict[str, float] = field(default_factory=dict)
    """The definitional grace, per kind, that delays were measured after (empty: from start)."""
    firings: list[Alert] = field(default_factory=list)
    """Every alert as it fired, in order."""
    replay: Replay | None = None
    redelivered: int = 0
    """Messages delivered again after the outage."""
    outage_told_min: dict[str, float] = field(default_factory=dict)
    """circuit → minutes from the start of its outage to the crew's first notification."""


def detectable_at(ep: Episode, device: Device, grace_min: float) -> datetime:
    """When an episode of a kind with a grace after sunrise becomes detectable: its start, or
    sunrise + the grace when it started in the grace."""
    start = from_ms(ep.start_ms)
    facts = sun_facts(device.lat, device.lon, start)
    after_sunrise = float(facts["minutes_after_sunrise"])
    if facts["is_day"] and after_sunrise < grace_min:
        return start + timedelta(minutes=grace_min - after_sunrise)
    return start


ALL_FAULTS = (
    "lamp_failure=0.02,day_burning=0.02,offline=0.02,voltage_high=0.02,voltage_low=0.02,"
    "cycling=0.02,power_factor_low=0.02,driver_overtemp=0.02,circuit_outage=0.05,"
    "counter_reset=0.01"
)
"""Every fault kind, as `--faults` gives it by default."""


def inventory_of(plan: Plan) -> Inventory:
    """The simulated fleet as the rules' inventory."""
    return Inventory.of(
        [
            Device(
                device_id=lum.device_id,
                zone=lum.zone,
                circuit=lum.circuit,
                lat=lum.lat,
                lon=lum.lon,
                rated_power_w=lum.rated_power_w,
                baseline_power_w=lum.baseline_power_w,
                report_interval_s=lum.report_interval_s,
                model=lum.model,
                installed_on=lum.installed_on,
            )
            for lum in plan.fleet
        ]
    )


def run_score(
    config: SimulationConfig,
    rules_path: Path = DEFAULT_RULES,
    notify: NotifyConfig | None = None,
    tick_s: float = 60.0,
    *,
    from_start: bool = False,
    replay: Replay | None = None,
    columnar_from: int | None = MIN_ROWS,
) -> Score:
    """Simulate the fleet, evaluate its messages (live, or with `replay`'s outage and
    backlog), and score the alerts against the episodes."""
    plan = build_plan(config, now_ms=to_ms(config.end or datetime.now(UTC)))
    params = {"nominal_voltage_v": config.nominal_voltage_v}
    rules = load_rules(rules_path, params)
    inventory = inventory_of(plan)
    book = Rulebook(rules, inventory)
    route = (notify or NO_RECEIVERS).route
    alertmanagers = {
        name for name, r in (notify or NO_RECEIVERS).receivers.items() if r.alertmanager
    }
    limits = Limits(topic_root=config.topic_root, max_clock_skew_s=1e9, observe=True)
    state = EngineState()
    groups: dict[str, Group] = {}
    firings: list[Alert] = []
    outage: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    told: dict[str, datetime] = {}
    """circuit → when the crew was first told of its supply loss (the evaluation's time)."""
    total_notifications = 0
    readings = 0
    eval_s = 0.0
    evaluated = 0
    tick_ms = int(tick_s * 1000)
    next_tick = plan.time.start_ms + tick_ms
    buffer: list[Observation] = []

    def step(now_ms: int) -> None:
        nonlocal state, groups, total_notifications, eval_s, evaluated
        now = from_ms(now_ms)
        started = time.process_time()
        state, transitions = evaluate(book, state, now, buffer, columnar_from=columnar_from)
        eval_s += time.process_time() - started
        evaluated += len(buffer)
        buffer.clear()
        firings.extend(t.alert for t in transitions if t.kind == "firing")
        live = [a for a in state.alerts.values() if a.fired_at is not None]
        result = dispatch(
            route,
            groups,
            live,
            list(state.resolved.values()),
            now,
            rules=rules,
            inventory=inventory,
            inhibit_rules=(notify or NO_RECEIVERS).inhibit_rules,
        )
        groups = dict(result.groups)
        state = mark_sent(state, result.handled, now)
        for note in result.notifications:
            total_notifications += 1
            labels = dict(note.group_labels)
            crew = note.receiver not in alertmanagers
            if crew and labels.get("rule") == "supply_loss" and labels.get("circuit"):
                counts = outage[labels["circuit"]]
                if note.firing:
                    told.setdefault(labels["circuit"], now)
                    counts[0] += 1
                else:
                    counts[1] += 1

    end_ms = plan.time.end_ms
    assert end_ms is not None
    down_ms, up_ms = (to_ms(replay.start), to_ms(replay.end)) if replay else (end_ms, end_ms)
    redeliver_ms = int(replay.redeliver_min * 60_000) if replay else 0
    redelivered = 0
    held: list[tuple[int, Publish | Drop]] = []
    """What the broker holds while luxtel is down: (sent at, event)."""
    in_flight: list[tuple[int, Publish | Drop]] = []
    """What luxtel received in the last `redeliver_min` before going down."""

    def receive(event: Publish | Drop, received_ms: int) -> None:
        nonlocal readings
        at = from_ms(received_ms)
        if isinstance(event, Publish):
            decoded = decode(event.topic, event.payload, at, limits)
            buffer.extend(decoded.observations)
            if received_ms == event.t_ms:  # counted once, when first received
                readings += event.readings
        else:  # the broker's Last Will: no `ts`, stamped when luxtel receives it
            zone = inventory.devices[event.device_id].zone
            buffer.append(Observation(zone, event.device_id, at, at, status=Status(online=False)))

    def back_up() -> None:
        """luxtel is back: what was in flight again, then the backlog, all received now."""
        nonlocal readings, redelivered
        redelivered += len(in_flight)
        for _, event in in_flight:
            receive(event, up_ms)
        for _, event in held:
            receive(event, up_ms)
            if isinstance(event, Publish):
                readings += event.readings
        held.clear()
        in_flight.clear()

    for event in plan.schedule.events():
        if not isinstance(event, Publish | Drop):
            continue
        if down_ms <= event.t_ms < up_ms:
            held.append((event.t_ms, event))
            continue
        while event.t_ms >= next_tick:
            if next_tick >= up_ms and held:
                back_up()
            if not down_ms <= next_tick < up_ms:
                step(next_tick)
            next_tick += tick_ms
        if next_tick >= up_ms and held:
            back_up()
        receive(event, event.t_ms)
        if event.t_ms >= down_ms - redeliver_ms and event.t_ms < down_ms:
            in_flight.append((event.t_ms, event))
    while next_tick <= end_ms:
        if next_tick >= up_ms and held:
            back_up()
        if not down_ms <= next_tick < up_ms:
            step(next_tick)
        next_tick += tick_ms
    grace = {} if from_start else {k: float(rules.params[p]) for k, p in GRACE_PARAM.items()}
    detectable = {
        id(ep): detectable_at(ep, inventory.devices[ep.device_id], grace[ep.kind])
        if ep.kind in grace
        else from_ms(ep.start_ms)
        for ep in plan.episodes
    }
    score = _tally(
        plan.episodes,
        detectable,
        firings,
        for_of={rule.name: rule.for_ for rule in rules.rules},
        interval_s=config.interval_s,
        jitter_s=config.jitter_ms / 1000,
        tick_s=tick_s,
        devices=len(plan.fleet),
        days=(end_ms - plan.time.start_ms) / 86_400_000,
        readings=readings,
        outage={k: (v[0], v[1]) for k, v in outage.items()},
        notifications=total_notifications,
        eval_us=eval_s / max(evaluated, 1) * 1e6,
        run_end=from_ms(end_ms),
    )
    score.grace_min = grace
    score.firings = firings
    score.replay = replay
    score.redelivered = redelivered
    began = {
        ep.circuit: from_ms(ep.start_ms) for ep in plan.episodes if ep.kind == "circuit_outage"
    }
    score.outage_told_min = {
        circuit: (at - began[circuit]).total_seconds() / 60
        for circuit, at in told.items()
        if circuit in began
    }
    return score


def _tally(
    episodes: list[Episode],
    detectable: dict[int, datetime],
    firings: list[Alert],
    *,
    for_of: dict[str, timedelta],
    interval_s: float,
    jitter_s: float,
    tick_s: float,
    devices: int,
    days: float,
    readings: int,
    outage: dict[str, tuple[int, int]],
    notifications: int,
    eval_us: float,
    run_end: datetime,
) -> Score:
    slack = timedelta(seconds=2 * interval_s)
    reading_late = timedelta(seconds=interval_s + jitter_s)
    by_device: dict[str, list[Episode]] = defaultdict(list)
    for ep in episodes:
        by_device[ep.device_id].append(ep)
    kinds: dict[str, KindScore] = {kind: KindScore() for kind in DETECTS}
    for ep in episodes:
        score = kinds[ep.kind]
        if not DETECTS[ep.kind]:
            continue
        start, end = from_ms(ep.start_ms), from_ms(ep.end_ms)
        hits = [
            a
            for a in firings
            if a.device_id == ep.device_id
            and a.rule in DETECTS[ep.kind]
            and a.fired_at is not None
            and start <= a.fired_at <= end + slack
        ]
        if not hits:
            fastest = min(for_of.get(rule, timedelta(0)) for rule in DETECTS[ep.kind])
            if detectable[id(ep)] + fastest + reading_late > run_end:
                score.cut_off += 1  # no reading after it could show the alarm's `for`
                continue
        score.episodes += 1
        if not hits:
            continue
        first = min(hits, key=lambda a: a.fired_at or start)
        assert first.fired_at is not None
        score.detected += 1
        since = detectable[id(ep)]
        if since > start:
            score.deferred += 1
            score.deferred_s = max(score.deferred_s, (since - start).total_seconds())
        delay = (first.fired_at - since).total_seconds()
        score.delays_s.append(delay)
        bound = for_of.get(first.rule, timedelta(0)).total_seconds() + interval_s
        if first.rule == "communication_loss":
            bound += 2 * interval_s  # the deadman waits 3 intervals by definition
        if delay <= bound + jitter_s + tick_s:
            score.within_bound += 1
    false_alerts: list[Alert] = []
    other = 0
    for alert in firings:
        assert alert.fired_at is not None
        near = [
            ep
            for ep in by_device.get(alert.device_id, [])
            if from_ms(ep.start_ms) - slack <= alert.fired_at <= from_ms(ep.end_ms) + slack
        ]
        if not near:
            false_alerts.append(alert)
        elif not any(alert.rule in DETECTS[ep.kind] for ep in near):
            other += 1
    return Score(
        devices,
        days,
        readings,
        {k: v for k, v in kinds.items() if v.episodes or v.cut_off},
        false_alerts,
        other,
        outage,
        notifications,
        eval_us,
    )


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report(score: Score, console: Console) -> None:
    console.print(
        f"{score.devices} luminaires, {score.days:g} days, {score.readings} readings; "
        f"evaluation {score.eval_us_per_observation:.0f} CPU µs per observation"
    )
    if score.replay is not None:
        replay = score.replay
        console.print(
            f"replayed backlog: luxtel down {replay.hours:g} h from {replay.start:%Y-%m-%d %H:%M} "
            f"UTC; the backlog delivered at once when back, after the last "
            f"{replay.redeliver_min:g} min before the outage again ({score.redelivered} messages)"
        )
    table = Table(
        "fault",
        "episodes",
        "detected",
        "recall",
        "p50 min",
        "p90 min",
        "max min",
        "within for+interval",
    )
    for kind, k in sorted(score.kinds.items()):
        if not k.episodes:
            continue
        delays = [d / 60 for d in k.delays_s] or [float("nan")]
        table.add_row(
            kind,
            str(k.episodes),
            str(k.detected),
            f"{k.detected / k.episodes:.0%}",
            f"{_percentile(delays, 50):.1f}",
            f"{_percentile(delays, 90):.1f}",
            f"{max(delays):.1f}",
            f"{k.within_bound}/{k.detected}",
        )
    console.print(table)
    console.print(_delay_note(score))
    cut = ", ".join(f"{kind} {k.cut_off}" for kind, k in sorted(score.kinds.items()) if k.cut_off)
    if cut:
        console.print(
            f"cut off by the end of the run before their alarm could fire, not scored: {cut}"
        )
    total = sum(k.episodes for k in score.kinds.values())
    found = sum(k.detected for k in score.kinds.values())
    if total:
        console.print(f"recall: {found}/{total} = {found / total:.1%}")
    console.print(
        f"false alerts: {len(score.false_alerts)}; alerts of another kind during a fault: "
        f"{score.other_alerts}; notifications: {score.notifications}"
    )
    for alert in score.false_alerts[:20]:
        console.print(
            f"  false: {alert.rule} {alert.device_id} at {alert.fired_at}: {alert.summary}"
        )
    for circuit, (firing, resolved) in sorted(score.outage_notifications.items()):
        told = score.outage_told_min.get(circuit)
        when = f", the first {told:.1f} min after it began" if told is not None else ""
        console.print(
            f"circuit outage {circuit}: {firing} crew notification(s) while firing{when}, "
            f"{resolved} resolved notice(s)"
        )


def _delay_note(score: Score) -> str:
    """What the delays were measured from, said next to them."""
    if not score.grace_min:
        return "delay: from each fault's start (--from-start)."
    parts = []
    for kind, grace in sorted(score.grace_min.items()):
        k = score.kinds.get(kind)
        moved = (
            f"{k.deferred} of {k.detected} episodes started earlier, by up to "
            f"{k.deferred_s / 60:.0f} min"
            if k is not None
            else "no episodes"
        )
        parts.append(
            f"{kind} from max(start, sunrise + {grace:g} min), where its rule's definition of "
            f"daylight begins ({moved})"
        )
    return "delay: from each fault's start, except " + "; ".join(parts) + "."


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    devices: int = typer.Option(400, help="Luminaires in the simulated fleet."),
    days: float = typer.Option(2.0, help="Simulated days."),
    faults: str = typer.Option(
        ALL_FAULTS,
        help="The simulator's --faults spec; empty for a healthy fleet.",
    ),
    seed: int = typer.Option(1, help="Seed of the fleet and its faults."),
    start: str = typer.Option("2026-01-05T00:00:00Z", help="Simulated start (UTC)."),
    interval_s: int = typer.Option(900, help="Report interval of every luminaire."),
    rules: Path = typer.Option(DEFAULT_RULES, help="The rules file."),  # noqa: B008
    notify: Path = typer.Option(DEFAULT_NOTIFY, help="The notification file (routes)."),  # noqa: B008
    tick_s: float = typer.Option(60.0, help="Timer tick, simulated seconds."),
    from_start: bool = typer.Option(
        False, help="Measure every delay from the fault's start, with no definitional grace."
    ),
    replay_backlog: float = typer.Option(
        0.0, help="Hours luxtel is down, its backlog then delivered at once (0: live)."
    ),
    replay_from: float | None = typer.Option(
        None, help="Hours after the start the outage begins (default: backlog centred in the run)."
    ),
    redeliver_min: float = typer.Option(
        15.0, help="Minutes before the outage whose messages are delivered again after it."
    ),
    columnar_from: int = typer.Option(
        MIN_ROWS,
        help="Evaluate a tick's observations column-wise from this many on (0: never; 1: always).",
    ),
) -> None:
    """Simulate, evaluate and score."""
    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    config = SimulationConfig(
        devices=devices,
        start=begin,
        end=begin + timedelta(days=days),
        faults=faults,
        seed=seed,
        interval_s=interval_s,
        connections="shared",
    )
    notify_config = load_notify(notify) if notify.exists() else None
    replay = None
    if replay_backlog > 0:
        offset = (days * 24 - replay_backlog) / 2 if replay_from is None else replay_from
        replay = Replay(begin + timedelta(hours=offset), replay_backlog, redeliver_min)
    score = run_score(
        config,
        rules,
        notify_config,
        tick_s,
        from_start=from_start,
        replay=replay,
        columnar_from=columnar_from or None,
    )
    report(score, Console(width=120))


if __name__ == "__main__":
    app()
