"""A clean disconnect ends when the broker closes the connection, so the acknowledgements sent
before the DISCONNECT have been read: against a scripted broker peer that, like Mosquitto under
load, writes a new message to the connection before it reads what the client sent. (The real
broker's side of it is `tests/test_mqtt_zones.py`'s earlier-configuration test, which redelivered
acknowledged messages when the client closed at once.)"""

from __future__ import annotations

import asyncio

import pytest

from mqtt.codec import (
    V5,
    V311,
    Publish,
    encode_connack,
    encode_disconnect,
    encode_puback,
    encode_publish,
)
from mqtt.connection import ConnectOptions, MqttConnection
from tests.test_mqtt_qos2 import Peer


@pytest.mark.parametrize("version", [V5, V311])
def test_disconnect_waits_for_the_broker_to_read_it_and_close(version: int) -> None:
    async def main() -> tuple[list[Publish], bytes]:
        peer = Peer()
        server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        handed: list[Publish] = []
        arrived = asyncio.Event()

        def hand(packets: list[Publish]) -> None:
            handed.extend(packets)
            arrived.set()

        connection = MqttConnection(
            ConnectOptions("127.0.0.1", port, "bye", version=version, keepalive_s=0),
            hand,
            lambda _: None,
        )
        opening = asyncio.create_task(connection.open())
        await peer.ready.wait()
        peer.send(encode_connack(True, 0, version=version))
        await opening
        first = Publish(b"r/z/d/telemetry", b"one", 1, 5)
        peer.send(encode_publish(first, version=version))
        async with asyncio.timeout(5):
            await arrived.wait()
        connection.puback(5)
        bye = asyncio.create_task(connection.disconnect(timeout_s=60))
        goodbye = encode_puback(5, version=version) + encode_disconnect(version=version)
        await peer.until_received(goodbye)
        # A message comes for the session before the broker gets to the DISCONNECT.
        peer.send(encode_publish(Publish(b"r/z/d/telemetry", b"two", 1, 6), version=version))
        await asyncio.sleep(0.2)
        assert not bye.done(), "the broker has not closed the connection yet"
        assert peer.writer is not None
        peer.writer.close()
        async with asyncio.timeout(10):  # well within disconnect's own 60 s
            await bye
        server.close()
        return handed, bytes(peer.received)

    handed, received = asyncio.run(main())
    assert handed == [Publish(b"r/z/d/telemetry", b"one", 1, 5)], "nothing after DISCONNECT"
    goodbye = encode_puback(5, version=version) + encode_disconnect(version=version)
    assert received.endswith(goodbye), "the message after it is not acknowledged: it comes again"
