"""After a small read the connection rests (stops reading for `REST_S`) and then reads again;
a rest never undoes the backpressure's pause, nor the end of the backpressure a rest. On a real
Mosquitto: what luxtel's own connection receives, published by another."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mqtt.codec import V5, Publish
from mqtt.connection import REST_S, ConnectOptions, MqttConnection
from servers import MosquittoServer


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for `condition` (no claim about how soon: the machine may be busy)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(REST_S / 4)


async def scenario(broker: MosquittoServer, topic_root: str) -> None:
    received: list[Publish] = []
    host, port = broker.host, broker.port
    subscriber = MqttConnection(
        ConnectOptions(host, port, f"{topic_root}-sub", version=V5),
        received.extend,
        lambda _c: None,
    )
    publisher = MqttConnection(
        ConnectOptions(host, port, f"{topic_root}-pub", version=V5),
        lambda _p: None,
        lambda _c: None,
    )
    await subscriber.open()
    await subscriber.subscribe(f"{topic_root}/#", 0)
    await publisher.open()
    transport = subscriber._transport
    assert transport is not None
    await until(transport.is_reading)

    publisher.send_publish(Publish(f"{topic_root}/a".encode(), b"one"))
    await until(lambda: len(received) == 1)
    # The small read made it rest; it reads again by itself.
    await until(transport.is_reading)

    # Backpressure during a rest: the rest's end must not start reading again.
    publisher.send_publish(Publish(f"{topic_root}/a".encode(), b"two"))
    await until(lambda: len(received) == 2)
    subscriber.pause_reading()
    await asyncio.sleep(REST_S * 5)
    assert not transport.is_reading()
    publisher.send_publish(Publish(f"{topic_root}/a".encode(), b"three"))
    await asyncio.sleep(REST_S * 5)
    assert len(received) == 2, "read while paused by backpressure"
    subscriber.resume_reading()
    await until(lambda: len(received) == 3)
    await until(transport.is_reading)
    assert [p.payload for p in received] == [b"one", b"two", b"three"]
    await publisher.disconnect(5)
    await subscriber.disconnect(5)


def test_a_small_read_rests_and_backpressure_wins(
    mosquitto: MosquittoServer, topic_root: str
) -> None:
    asyncio.run(scenario(mosquitto, topic_root))
