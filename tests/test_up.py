"""`luxtel up` on a fresh state directory: its own servers on free ports, data flowing into
InfluxDB, and Ctrl-C stopping everything with exit 0 and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import LUXTEL, count, wait_until


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def run_up_until(tmp_path: Path, enough: int) -> dict[str, Any]:
    """Run `luxtel up` until InfluxDB holds `enough` readings, then Ctrl-C it; return the
    stack it reported, after checking it stopped with exit 0 and left no server behind."""
    log = (tmp_path / "up.out").open("ab")
    process = subprocess.Popen(
        [*LUXTEL, "up", "--devices", "40", "--speed", "900", "--hours-back", "3"],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stack_file = tmp_path / "state" / "up" / "stack.json"
    try:
        wait_until(stack_file.exists, timeout=90, what="the local stack")
        stack = json.loads(stack_file.read_text())
        wait_until(
            lambda: count(stack["influx_url"], "lighting", "telemetry") >= enough,
            timeout=120,
            what="simulated readings in InfluxDB",
        )
        stack["count"] = count(stack["influx_url"], "lighting", "telemetry")
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0, (tmp_path / "up.out").read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            pytest.fail("luxtel up did not stop on SIGINT")
    for pid in stack["pids"]:
        assert _gone(pid), f"server {pid} left behind"
    stack_file.unlink()
    return dict(stack)


def test_up_shows_a_city_flowing_into_influxdb_and_stops_cleanly(tmp_path: Path) -> None:
    (tmp_path / "luxtel.toml").write_text(
        f'state_dir = "{tmp_path / "state"}"\n[metrics]\nenabled = false\n'
    )
    first = run_up_until(tmp_path, 100)
    assert (tmp_path / "state" / "up" / "inventory.csv").exists()
    assert (tmp_path / "state" / "up" / "influxdb").is_dir()
    output = (tmp_path / "up.out").read_text()
    assert "luxtel up" in output
    # A second `luxtel up` continues on the same data: the first run's readings are still there.
    second = run_up_until(tmp_path, first["count"] + 50)
    assert second["count"] >= first["count"] + 50
