"""The scorer, run small: a simulated fleet with every fault kind injected, through the real
decoder, the shipped rules and the example routes."""

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from bench.rules_score import (
    DEFAULT_NOTIFY,
    DEFAULT_RULES,
    Replay,
    Score,
    detectable_at,
    report,
    run_score,
)
from rules.evaluation.sun import sun_facts
from rules.notify.config import load_notify
from simulator import SimulationConfig
from simulator.clock import to_ms
from simulator.episodes import Episode
from tests.rules_fixtures import device

START = datetime(2026, 1, 5, tzinfo=UTC)
ALL_FAULTS = (
    "lamp_failure=0.03,day_burning=0.03,offline=0.03,voltage_high=0.03,voltage_low=0.03,"
    "cycling=0.03,power_factor_low=0.03,driver_overtemp=0.03,circuit_outage=0.25,"
    "counter_reset=0.03"
)


SMALL_FLEET = SimulationConfig(
    devices=64,
    zones=2,
    circuits_per_zone=2,
    start=START,
    end=START + timedelta(days=1),
    faults=ALL_FAULTS,
    connections="shared",
)


def test_every_injected_fault_is_found_and_nothing_else() -> None:
    score = run_score(SMALL_FLEET, DEFAULT_RULES, load_notify(DEFAULT_NOTIFY))
    report(score, Console(width=120))
    assert set(score.kinds) == {
        "lamp_failure",
        "day_burning",
        "offline",
        "voltage_high",
        "voltage_low",
        "cycling",
        "power_factor_low",
        "driver_overtemp",
        "circuit_outage",
    }
    for kind, result in score.kinds.items():
        assert result.detected == result.episodes, kind
        assert result.within_bound == result.detected, f"{kind}: later than for + an interval"
    assert score.false_alerts == []
    assert score.outage_notifications
    # The first within seconds of the first luminaire's supply_loss, the rest in one update.
    assert all(firing in (1, 2) for firing, _ in score.outage_notifications.values())
    assert score.outage_told_min.keys() == score.outage_notifications.keys()
    interval_min, for_min = 15, 10
    assert all(m <= interval_min + for_min + 3 for m in score.outage_told_min.values())


def _firing(score: Score, *, deadman: bool) -> list[tuple[str, str, datetime, datetime | None]]:
    return sorted(
        (a.rule, a.device_id, a.active_at, a.fired_at)
        for a in score.firings
        if (a.rule == "communication_loss") is deadman
    )


def test_a_replayed_backlog_scores_as_live() -> None:
    """luxtel down for ten hours over the fleet's night, the broker's backlog then delivered
    at once after the last quarter hour's messages again: the same alerts of reading and
    status rules as live, fired at the same reading times, and the same score."""
    notify = load_notify(DEFAULT_NOTIFY)
    live = run_score(SMALL_FLEET, DEFAULT_RULES, notify)
    replay = Replay(START + timedelta(hours=8), 10.0, redeliver_min=15.0)
    late = run_score(SMALL_FLEET, DEFAULT_RULES, notify, replay=replay)
    report(late, Console(width=120))
    assert late.redelivered > 0
    inside = [a for a in live.firings if a.fired_at and replay.start <= a.fired_at < replay.end]
    assert len({a.rule for a in inside}) >= 5, "the outage hides faults of several kinds"
    assert _firing(late, deadman=False) == _firing(live, deadman=False)
    assert late.kinds == live.kinds
    assert late.false_alerts == live.false_alerts == []
    assert late.readings == live.readings


@pytest.mark.parametrize(
    ("minutes_after_sunrise", "deferred_min"),
    [(0.5, 19.5), (5.0, 15.0), (19.0, 1.0), (20.0, 0.0), (240.0, 0.0)],
)
def test_day_burning_is_scored_from_sunrise_plus_its_grace(
    minutes_after_sunrise: float, deferred_min: float
) -> None:
    """The rule's daylight begins `twilight_margin_min` after sunrise: an episode that starts
    earlier is detectable from then, one that starts later from its start."""
    lum = device("a")
    noon = datetime(2026, 1, 10, 4, 0, tzinfo=UTC)  # about noon in Shanghai
    sunrise = noon - timedelta(
        minutes=float(sun_facts(lum.lat, lum.lon, noon)["minutes_after_sunrise"])
    )
    start = sunrise + timedelta(minutes=minutes_after_sunrise)
    start = start.replace(microsecond=0)
    ep = Episode(lum.device_id, lum.zone, lum.circuit, "day_burning", to_ms(start), to_ms(noon))
    found = detectable_at(ep, lum, 20.0)
    assert (found - start).total_seconds() / 60 == pytest.approx(deferred_min, abs=0.02)
