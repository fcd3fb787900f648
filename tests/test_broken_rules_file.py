"""A broken rules file stops `luxtel run`, not the crews' `luxtel alerts list` nor the
auditors' `luxtel energy report`: loading the settings validates the settings only."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from luxtel.cli import app
from luxtel.settings import load_settings
from models.inventory import INVENTORY_COLUMNS
from rules.evaluation.evaluator import EngineState
from rules.runtime.store import Store
from servers import InfluxDBServer, write_points

BROKEN = "rules:\n  - name: hot\n    source: reading\n    condition: reading.driver_temp_c >\n"


def config(tmp_path: Path, influx: str = "http://127.0.0.1:1", database: str = "lighting") -> Path:
    rules = tmp_path / "rules.yaml"
    rules.write_text(BROKEN)
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(
        ",".join(INVENTORY_COLUMNS)
        + "\n"
        + "lum-1,north,C01,31.2,121.4,60,100,900,LX,\n"
        + "lum-2,north,C01,31.3,121.5,60,100,900,LX,\n"
    )
    path = tmp_path / "luxtel.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[influx]\nurl = "{influx}"\ndatabase = "{database}"\n'
        f'[rules]\npath = "{rules}"\n[inventory]\npath = "{inventory}"\n'
    )
    return path


def test_the_settings_load_with_a_broken_rules_file(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path))
    assert settings.rules.path == tmp_path / "rules.yaml"


def test_alerts_list_works_with_a_broken_rules_file(tmp_path: Path) -> None:
    toml = config(tmp_path)
    store = Store(tmp_path / "state" / "rules.sqlite")
    store.save(EngineState(), EngineState(), {}, [], [], datetime.now(UTC))
    store.close()
    result = CliRunner().invoke(app, ["alerts", "list", "-c", str(toml)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "0 notification(s) or point(s) waiting" in result.output


@pytest.mark.integration
def test_energy_report_works_with_a_broken_rules_file(
    tmp_path: Path, influxdb: InfluxDBServer, influx_db: str
) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    lines = []
    for device in ("lum-1", "lum-2"):
        for step in range(8):
            at = start + timedelta(minutes=15 * step)
            ms = int(at.timestamp() * 1000)
            lines.append(
                f"telemetry,device_id={device},zone=north "
                f"lamp_on=true,power_w=60,energy_wh={15.0 * step} {ms}"
            )
    write_points(influxdb.url, influx_db, lines)
    toml = config(tmp_path, influxdb.url, influx_db)
    result = CliRunner().invoke(
        app,
        ["energy", "report", "-c", str(toml), "--from", "2026-03-01", "--to", "2026-03-02"],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("lum-")]
    assert [row.split()[0] for row in rows] == ["lum-1", "lum-2"]
    assert all(len(line) <= 80 for line in result.output.splitlines()), result.output


def test_luxtel_run_still_stops_on_it_with_exit_2_and_file_line(tmp_path: Path) -> None:
    toml = config(tmp_path)
    result = CliRunner().invoke(app, ["run", "-c", str(toml)])
    assert result.exit_code == 2, result.output
    assert re.search(
        rf"rules\.path: {re.escape(str(tmp_path / 'rules.yaml'))}:\d+: ", result.output
    )
