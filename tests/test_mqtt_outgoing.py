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
