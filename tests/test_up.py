"""`luxtel up` on a fresh state directory: its own servers on free ports, data flowing into
InfluxDB, and Ctrl-C stopping everything with exit 0 and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import LUXTEL, count, wait_until


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_up_shows_a_city_flowing_into_influxdb_and_stops_cleanly(tmp_path: Path) -> None:
    (tmp_path / "luxtel.toml").write_text(
        f'state_dir = "{tmp_path / "state"}"\n[metrics]\nenabled = false\n'
    )
    log = (tmp_path / "up.out").open("wb")
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
            lambda: count(stack["influx_url"], "lighting", "telemetry") >= 100,
            timeout=120,
            what="simulated readings in InfluxDB",
        )
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0, (tmp_path / "up.out").read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            pytest.fail("luxtel up did not stop on SIGINT")
    for pid in stack["pids"]:
        assert _gone(pid), f"server {pid} left behind"
    assert (tmp_path / "state" / "up" / "inventory.csv").exists()
    assert (tmp_path / "state" / "up" / "influxdb").is_dir()
    output = (tmp_path / "up.out").read_text()
    assert "luxtel up" in output
    assert stack["influx_url"] in output
