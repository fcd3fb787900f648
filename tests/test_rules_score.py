"""The scorer, run small: a simulated fleet with every fault kind injected, through the real
decoder, the shipped rules and the example routes."""

from datetime import UTC, datetime, timedelta

from rich.console import Console

from rules.notify_config import load_notify
from rules.score import DEFAULT_NOTIFY, DEFAULT_RULES, report, run_score
from simulator import SimulationConfig

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
    assert score.false_alerts == []
    assert score.outage_notifications
    assert all(firing == 1 for firing, _ in score.outage_notifications.values())
