"""The QoS 2 receiver (MQTT 3.1.1 and 5 §4.3.3) step by step, against a scripted broker peer;
and the session-takeover streak of `MqttSource`.

No real broker resends a QoS 2 PUBLISH on the same connection, nor a PUBREL for an id it never
sent, on demand: the peer here is a loopback socket that sends exactly those packets, so every
step of the exchange is seen on the wire. (A real broker delivering at QoS 2 — aedes — is in
tests/test_brokers_interop.py.)
"""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from ingest.metrics import IngestMetrics
from ingest.mqtt_source import STABLE_S, MqttSource, MqttTarget
from mqtt.codec import (
    SESSION_TAKEN_OVER,
    V5,
    V311,
    Publish,
    encode_connack,
    encode_publish,
    encode_pubrel,
)
from mqtt.connection import ConnectOptions, MqttConnection


class Peer:
    """The broker's side of one connection: what it received, and a way to send."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.writer: asyncio.StreamWriter | None = None
        self.ready = asyncio.Event()
        self.arrived = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.ready.set()
        while chunk := await reader.read(4096):
            self.received += chunk
            self.arrived.set()

    async def until_received(self, data: bytes) -> None:
        async with asyncio.timeout(5):
            while not self.received.endswith(data):
                self.arrived.clear()
                await self.arrived.wait()

    def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)


@pytest.mark.parametrize("version", [V5, V311])
def test_a_qos_2_delivery_step_by_step(version: int) -> None:
    async def main() -> list[Publish]:
        peer = Peer()
        server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        handed: list[Publish] = []
        connection = MqttConnection(
            ConnectOptions("127.0.0.1", port, "qos2", version=version, keepalive_s=0),
            handed.extend,
            lambda _: None,
        )
        opening = asyncio.create_task(connection.open())
        await peer.ready.wait()
        peer.send(encode_connack(False, 0, version=version))
        await opening
        first = Publish(b"r/z/d/telemetry", b"one", 2, 5)
        peer.send(encode_publish(first, version=version))
        peer.send(encode_publish(first._replace(dup=True), version=version))  # no PUBREC yet
        await asyncio.sleep(0.2)
        assert handed == [first]  # once, and nothing acknowledged before it is safe
        assert b"\x50" not in peer.received[-4:]
        connection.puback(5)  # safe now: PUBREC, not PUBACK
        await peer.until_received(b"\x50\x02\x00\x05")
        peer.send(encode_publish(first._replace(dup=True), version=version))  # PUBREC lost?
        await peer.until_received(b"\x50\x02\x00\x05\x50\x02\x00\x05")  # sent again
        peer.send(encode_pubrel(5))
        await peer.until_received(b"\x70\x02\x00\x05")  # PUBCOMP: id 5 is free again
        second = Publish(b"r/z/d/telemetry", b"two", 2, 5)
        peer.send(encode_publish(second, version=version))  # a new message with id 5
        peer.send(encode_pubrel(9))  # released on an earlier connection: PUBCOMP all the same
        await peer.until_received(b"\x70\x02\x00\x09")
        connection.abort()
        server.close()
        return handed

    handed = asyncio.run(main())
    assert [p.payload for p in handed] == [b"one", b"two"]


def test_session_taken_over_twice_is_said_once_naming_the_client_id() -> None:
    """MQTT 5 brokers that say "session taken over" (DISCONNECT 0x8E; EMQX, HiveMQ — not
    Mosquitto 2.0.11, whose real case is in test_brokers_interop): said at the second, once,
    whatever the connections' lifetimes; the streak sets the backoff."""

    async def main() -> list[int]:
        source = MqttSource(
            MqttTarget("127.0.0.1", 1, "r", client_id="twin-7"), asyncio.Queue(), IngestMetrics()
        )
        streaks = []
        for lived in (STABLE_S * 10, 1.0, STABLE_S * 10, 2.0):
            source._count_loss(lived, SESSION_TAKEN_OVER)
            streaks.append(source._streak)
        source._count_loss(STABLE_S * 10, None)  # a long-lived connection lost otherwise
        streaks.append(source._streak)
        return streaks

    with capture_logs() as logs:
        streaks = asyncio.run(main())
    assert streaks == [1, 2, 3, 4, 1]
    said = [entry for entry in logs if entry["event"] == "mqtt_session_taken_over"]
    assert len(said) == 1
    assert said[0]["log_level"] == "error"
    assert "'twin-7'" in said[0]["error"]
    assert "2 times in a row" in said[0]["error"]
