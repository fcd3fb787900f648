"""luxtel against other brokers than Mosquitto (issue 13): RabbitMQ's MQTT plugin and aedes,
each a real server of the test session's own (`tests/conftest.py`, `servers/`).

End to end on every broker: readings, a gateway's batch and a bad payload, and a `kill -9` of
`luxtel run` mid-stream with nothing lost. Then what each broker does differently: aedes forwards
a QoS 2 publication at QoS 2 and refuses MQTT 5 with a 3.1.1 CONNACK, RabbitMQ closes an MQTT 5
connection without a word, maps '.' in topics to '/' and sends at most `mqtt.prefetch` (10)
unacknowledged messages; and two instances sharing a client id on Mosquitto.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from structlog.testing import capture_logs

from luxtel.settings import Settings
from servers import InfluxDBServer, MosquittoServer, RabbitMQServer, ServerProcess
from tests.support import (
    LUXTEL,
    Publisher,
    RunningPipeline,
    count,
    make_settings,
    reading,
    settings_toml,
    wait_until,
)

BASE_MS = int(time.time() * 1000) - 3_600_000
BROKERS = ["mosquitto", "rabbitmq", "aedes"]


def broker_of(request: pytest.FixtureRequest, name: str) -> ServerProcess:
    server = request.getfixturevalue(name)
    assert isinstance(server, ServerProcess)
    return server


def with_mqtt(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update=changes)})


def stream(root: str, start: int, n: int, devices: int = 20) -> list[tuple[str, bytes]]:
    return [
        (f"{root}/z{i % 3}/lum-{i % devices}/telemetry", reading(BASE_MS + i, seq=i))
        for i in range(start, start + n)
    ]


def take_session(url: str, client_id: str) -> None:
    """Connect with `client_id` (3.1.1, the session kept) and leave: the broker closes the
    connection that held it."""
    host, port = url.removeprefix("mqtt://").split(":")
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    client.connect(host, int(port))
    client.loop_start()
    wait_until(client.is_connected, what="the session taken")
    client.disconnect()
    client.loop_stop()


def dead_letters(state_dir: Path) -> list[dict[str, str]]:
    path = state_dir / "deadletter.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def start(
    tmp_path: Path, settings: Settings, name: str = "luxtel", **env: str
) -> tuple[Path, subprocess.Popen[bytes]]:
    """`luxtel run` with `settings` (and `env`, `LUXTEL_…` overrides) as its own process; its
    log file."""
    config = tmp_path / f"{name}.toml"
    config.write_text(settings_toml(settings))
    log = tmp_path / f"{name}.log"
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [*LUXTEL, "run", "-c", str(config)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
    return log, process


def exit_status(process: subprocess.Popen[bytes], timeout_s: float = 60) -> int | None:
    """How `luxtel run` exited by itself within `timeout_s`; None (and it is killed) if not."""
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.terminate()
    assert exit_status(process) == 0, log.read_text()[-3000:]


# ---- every broker: end to end -----------------------------------------------------------------


@pytest.mark.parametrize("broker_name", BROKERS)
def test_readings_a_batch_and_a_bad_payload_end_to_end(
    request: pytest.FixtureRequest,
    broker_name: str,
    tmp_path: Path,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    """With the default settings (`mqtt.protocol = "auto"`): each broker's MQTT version."""
    broker = broker_of(request, broker_name)
    influx_url = influxdb.url
    settings = make_settings(tmp_path, broker.url, influx_url, influx_db, topic_root)
    batch = [
        {
            "device_id": f"lum-b{i}",
            "ts": (BASE_MS + i) / 1000,
            "lamp_on": True,
            "power_w": 30.0,
            "energy_wh": 5.0,
        }
        for i in range(10)
    ]
    with RunningPipeline(settings) as running:
        publisher = Publisher(broker.url)
        publisher.publish(stream(topic_root, 0, 200))
        publisher.publish([(f"{topic_root}/z9/gw-1/batch", json.dumps(batch))])
        publisher.publish([(f"{topic_root}/z9/lum-x/telemetry", b"{not json")])
        publisher.close()
        wait_until(lambda: count(influx_url, influx_db, "telemetry") == 210, what="readings")
        wait_until(lambda: len(dead_letters(tmp_path)) == 1, what="the dead letter")
        assert running.metric("luxtel_mqtt_connects_total") == 1
    [record] = dead_letters(tmp_path)
    assert record["reason"] == "payload_not_json"
    assert record["topic"] == f"{topic_root}/z9/lum-x/telemetry"


class BackgroundPublisher:
    """Publishes `messages` in slices of 200 from a thread, each acknowledged by the broker."""

    def __init__(self, url: str, messages: list[tuple[str, bytes]]) -> None:
        self.url, self.messages = url, messages
        self.error: BaseException | None = None
        self.published = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        publisher = Publisher(self.url)
        try:
            for first in range(0, len(self.messages), 200):
                self.published += publisher.publish(self.messages[first : first + 200])
        except BaseException as error:
            self.error = error
        finally:
            publisher.close()


@pytest.mark.parametrize("broker_name", BROKERS)
def test_kill_9_mid_stream_then_restart_loses_nothing(
    request: pytest.FixtureRequest,
    broker_name: str,
    tmp_path: Path,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    broker = broker_of(request, broker_name)
    influx_url = influxdb.url
    settings = make_settings(
        tmp_path / "state",
        broker.url,
        influx_url,
        influx_db,
        topic_root,
        client_id=f"luxtel-kill-{uuid.uuid4().hex[:8]}",
    )
    total = 3000
    log, process = start(tmp_path, settings)
    try:
        wait_until(lambda: "mqtt_connected" in log.read_text(), what="luxtel connected")
        sender = BackgroundPublisher(broker.url, stream(topic_root, 0, total))
        wait_until(
            lambda: count(influx_url, influx_db, "telemetry") >= 600, what="points before the kill"
        )
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        log, process = start(tmp_path, settings)
        # Connected before it is stopped: a SIGTERM before its handlers are set ends it -15.
        wait_until(lambda: log.read_text().count("mqtt_connected") >= 2, what="the restart")
        sender.thread.join(120)
        assert sender.error is None
        assert sender.published == total
        wait_until(
            lambda: count(influx_url, influx_db, "telemetry") == total,
            timeout=90,
            what="every reading after the kill",
        )
    finally:
        stop(process, log)


# ---- aedes: QoS 2 deliveries (case 4) ---------------------------------------------------------


def test_a_qos_2_delivery_is_ingested_and_ingest_carries_on(
    tmp_path: Path, aedes: ServerProcess, influxdb: InfluxDBServer, influx_db: str, topic_root: str
) -> None:
    """aedes forwards a QoS 2 publication at QoS 2 even to luxtel's QoS 1 subscription: luxtel
    answers it as a QoS 2 receiver (PUBREC once durable, PUBCOMP for the PUBREL), stays
    connected, and what follows lands too."""
    influx_url = influxdb.url
    settings = with_mqtt(
        make_settings(tmp_path, aedes.url, influx_url, influx_db, topic_root), protocol="3.1.1"
    )
    with RunningPipeline(settings) as running:
        publisher = Publisher(aedes.url)
        publisher.publish(stream(topic_root, 0, 5), qos=2)
        publisher.publish(stream(topic_root, 5, 100), qos=1)
        publisher.publish(stream(topic_root, 105, 5), qos=2)
        publisher.close()
        wait_until(lambda: count(influx_url, influx_db, "telemetry") == 110, what="every reading")
        assert running.metric("luxtel_mqtt_connects_total") == 1
        assert running.metric("luxtel_unacked_messages") == 0


# ---- mqtt.protocol = "auto" (case 6) ----------------------------------------------------------


@pytest.mark.parametrize("broker_name", ["rabbitmq", "aedes"])
def test_auto_falls_back_to_3_1_1_once_on_a_broker_without_mqtt_5(
    request: pytest.FixtureRequest,
    broker_name: str,
    tmp_path: Path,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    """RabbitMQ 3.10 closes an MQTT 5 connection at once; aedes answers it with 3.1.1's
    "unacceptable protocol version". luxtel says once that it falls back, and works."""
    broker = broker_of(request, broker_name)
    influx_url = influxdb.url
    settings = make_settings(tmp_path, broker.url, influx_url, influx_db, topic_root)
    assert settings.mqtt.protocol == "auto"  # the default
    with capture_logs() as logs, RunningPipeline(settings) as running:
        publisher = Publisher(broker.url)
        publisher.publish(stream(topic_root, 0, 50))
        publisher.close()
        wait_until(lambda: count(influx_url, influx_db, "telemetry") == 50, what="readings")
        take_session(broker.url, settings.mqtt.client_id)  # luxtel reconnects
        wait_until(lambda: running.metric("luxtel_mqtt_connects_total") == 2, what="reconnect")
    fallbacks = [entry for entry in logs if entry["event"] == "mqtt_protocol_fallback"]
    assert len(fallbacks) == 1, fallbacks
    assert "3.1.1" in fallbacks[0]["action"]


def test_explicit_mqtt_5_on_aedes_stops_with_one_sentence(
    tmp_path: Path, aedes: ServerProcess, influxdb: InfluxDBServer, influx_db: str, topic_root: str
) -> None:
    influx_url = influxdb.url
    settings = make_settings(tmp_path, aedes.url, influx_url, influx_db, topic_root)
    log, process = start(tmp_path, settings, LUXTEL_MQTT__PROTOCOL="5")
    assert exit_status(process) == 1, log.read_text()[-3000:]
    text = log.read_text()
    assert "does not speak MQTT 5" in text, text[-3000:]
    assert 'mqtt.protocol = "auto"' in text


def test_no_mqtt_version_accepted_exits_1_with_one_sentence(
    tmp_path: Path,
    rabbitmq: RabbitMQServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    """`mqtt.url` pointing at RabbitMQ's AMQP port (a common slip): neither MQTT 5 nor 3.1.1
    gets a CONNACK, only AMQP's protocol header; luxtel stops instead of retrying forever."""
    influx_url = influxdb.url
    wrong = f"mqtt://{rabbitmq.host}:{rabbitmq.amqp_port}"
    settings = make_settings(tmp_path, wrong, influx_url, influx_db, topic_root)
    log, process = start(tmp_path, settings)
    assert exit_status(process) == 1, log.read_text()[-3000:]
    text = log.read_text()
    assert "neither MQTT 5 nor MQTT 3.1.1" in text, text[-3000:]


# ---- RabbitMQ: dots and prefetch (case 8) -----------------------------------------------------


def test_rabbitmq_dots_become_levels_and_the_dead_letter_says_why(
    tmp_path: Path,
    rabbitmq: RabbitMQServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    influx_url = influxdb.url
    settings = with_mqtt(
        make_settings(tmp_path, rabbitmq.url, influx_url, influx_db, topic_root), protocol="3.1.1"
    )
    with RunningPipeline(settings):
        publisher = Publisher(rabbitmq.url)
        publisher.publish([(f"{topic_root}/z.1/lum.7/telemetry", reading(BASE_MS))])
        publisher.close()
        wait_until(lambda: len(dead_letters(tmp_path)) == 1, what="the dead letter")
    [record] = dead_letters(tmp_path)
    assert record["topic"] == f"{topic_root}/z/1/lum/7/telemetry"
    assert record["reason"] == "topic_malformed"
    assert "RabbitMQ" in record["detail"]
    assert "'.'" in record["detail"]


def test_rabbitmq_prefetch_of_10_does_not_hold_ingest_to_10_a_flush(
    tmp_path: Path,
    rabbitmq: RabbitMQServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    """RabbitMQ sends at most 10 unacknowledged messages; acknowledgements used to leave only
    when a batch was flushed (`flush_interval_s`, 5 s here), so 300 readings took 150 s. Now
    a batch is flushed as soon as nothing more arrives."""
    influx_url = influxdb.url
    settings = make_settings(
        tmp_path, rabbitmq.url, influx_url, influx_db, topic_root, flush_interval_s=5.0
    )
    settings = with_mqtt(settings, protocol="3.1.1")
    assert rabbitmq.prefetch == 10
    with RunningPipeline(settings):
        publisher = Publisher(rabbitmq.url)
        publisher.publish(stream(topic_root, 0, 300))
        publisher.close()
        wait_until(
            lambda: count(influx_url, influx_db, "telemetry") == 300,
            timeout=60,
            what="300 readings (at 10 a flush: 150 s)",
        )


# ---- two instances, one client id (case 5) ----------------------------------------------------


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_two_instances_with_one_client_id_say_so_once_and_back_off(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
    protocol: str,
) -> None:
    """Mosquitto gives the session to the newest connection and closes the other (2.0.11
    sends no DISCONNECT "session taken over", even under MQTT 5: luxtel counts connections
    lost soon after connecting). Two `luxtel run` with one client id
    used to take it from each other a few times a second, forever, in warnings; each now says
    it once, as an error naming the client id, and backs off (growing to
    `mqtt.reconnect_max_s`, 8 s here)."""
    influx_url = influxdb.url
    client_id = f"luxtel-twin-{uuid.uuid4().hex[:8]}"
    runs = []
    for name in ("a", "b"):
        settings = make_settings(
            tmp_path / name, mosquitto.url, influx_url, influx_db, topic_root, client_id=client_id
        )
        env = {"LUXTEL_MQTT__RECONNECT_MAX_S": "8", "LUXTEL_MQTT__PROTOCOL": protocol}
        runs.append(start(tmp_path, settings, name, **env))
    try:
        time.sleep(25)
    finally:
        for log, process in runs:
            stop(process, log)
    texts = [log.read_text() for log, _ in runs]
    errors = [text.count("mqtt_session_taken_over") for text in texts]
    assert sum(errors) >= 1, errors
    assert max(errors) == 1, errors
    assert all(
        client_id in line
        for text in texts
        for line in text.splitlines()
        if "mqtt_session_taken_over" in line
    )
    connects = sum(text.count("mqtt_connected") for text in texts)
    assert connects <= 25, connects  # without backing off: 50 (25 each) in 25 s
