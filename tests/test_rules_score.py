"""The scorer, run small: a simulated fleet with every fault kind injected, through the real
decoder, the shipped rules and the example routes."""

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from bench.rules_score import DEFAULT_NOTIFY, DEFAULT_RULES, detectable_at, report, run_score
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


def test_every_injected_fault_is_found_and_nothing_else() -> None:
    config = SimulationConfig(
        devices=64,
        zones=2,
        circuits_per_zone=2,
        start=START,
        end=START + timedelta(days=1),
        faults=ALL_FAULTS,
        connections="shared",
    )
    score = run_score(config, DEFAULT_RULES, load_notify(DEFAULT_NOTIFY))
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
    assert all(firing == 1 for firing, _ in score.outage_notifications.values())


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
