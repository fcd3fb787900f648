"""`luxtel simulate --format`: every form the simulator publishes is taken by the example sources
file (with the fleet's inventory) and becomes exactly the lines of the same fleet sent in the
contract's form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.adapters import DeviceDirectory, SourceRouter, load_sources
from ingest.decode import Limits, decode
from simulator import SimulationConfig
from simulator.fleet import write_inventory_csv
from simulator.runner import build_plan
from simulator.schedule import Publish

EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "sources" / "sources.example.toml"
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def _lines(form: str, tmp_path: Path) -> list[str]:
    config = SimulationConfig(
        devices=12,
        zones=2,
        interval_s=600,
        start=NOW - timedelta(hours=3),
        end=NOW,
        seed=3,
        payload_format=form,
        connections="shared",
    )
    plan = build_plan(config, now_ms=int(NOW.timestamp() * 1000))
    inventory = tmp_path / f"{form}.csv"
    write_inventory_csv(inventory, plan.fleet)
    router = SourceRouter(load_sources(EXAMPLE), "lighting", DeviceDirectory.load(inventory))
    limits = Limits(topic_root="lighting", sources=router)
    lines = []
    for event in plan.schedule.events():
        if isinstance(event, Publish) and event.kind == "telemetry":
            decoded = decode(event.topic, event.payload, NOW, limits)
            assert decoded.dead_letters == [], decoded.dead_letters[0].detail
            lines += [p.line for p in decoded.points]
    return lines


@pytest.mark.parametrize("form", ["chirpstack", "tts", "senml"])
def test_each_format_lands_as_the_contract_form_does(form: str, tmp_path: Path) -> None:
    contract = _lines("luxtel", tmp_path)
    assert len(contract) > 100
    mine = _lines(form, tmp_path)
    if form == "senml":  # a SenML pack carries no message counter
        contract = [_without_seq(line) for line in contract]
    assert mine == contract


def _without_seq(line: str) -> str:
    head, fields, ts = line.split(" ")
    kept = [f for f in fields.split(",") if not f.startswith("seq=")]
    return f"{head} {','.join(kept)} {ts}"


def test_a_gateway_batch_is_the_contract_form_only() -> None:
    from simulator.config import ConfigError

    with pytest.raises(ConfigError, match="--format luxtel"):
        SimulationConfig(payload_format="tts", gateway_batch=10).validate()
    with pytest.raises(ConfigError, match="--format must be one of"):
        SimulationConfig(payload_format="xml").validate()
