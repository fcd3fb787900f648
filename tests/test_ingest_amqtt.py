"""luxtel against amqtt (PyPI), a broker with a known bug: it redelivers a persistent session's
queued messages with the RETAIN flag set (issue 13, case 7). Readings that carry `ts` must all be
written anyway; only those without `ts` are "not written again" (counted), as for a real retained
message. amqtt runs as its own process on a free loopback port, like every server in the tests."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from mqtt.codec import V311, Connack, StreamDecoder, encode_connect, encode_disconnect
from servers import InfluxDBServer, ServerProcess, free_port
from tests.support import RunningPipeline, count, make_settings, rows, wait_until


class AmqttServer(ServerProcess):
    """`amqtt -c DATA_DIR/amqtt.yaml` (MQTT 3.1.1 only), listening on 127.0.0.1:port.

    Anonymous sessions keep nothing in amqtt, so clients must send a username (any: no
    password is checked); sessions live in the broker's memory only."""

    name: ClassVar[str] = "amqtt"
    binary: ClassVar[Path] = Path(sys.executable).parent / "amqtt"
    package: ClassVar[str] = "amqtt (PyPI, the dev extras)"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, "amqtt.log")
        self.port = free_port("127.0.0.1")
        self.conf_path = self.data_dir / "amqtt.yaml"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        self.conf_path.write_text(
            "listeners:\n"
            "  default:\n"
            "    type: tcp\n"
            f"    bind: 127.0.0.1:{self.port}\n"
            "plugins:\n"
            "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: false\n"
        )

    def _command(self) -> list[str]:
        return [str(self.binary), "-c", str(self.conf_path)]

    def _is_ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
            sock.sendall(encode_connect("ready-probe", version=V311, clean_start=True))
            decoder = StreamDecoder(V311)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                data = sock.recv(64)
                if not data:
                    return False
                if any(isinstance(p, Connack) for p in decoder.feed(data)):
                    sock.sendall(encode_disconnect(version=V311))
                    return True
            return False

    def _choose_new_ports(self) -> bool:
        self.port = free_port("127.0.0.1")
        return True


@pytest.fixture
def amqtt(tmp_path: Path) -> Iterator[AmqttServer]:
    with AmqttServer(tmp_path / "amqtt") as server:
        yield server


def test_amqtt_redelivering_queued_readings_as_retained_loses_none_that_carry_ts(
    tmp_path: Path,
    amqtt: AmqttServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    settings = make_settings(
        tmp_path, amqtt.url, influxdb.url, influx_db, topic_root, client_id="luxtel-amqtt"
    )
    mqtt = settings.mqtt.model_copy(update={"protocol": "3.1.1", "username": "luxtel"})
    settings = settings.model_copy(update={"mqtt": mqtt})
    with RunningPipeline(settings):
        pass  # subscribes: from now on amqtt queues for the session while luxtel is away
    base_ms = int(time.time() * 1000) - 60_000
    readings = [
        (f"{topic_root}/north/lum-{i % 5}/telemetry", {"ts": (base_ms + i) / 1000})
        for i in range(200)
    ]
    readings += [(f"{topic_root}/north/lum-9/telemetry", {}) for _ in range(3)]
    device = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="device",
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    device.username_pw_set("device")
    host, port = amqtt.url.removeprefix("mqtt://").split(":")
    device.connect(host, int(port))
    device.loop_start()
    try:
        for topic, extra in readings:
            body = {"lamp_on": True, "power_w": 40.0, "energy_wh": 1.0, **extra}
            device.publish(topic, json.dumps(body), qos=1).wait_for_publish(10)
    finally:
        device.disconnect()
        device.loop_stop()
    with RunningPipeline(settings) as running:
        wait_until(
            lambda: (
                running.metric("luxtel_points_written_total") == 200
                and running.metric("luxtel_retained_skipped_total") == 3
            ),
            what="the queued readings, flagged retained by amqtt",
            timeout=30,
        )
    assert count(influxdb.url, influx_db, "telemetry") == 200
    got = rows(influxdb.url, influx_db, "SELECT power_w FROM telemetry")
    assert [r["time"] for r in got] == [base_ms + i for i in range(200)]
