"""`luxtel up` on a fresh state directory: its own servers on free ports, data flowing into
InfluxDB, the rules engine running on the simulated fleet's inventory (its state file, and the
city map's `luminaire_state` points for every luminaire), and Ctrl-C stopping everything with
exit 0 and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge
from rich.console import Console

from luxtel.live_view import Counters, FleetNow, Where, render, summary_line
from luxtel.settings import InventorySettings, RulesSettings, Settings
from luxtel.up import shipped_rules, with_rules
from servers import InfluxDBError
from tests.support import LUXTEL, count, rows, wait_until

DEVICES = 40


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _stack(path: Path) -> dict[str, Any] | None:
    """The stack `luxtel up` reported, once the file is there and whole."""
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def run_up_until(tmp_path: Path, enough: int, *more: str) -> dict[str, Any]:
    """Run `luxtel up` until InfluxDB holds `enough` readings, then Ctrl-C it; return the
    stack it reported, after checking it stopped with exit 0 and left no server behind."""
    process = subprocess.Popen(
        [*LUXTEL, "up", "--devices", str(DEVICES), "--speed", "900", "--hours-back", "3", *more],
        cwd=tmp_path,
        stdout=subprocess.PIPE,  # a pipe, as `luxtel up | tee up.log` gives it
        stderr=subprocess.STDOUT,
    )
    stack_file = tmp_path / "state" / "up" / "stack.json"
    interrupted = False
    try:
        wait_until(lambda: _stack(stack_file) is not None, timeout=90, what="the local stack")
        stack = _stack(stack_file) or {}
        wait_until(
            lambda: _count_once_created(stack["influx_url"], "telemetry") >= enough,
            timeout=120,
            what="simulated readings in InfluxDB",
        )
        stack["count"] = count(stack["influx_url"], "lighting", "telemetry")
        # The rules engine's first snapshot of the map: one point per inventory luminaire.
        wait_until(
            lambda: count(stack["influx_url"], "lighting", "luminaire_state") >= DEVICES,
            timeout=120,
            what="the rules engine's luminaire_state points",
        )
        stack["mapped"] = len(
            rows(
                stack["influx_url"],
                "lighting",
                'SELECT last("state_code") FROM "luminaire_state" GROUP BY "device_id"',
            )
        )
        process.send_signal(signal.SIGINT)
        interrupted = True
        output, _ = process.communicate(timeout=60)
        with (tmp_path / "up.out").open("ab") as log:
            log.write(output)
        assert process.returncode == 0, output.decode()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            if interrupted:
                pytest.fail("luxtel up did not stop on SIGINT")
    for pid in stack["pids"]:
        assert _gone(pid), f"server {pid} left behind"
    stack_file.unlink()
    return dict(stack)


def _count_once_created(influx_url: str, measurement: str) -> int:
    """`count`, 0 while luxtel has not yet created the database (the stack file is written
    as soon as the servers answer, before the pipeline creates it)."""
    try:
        return count(influx_url, "lighting", measurement)
    except InfluxDBError as error:
        if "database not found" in str(error):
            return 0
        raise


def test_up_shows_a_city_flowing_into_influxdb_and_stops_cleanly(tmp_path: Path) -> None:
    (tmp_path / "luxtel.toml").write_text(
        f'state_dir = "{tmp_path / "state"}"\n[metrics]\nenabled = false\n'
    )
    first = run_up_until(tmp_path, 100)
    assert (tmp_path / "state" / "up" / "inventory.csv").exists()
    # The rules ran on the fleet's inventory, with their state where the pipeline keeps it.
    assert (tmp_path / "state" / "up" / "luxtel" / "rules.sqlite").is_file()
    assert first["mapped"] == DEVICES
    assert (tmp_path / "state" / "up" / "influxdb").is_dir()
    output = (tmp_path / "up.out").read_text()
    assert "luxtel up" in output
    # Piped, no panel frozen at its first values: where the data is, then status lines.
    assert not {"╭", "│", "╰"} & set(output), output
    status = [line for line in output.splitlines() if " · broker " in line]
    assert status, output
    assert all("broker connected" in line for line in status[:1]), status
    assert f"alerts   luxtel alerts list --state-dir {tmp_path / 'state'}" in output
    # A second `luxtel up` continues on the same data: the first run's readings are still there.
    second = run_up_until(tmp_path, first["count"] + 50)
    assert second["count"] >= first["count"] + 50


def test_up_format_shows_the_city_flowing_through_an_adapter(tmp_path: Path) -> None:
    (tmp_path / "luxtel.toml").write_text(
        f'state_dir = "{tmp_path / "state"}"\n[metrics]\nenabled = false\n'
    )
    run_up_until(tmp_path, 100, "--format", "senml")
    deadletter = tmp_path / "state" / "up" / "luxtel" / "deadletter.jsonl"
    assert not deadletter.exists(), deadletter.read_text()[:2000]


def test_up_turns_the_rules_on_unless_the_configuration_names_its_own(tmp_path: Path) -> None:
    shipped = shipped_rules()
    assert shipped is not None
    assert shipped == Path(__file__).resolve().parent.parent / "deploy/rules/streetlight.yaml"
    fleet_inventory = tmp_path / "inventory.csv"
    on = with_rules(Settings(), fleet_inventory, shipped)
    assert (on.rules.path, on.inventory.path) == (shipped, fleet_inventory)
    own = Settings(
        rules=RulesSettings(path=tmp_path / "mine.yaml"),
        inventory=InventorySettings(path=tmp_path / "city.csv"),
    )
    kept = with_rules(own, fleet_inventory, shipped)
    assert (kept.rules.path, kept.inventory.path) == (tmp_path / "mine.yaml", tmp_path / "city.csv")
    assert with_rules(Settings(), fleet_inventory, None).rules.path is None


def test_the_view_shows_the_alerts_firing_by_rule_and_the_rules_lag() -> None:
    registry = CollectorRegistry()
    firing = Gauge("luxtel_alerts_firing", "", ["rule", "severity"], registry=registry)
    firing.labels("lamp_failure", "major").set(3)
    firing.labels("day_burning", "minor").set(0)
    Gauge("luxtel_rules_lag_observations", "", registry=registry).set(1234)
    Gauge("luxtel_rules_lag_seconds", "", registry=registry).set(2.5)
    counters = Counters()
    counters.update(registry)
    assert counters.firing == {"lamp_failure": 3.0, "day_burning": 0.0}
    where = Where("mqtt://m", "http://i", "lighting", "/s", "lighting", "rules.yaml", "/s/luxtel")
    console = Console(width=120, record=True)
    console.print(render(counters, FleetNow(), where, "now"))
    text = console.export_text()
    assert "3  (lamp_failure 3)" in text
    assert "1,234 readings, 2.5 s behind" in text
    assert "luxtel alerts list --state-dir /s/luxtel" in text
    assert summary_line(counters, FleetNow()).endswith("alerts firing 3")
    off = Where("mqtt://m", "http://i", "lighting", "/s", "lighting")
    console = Console(width=120, record=True)
    console.print(render(Counters(), FleetNow(), off, "now"))
    assert "rules off" in console.export_text()
