"""The shipped Mosquitto ACL (`deploy/mosquitto/acl.conf`) in a real Mosquitto with a password
file made by `mosquitto_passwd`: a luminaire publishes only under its own id, luxtel reads them
all and writes only its own output. A refused publish gets PUBACK reason code 135 with MQTT 5 and
silently vanishes with 3.1.1; either way the subscriber never receives it."""

from __future__ import annotations

import queue
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from servers import MosquittoServer

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
USERS = {"luxtel": "pw-luxtel", "lum-000001": "pw-1", "lum-000002": "pw-2"}
NOT_AUTHORIZED = 135
NO_SUBSCRIBERS = 16
"""MQTT 5's "no matching subscribers": a success (reason codes below 128 are)."""


@pytest.fixture
def broker(mosquitto_factory: Callable[..., MosquittoServer], tmp_path: Path) -> MosquittoServer:
    passwords = tmp_path / "passwords"
    passwords.touch()
    for user, password in USERS.items():
        subprocess.run(
            ["/usr/bin/mosquitto_passwd", "-b", str(passwords), user, password], check=True
        )
    return mosquitto_factory(
        extra_conf=(
            "allow_anonymous false\n"
            f"password_file {passwords}\n"
            f"acl_file {DEPLOY / 'mosquitto' / 'acl.conf'}\n"
        )
    )


class Client:
    """A connected paho client that records PUBACK reason codes and received messages."""

    def __init__(self, broker: MosquittoServer, user: str, protocol: MQTTProtocolVersion) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.acks: dict[int, int] = {}
        self._acked = threading.Condition()
        self._connected = threading.Event()
        self.connect_rc: Any = None
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{user}-{uuid.uuid4().hex[:6]}",
            protocol=protocol,
        )
        self.client.username_pw_set(user, USERS[user])
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_message = lambda _c, _u, m: self.received.put((m.topic, bytes(m.payload)))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._connected.wait(10), "no CONNACK"
        assert self.connect_rc is not None
        assert not self.connect_rc.is_failure, self.connect_rc

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        self.connect_rc = rc
        self._connected.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any = None) -> None:
        with self._acked:
            self.acks[mid] = int(rc.value)
            self._acked.notify_all()

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(10)

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code (0 for 3.1.1, which has none)."""
        info = self.client.publish(topic, payload, qos=1)
        with self._acked:
            assert self._acked.wait_for(lambda: info.mid in self.acks, 10), "no PUBACK"
            return self.acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize("protocol", [MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311])
def test_a_luminaire_cannot_publish_as_another(
    broker: MosquittoServer, protocol: MQTTProtocolVersion
) -> None:
    luxtel = Client(broker, "luxtel", MQTTProtocolVersion.MQTTv5)
    device = Client(broker, "lum-000001", protocol)
    try:
        luxtel.subscribe("lighting/#")
        forged = device.publish("lighting/north/lum-000002/telemetry", b"forged")
        own = device.publish("lighting/north/lum-000001/telemetry", b"own")
        assert own == 0
        if protocol == MQTTProtocolVersion.MQTTv5:
            assert forged == NOT_AUTHORIZED
        # The device's messages arrive in order: once its own has, the forged one never will.
        assert luxtel.received.get(timeout=10) == ("lighting/north/lum-000001/telemetry", b"own")
        assert luxtel.received.empty()
    finally:
        luxtel.close()
        device.close()


def test_luxtel_writes_only_its_own_output_and_devices_not_at_all(
    broker: MosquittoServer,
) -> None:
    luxtel = Client(broker, "luxtel", MQTTProtocolVersion.MQTTv5)
    device = Client(broker, "lum-000001", MQTTProtocolVersion.MQTTv5)
    try:
        assert luxtel.publish("luxtel/deadletter", b"{}") == NO_SUBSCRIBERS
        assert luxtel.publish("lighting/north/lum-000001/telemetry", b"{}") == NOT_AUTHORIZED
        assert device.publish("luxtel/alerts/north/lum-000001", b"{}") == NOT_AUTHORIZED
        assert device.publish("lighting/south/lum-000001/status", b"{}") == NO_SUBSCRIBERS
    finally:
        luxtel.close()
        device.close()


def test_a_luminaire_cannot_read_the_city(broker: MosquittoServer) -> None:
    spy = Client(broker, "lum-000002", MQTTProtocolVersion.MQTTv5)
    device = Client(broker, "lum-000001", MQTTProtocolVersion.MQTTv5)
    luxtel = Client(broker, "luxtel", MQTTProtocolVersion.MQTTv5)
    try:
        spy.subscribe("lighting/#")
        luxtel.subscribe("lighting/#")
        assert device.publish("lighting/north/lum-000001/telemetry", b"x") == 0
        assert luxtel.received.get(timeout=10)[1] == b"x"
        assert spy.received.empty()
    finally:
        for client in (spy, device, luxtel):
            client.close()
