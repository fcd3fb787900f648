"""``luxtel simulate`` as a command: bad options exit 2 with one sentence, an unreachable broker
exits 1, a run exits 0 and writes its files; and the time plan of each mode."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from luxtel.commands.simulate import simulate
from models.inventory import INVENTORY_COLUMNS
from servers import MosquittoServer, free_port
from simulator.clock import MS_PER_DAY, to_ms
from simulator.config import ConfigError, SimulationConfig, plan_time
from simulator.truth import ENERGY_TRUTH_COLUMNS, GROUND_TRUTH_COLUMNS

app = typer.Typer()
app.command("simulate")(simulate)


@app.command("version")
def _version() -> None:
    """A second command, so ``simulate`` is a subcommand as in luxtel."""


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["simulate", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--devices", "0"], "--devices must be at least 1"),
        (["--interval", "0"], "--interval must be at least 1"),
        (["--centre", "north"], "--centre 'north' must be LAT,LON"),
        (["--centre", "95,10"], "--centre must be LAT,LON with latitude in [-90, 90]"),
        (["--tz", "Mars/Olympus"], "--tz 'Mars/Olympus' is not an IANA time zone"),
        (["--centre", "51.5,-0.12"], "--tz Asia/Shanghai (UTC+8) cannot be the civil time at"),
        (["--faults", "lamp=0.1"], "--faults: unknown fault kind 'lamp'"),
        (["--faults", "offline=2"], "--faults: fault 'offline' needs a fraction between 0 and 1"),
        (["--dimming", "25:00=50"], "--dimming: dimming set point '25:00=50' has no such time"),
        (["--to", "2026-06-02"], "--to needs --from"),
        (["--from", "2026-06-01T00:00:00"], "--from '2026-06-01T00:00:00' needs a UTC offset"),
        (["--from", "yesterday"], "--from 'yesterday' is not an RFC 3339 time or a date"),
        (["--from", "2026-06-02", "--to", "2026-06-01"], "--to must be after --from"),
        (["--rate", "10", "--flood"], "--rate and --flood exclude each other"),
        (["--rate", "0"], "--rate must be a positive number"),
        (["--jitter", "900"], "--jitter must be at least 0 and shorter than --interval"),
        (["--qos", "3"], "--qos must be 0, 1 or 2"),
        (["--connections", "many"], "--connections must be auto, per-device or shared"),
        (["--gateway", "5", "--connections", "per-device"], "--gateway publishes through gateways"),
        (["--topic-root", "city/#"], "--topic-root 'city/#' must be a topic without wildcards"),
        (
            ["--mqtt-url", "http://localhost"],
            "--mqtt-url: MQTT URL 'http://localhost' must look like",
        ),
        (["--speed", "0"], "--speed must be a positive factor"),
        (["--from", "2026-06-01", "--duration", "5"], "--duration is for real-time"),
    ],
)
def test_bad_options_exit_2_with_one_sentence(args: list[str], message: str) -> None:
    code, out, err = _invoke(*args)
    assert code == 2
    assert out == ""
    assert err.startswith(f"luxtel simulate: {message}")
    assert err.count("\n") == 1


def test_an_unreachable_broker_exits_1(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    code, _, err = _invoke(
        "--devices", "3", "--from", "2026-06-01", "--to", "2026-06-01T01:00:00+08:00",
        "--mqtt-url", f"mqtt://127.0.0.1:{port}", "-q", "--inventory", str(tmp_path / "i.csv"),
    )  # fmt: skip
    assert code == 1
    assert err.startswith(f"luxtel simulate: cannot connect to mqtt://127.0.0.1:{port}")


@pytest.mark.integration
def test_a_backfill_run_exits_0_and_writes_its_files(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    code, out, err = _invoke(
        "--devices", "12", "--zones", "2", "--circuits-per-zone", "2", "--interval", "1800",
        "--from", "2026-12-20", "--to", "2026-12-21", "--faults", "lamp_failure=0.1,offline=0.1",
        "--mqtt-url", mosquitto.url, "--topic-root", f"t{uuid.uuid4().hex[:8]}/lighting",
        "--inventory", str(tmp_path / "inventory.csv"),
        "--ground-truth", str(tmp_path / "faults.jsonl"),
        "--energy-truth", str(tmp_path / "energy.csv"),
    )  # fmt: skip
    assert code == 0, err
    assert "backfill, 12 luminaires (per-device connections): 2026-12-19T16:00:00.000Z" in out
    assert "faults: 2 episodes applied (2 planned)" in out
    assert "backfill" in err  # the progress bar
    for name, columns in (
        ("inventory.csv", INVENTORY_COLUMNS),
        ("energy.csv", ENERGY_TRUTH_COLUMNS),
    ):
        with (tmp_path / name).open(newline="") as fh:
            reader = csv.DictReader(fh)
            assert tuple(reader.fieldnames or ()) == columns
            assert len(list(reader)) == 12
    lines = (tmp_path / "faults.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert all(line.startswith('{"device_id":') for line in lines)
    assert set(GROUND_TRUTH_COLUMNS) == {"device_id", "zone", "circuit", "kind", "start", "end"}


NOW = to_ms(datetime(2026, 6, 15, 12, tzinfo=UTC))


@pytest.mark.parametrize(
    ("options", "mode", "start", "end", "wall_limit"),
    [
        ({}, "realtime", NOW, None, None),
        ({"duration_s": 60}, "realtime", NOW, NOW + 60_000, None),
        ({"speed": 60, "duration_s": 60}, "accelerated", NOW - 3_600_000, NOW, None),
        ({"speed": 60}, "accelerated", NOW - MS_PER_DAY, None, None),
        (
            {"speed": 60, "start": datetime(2026, 6, 1, tzinfo=UTC)},
            "accelerated",
            to_ms(datetime(2026, 6, 1, tzinfo=UTC)),
            None,
            None,
        ),
        (
            {"start": datetime(2026, 6, 1, tzinfo=UTC)},
            "backfill",
            to_ms(datetime(2026, 6, 1, tzinfo=UTC)),
            NOW,
            None,
        ),
        ({"flood": True, "duration_s": 30}, "flood", NOW - 30 * MS_PER_DAY, NOW, 30),
    ],
)
def test_time_plan(
    options: dict[str, object], mode: str, start: int, end: int | None, wall_limit: float | None
) -> None:
    config = SimulationConfig(**options)  # type: ignore[arg-type]
    config.validate()
    plan = plan_time(config, NOW)
    assert (plan.mode, plan.start_ms, plan.end_ms, plan.wall_limit_s) == (
        mode,
        start,
        end,
        wall_limit,
    )


def test_connections_default_to_per_device_for_small_fleets() -> None:
    assert SimulationConfig(devices=2000).per_device
    assert not SimulationConfig(devices=2001).per_device
    assert not SimulationConfig(devices=10, connections="shared").per_device
    assert not SimulationConfig(devices=10, gateway_batch=50).per_device
    with pytest.raises(ConfigError, match="--from must be in the past"):
        plan_time(SimulationConfig(start=datetime(2030, 1, 1, tzinfo=UTC)), NOW)
