"""Secrets never leak: not in --help, not in logs (even at debug), not in error messages."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from servers import InfluxDBServer, MosquittoServer, query
from tests.support import (
    LUXTEL,
    Publisher,
    RunningPipeline,
    make_settings,
    reading,
    settings_toml,
    wait_until,
)

MQTT_SECRET = "mqtt-Secret-4711"
INFLUX_SECRET = "influx-Secret-0815"


@pytest.mark.parametrize(
    "command", [["--help"], ["run", "--help"], ["simulate", "--help"], ["up", "--help"]]
)
def test_help_never_shows_a_secret_from_the_environment(command: list[str]) -> None:
    env = {
        **os.environ,
        "LUXTEL_MQTT__PASSWORD": MQTT_SECRET,
        "LUXTEL_INFLUX__PASSWORD": INFLUX_SECRET,
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [*LUXTEL, *command], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert MQTT_SECRET not in done.stdout + done.stderr
    assert INFLUX_SECRET not in done.stdout + done.stderr


def test_debug_logs_and_the_failure_sentence_hold_no_secret(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb_factory: Callable[..., InfluxDBServer],
    topic_root: str,
) -> None:
    influx = influxdb_factory(auth_enabled=True, admin_password="the-right-one")
    settings = make_settings(tmp_path / "state", mosquitto.url, influx.url, "lighting", topic_root)
    config = tmp_path / "luxtel.toml"
    config.write_text(
        settings_toml(settings).replace("[influx]\n", '[influx]\nusername = "admin"\n')
    )
    env = {
        **os.environ,
        "LUXTEL_MQTT__USERNAME": "luxtel",
        "LUXTEL_MQTT__PASSWORD": MQTT_SECRET,
        "LUXTEL_INFLUX__PASSWORD": INFLUX_SECRET,
        "LUXTEL_LOG__LEVEL": "debug",
    }
    done = subprocess.run(
        [*LUXTEL, "run", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "refused the credentials" in done.stderr
    assert MQTT_SECRET not in done.stdout + done.stderr
    assert INFLUX_SECRET not in done.stdout + done.stderr


def test_influxdb_credentials_from_a_file_work_against_auth_enabled_influxdb(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb_factory: Callable[..., InfluxDBServer],
    topic_root: str,
) -> None:
    influx = influxdb_factory(auth_enabled=True, admin_password="the-right-one")
    secret = tmp_path / "influx-password"
    secret.write_text("the-right-one\n")
    settings = make_settings(tmp_path / "state", mosquitto.url, influx.url, "lighting", topic_root)
    settings = settings.model_copy(
        update={
            "influx": settings.influx.model_copy(
                update={"username": "admin", "password_file": secret}
            )
        }
    )
    with RunningPipeline(settings):
        publisher = Publisher(mosquitto.url)
        publisher.publish([(f"{topic_root}/n/lum-1/telemetry", reading(1795400000000))])
        publisher.close()

        def landed() -> bool:
            answer = query(
                influx.url,
                "SELECT COUNT(power_w) FROM telemetry",
                db="lighting",
                auth=("admin", "the-right-one"),
            )
            return bool(answer["results"][0].get("series"))

        wait_until(landed, what="a point written with file credentials")
