"""Rules beside `luxtel run` (in its rules process): a reading through the real pipeline
(Mosquitto, InfluxDB) raises an alert that lands in InfluxDB's `alerts`, on
`luxtel/alerts/{zone}/{device_id}`, and in `luxtel alerts list`; `luxtel alerts ack` and
`silence` work on the same state."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from luxtel.commands.rules import alerts_app
from luxtel.settings import InventorySettings, RulesSettings
from rules.evaluation.inventory import COLUMNS
from servers import InfluxDBServer, MosquittoServer
from tests.rules_fixtures import HOT_RULES
from tests.support import Publisher, RunningPipeline, make_settings, reading, rows, wait_until


@pytest.mark.integration
def test_an_alert_from_a_reading_through_luxtel_run(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(HOT_RULES)
    inventory_path = tmp_path / "inventory.csv"
    inventory_path.write_text(
        ",".join(COLUMNS) + "\nlum-9,north,C01,31.2,121.4,60,100,900,LX-M60,2024-01-01\n"
    )
    base = make_settings(tmp_path / "state", mosquitto.url, influxdb.url, influx_db, topic_root)
    settings = base.model_copy(
        update={
            "rules": RulesSettings(path=rules_path, tick_s=0.2),
            "inventory": InventorySettings(path=inventory_path),
        }
    )
    received: list[tuple[str, bytes]] = []
    watcher = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"w-{uuid.uuid4().hex[:8]}"
    )
    watcher.on_message = lambda _c, _u, m: received.append((m.topic, bytes(m.payload)))
    watcher.connect(mosquitto.host, mosquitto.port)
    watcher.subscribe("luxtel/alerts/north/lum-9", qos=1)
    watcher.loop_start()
    publisher = Publisher(mosquitto.url)
    try:
        with RunningPipeline(settings) as running:
            running.wait_connected()
            now_ms = int(time.time() * 1000)
            topic = f"{topic_root}/north/lum-9/telemetry"
            publisher.publish([(topic, reading(now_ms, driver_temp_c=95.0))])
            wait_until(lambda: len(received) >= 1, 60, "the alert on MQTT")
            wait_until(
                lambda: bool(rows(influxdb.url, influx_db, "SELECT * FROM alerts")),
                60,
                "the alert in InfluxDB",
            )
            # The rules process sends its metrics every second: wait for the next ones.
            wait_until(
                lambda: running.metric("luxtel_rules_observations_total") == 1,
                60,
                "the rules process's metrics in the pipeline's registry",
            )
            assert running.metric("luxtel_alerts_firing", rule="hot", severity="major") == 1
            assert running.metric("luxtel_messages_received_total") == 1, "one registry"
    finally:
        publisher.close()
        watcher.loop_stop()
        watcher.disconnect()
    assert len(received) == 1, received
    message = orjson.loads(received[0][1])
    assert (message["rule"], message["state"], message["value"]) == ("hot", "firing", 95.0)
    point = rows(influxdb.url, influx_db, "SELECT * FROM alerts")[0]
    assert (point["rule"], point["state"], point["zone"], point["device_id"]) == (
        "hot",
        "firing",
        "north",
        "lum-9",
    )
    state = ["--state-dir", str(settings.state_dir)]
    listed = CliRunner().invoke(alerts_app, ["list", *state])
    assert listed.exit_code == 0, listed.output
    assert message["id"] in listed.output
    acked = CliRunner().invoke(
        alerts_app, ["ack", message["id"][:6], "--reason", "crew out", *state]
    )
    assert acked.exit_code == 0, acked.output
    assert "(acked)" in CliRunner().invoke(alerts_app, ["list", *state]).output
    silenced = CliRunner().invoke(
        alerts_app, ["silence", "--zone", "north", "--for", "4h", "--reason", "works", *state]
    )
    assert silenced.exit_code == 0, silenced.output
    assert "1 active silence(s)" in CliRunner().invoke(alerts_app, ["list", *state]).output
    unknown = CliRunner().invoke(alerts_app, ["ack", "zzzz", *state])
    assert unknown.exit_code == 2
