"""The crews' and auditors' commands in an 80-column terminal and in a pipe: one line per
alert, nothing wider than the terminal, and `--format json|csv` for scripts."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from energy.output import write_rows
from energy.report import Row
from luxtel.cli import app
from rules.evaluation.alerts import Alert
from rules.evaluation.evaluator import EngineState
from rules.runtime.store import Store
from tests.rules_fixtures import at
from tests.support import LUXTEL

LONG = "No supply at {device} (C12, north) while the photocell reads dark: check the breaker"


def alert(device: str, minute: float, *, resolved: bool = False) -> Alert:
    return Alert(
        rule="supply_loss_on_a_long_named_circuit",
        device_id=device,
        zone="north",
        circuit="C12",
        severity="critical",
        labels=(("circuit", "C12"),),
        value=0.0,
        summary=LONG.format(device=device),
        active_at=at(minute),
        fired_at=at(minute + 5),
        resolved_at=at(minute + 30) if resolved else None,
    )


def state_dir_with_alerts(tmp_path: Path) -> tuple[Path, list[Alert]]:
    alerts = [alert(f"luminaire-{i:04d}-north-c12", i) for i in range(3)]
    gone = alert("luminaire-9999-north-c12", 0, resolved=True)
    state = EngineState(at(0), {a.key: a for a in alerts}, {gone.id: gone}, {})
    store = Store(tmp_path / "rules.sqlite")
    try:
        store.save(EngineState(), state, {}, [], [], at(40))
    finally:
        store.close()
    return tmp_path, alerts


def invoke(*args: str, columns: int = 80) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def test_alerts_list_fits_80_columns_one_line_per_alert(tmp_path: Path) -> None:
    state_dir, alerts = state_dir_with_alerts(tmp_path)
    out = invoke("alerts", "list", "--state-dir", str(state_dir))
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    for a in alerts:
        assert sum(a.id in line for line in lines) == 1, out
        (row,) = [line for line in lines if a.id in line]
        assert a.device_id in row
        assert "firing" in row
    assert "luminaire-9999" not in out, "resolved alerts only with --all"


def test_alerts_list_shows_more_columns_when_wide(tmp_path: Path) -> None:
    state_dir, alerts = state_dir_with_alerts(tmp_path)
    narrow = invoke("alerts", "list", "--state-dir", str(state_dir))
    wide = invoke("alerts", "list", "--state-dir", str(state_dir), columns=250)
    assert "severity" not in narrow
    assert "severity" in wide
    assert alerts[0].summary in wide


def test_alerts_list_as_json_and_csv_carries_every_field(tmp_path: Path) -> None:
    state_dir, alerts = state_dir_with_alerts(tmp_path)
    data = json.loads(invoke("alerts", "list", "--state-dir", str(state_dir), "--format", "json"))
    assert [a["id"] for a in data["alerts"]] == [a.id for a in alerts]
    assert data["alerts"][0]["summary"] == alerts[0].summary
    assert (data["unsent"], data["failed_for_good"]) == (0, [])
    text = invoke("alerts", "list", "--all", "--state-dir", str(state_dir), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 4
    assert {r["state"] for r in rows} == {"firing", "resolved"}
    assert rows[0]["summary"].endswith("check the breaker")


def test_alerts_list_piped_is_one_line_per_alert(tmp_path: Path) -> None:
    """Through a pipe (no terminal, no COLUMNS): still one alert a line, at most 80 wide."""
    state_dir, alerts = state_dir_with_alerts(tmp_path)
    done = subprocess.run(
        [*LUXTEL, "alerts", "list", "--state-dir", str(state_dir)],
        capture_output=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TERM": "dumb"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert [sum(a.id in line for line in lines) for a in alerts] == [1, 1, 1]
    assert "\x1b[" not in done.stdout.decode(), "no terminal escapes in a pipe"


def report_rows() -> list[Row]:
    return [
        Row(
            f"luminaire-{i:04d}-north-circuit-c12",
            "",
            1,
            "counter",
            2976,
            2976.0,
            100.0,
            123.456,
            120.0,
            3.456,
            350.25,
            80.0,
            400.0,
            276.5,
            69.1,
            150.3,
            0,
            False,
        )
        for i in range(3)
    ]


def test_the_energy_report_table_fits_80_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    write_rows(report_rows(), "device", "table", None)
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    header = next(line for line in lines if line.startswith("device"))
    assert header.split() == ["device", "devices", "metered_kwh", "savings_kwh", "savings_pct"]
    rows = [line for line in lines if line.startswith("luminaire-")]
    assert len(rows) == 3
    assert rows[0].split()[1:] == ["1", "123.456", "276.500", "69.100"]
    assert any("12 more column(s)" in line for line in lines)


def test_the_energy_report_table_in_a_file_has_every_column(tmp_path: Path) -> None:
    out = tmp_path / "report.txt"
    write_rows(report_rows(), "device", "table", out)
    header = next(line for line in out.read_text().splitlines() if line.startswith("device"))
    assert "co2_avoided_kg" in header.split()
    assert len(header.split()) == 17
