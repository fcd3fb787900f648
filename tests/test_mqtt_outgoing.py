"""luxtel's own QoS 1 publications never take the packet ids its SUBSCRIBE and UNSUBSCRIBE
use, also after the ids wrap around (MQTT forbids one id for two packets in flight)."""

from __future__ import annotations

from typing import Any, cast

from mqtt.codec import Publish
from mqtt.connection import FIRST_PUBLISH_ID, MqttConnection, OutgoingQueue


class Recorder:
    """Stands in for the connection's send side: only what OutgoingQueue calls."""

    maximum_qos = 1

    def __init__(self) -> None:
        self.sent: list[Publish] = []

    def send_publish(self, packet: Publish) -> None:
        self.sent.append(packet)


def test_publication_ids_skip_the_subscribe_ids_across_a_wrap() -> None:
    queue = OutgoingQueue(limit=10)
    recorder = Recorder()
    queue.attach(cast(MqttConnection, cast(Any, recorder)), receive_maximum=4)
    ids: list[int] = []
    for _ in range(0xFFFF + 10):
        queue.add("luxtel/alerts/z/d", b"{}", 1)
        packet = recorder.sent[-1]
        ids.append(packet.packet_id)
        queue.acknowledged(packet.packet_id, 0)
    assert ids[0] == FIRST_PUBLISH_ID
    assert min(ids) == FIRST_PUBLISH_ID
    assert max(ids) == 0xFFFF
    assert ids.count(FIRST_PUBLISH_ID) == 2  # wrapped once, straight back past 1 and 2


def test_the_queue_is_bounded_in_bytes_and_drops_the_newest() -> None:
    seen: list[int] = []
    queue = OutgoingQueue(limit=1000, max_bytes=10_000, on_bytes=seen.append)
    topic = "luxtel/deadletter"  # 17 bytes
    payload = b"x" * 983  # 1,000 bytes a publication with its topic
    assert all(queue.add(topic, payload, 1) for _ in range(10))
    assert queue.bytes == 10_000
    assert not queue.add(topic, payload, 1)
    assert not queue.add(topic, b"", 1)  # even a small one, past the bound
    assert queue.dropped == 2
    assert len(queue) == 10
    recorder = Recorder()
    queue.attach(cast(MqttConnection, cast(Any, recorder)), receive_maximum=4)
    assert len(recorder.sent) == 4  # in flight still counts until acknowledged
    assert queue.bytes == 10_000
    queue.acknowledged(recorder.sent[0].packet_id, 0)
    assert queue.bytes == 9_000
    assert seen[-1] == 9_000
    assert queue.add(topic, payload, 1)


def test_one_publication_larger_than_the_bound_still_goes_when_the_queue_is_empty() -> None:
    queue = OutgoingQueue(limit=10, max_bytes=100)
    assert queue.add("luxtel/alerts/z/d", b"x" * 500, 1)
    assert not queue.add("luxtel/alerts/z/d", b"{}", 1)
