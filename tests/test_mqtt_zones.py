"""`mqtt.zones`: an instance that takes some zones of a city subscribes to those alone, on a real
Mosquitto; two instances with disjoint zones see each message exactly once; a subscription left
in the persistent session by an earlier configuration is removed, and what it delivered is not
processed; the rules watch only the inventory's luminaires of those zones.

"Nothing of zone c arrived" is shown without waiting for an absence: one publisher sends every
message, the zone's last message is a marker, and the broker delivers one publisher's messages
to a subscriber in the order they were published — so once the markers are in, anything of c
would have been delivered before them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ingest.messages import Inbound
from ingest.metrics import IngestMetrics
from ingest.mqtt_source import MqttSource, MqttTarget
from mqtt.codec import (
    V5,
    V311,
    StreamDecoder,
    Unsuback,
    encode_subscribe,
    encode_unsuback,
    encode_unsubscribe,
)
from rules.evaluation.inventory import only_zones
from servers import InfluxDBServer, MosquittoServer
from tests.rules_fixtures import device, inventory
from tests.support import (
    Publisher,
    RunningPipeline,
    count,
    make_settings,
    reading,
    rows,
    wait_until,
)

BASE_MS = int(time.time() * 1000) - 3_600_000

# ---- pure parts -------------------------------------------------------------------------------


def test_one_subscribe_carries_every_filter_with_its_options() -> None:
    packet = encode_subscribe(7, ["r/a/+/+", "r/b/+/+"], 1, version=V5, retain_handling=1)
    assert packet.hex(" ") == (
        "82 17 00 07 00 00 07 72 2f 61 2f 2b 2f 2b 11 00 07 72 2f 62 2f 2b 2f 2b 11"
    )
    assert encode_subscribe(7, ["r/a/+/+"], 1, version=V311) == encode_subscribe(
        7, "r/a/+/+", 1, version=V311
    )
    with pytest.raises(ValueError, match="at least one"):
        encode_subscribe(7, [], 1)


def test_unsubscribe_and_its_answer_in_both_versions() -> None:
    assert encode_unsubscribe(2, "r/#", version=V5).hex(" ") == "a2 08 00 02 00 00 03 72 2f 23"
    assert encode_unsubscribe(2, ["r/#"], version=V311).hex(" ") == "a2 07 00 02 00 03 72 2f 23"
    v5 = encode_unsuback(2, (0x00, 0x11), version=V5)
    assert StreamDecoder(V5).feed(v5) == [Unsuback(2, (0x00, 0x11))]
    v311 = encode_unsuback(2, (), version=V311)
    assert v311.hex(" ") == "b0 02 00 02"
    assert StreamDecoder(V311).feed(v311) == [Unsuback(2, ())]


def test_a_target_subscribes_to_its_zones_or_to_the_whole_root() -> None:
    target = MqttTarget("h", 1883, "city/lighting", zones=("north", "centre", "north"))
    assert target.topic_filters == ["city/lighting/north/+/+", "city/lighting/centre/+/+"]
    assert MqttTarget("h", 1883, "lighting").topic_filters == ["lighting/#"]
    with pytest.raises(ValueError, match="zone"):
        MqttTarget("h", 1883, "lighting", zones=("#",))


def test_only_zones_keeps_the_luminaires_of_those_zones_and_recounts() -> None:
    whole = inventory(
        device("n-1", "C1", "north"),
        device("n-2", "C1", "north"),
        device("s-1", "C2", "south"),
        device("e-1", "C3", "east"),
    )
    mine = only_zones(whole, ["north", "east"])
    assert sorted(d.device_id for d in mine) == ["e-1", "n-1", "n-2"]
    assert dict(mine.zone_sizes) == {"north": 2, "east": 1}
    assert dict(mine.circuit_sizes) == {"C1": 2, "C3": 1}
    assert mine.get("s-1") is None
    assert only_zones(whole, ()) is whole
    assert len(only_zones(whole, ["west"])) == 0


# ---- on a real broker -------------------------------------------------------------------------


class Receiver:
    """An `MqttSource` whose outbox is drained into `topics`, every message acknowledged."""

    def __init__(self, target: MqttTarget) -> None:
        self.outbox: asyncio.Queue[list[Inbound] | None] = asyncio.Queue()
        self.source = MqttSource(target, self.outbox, IngestMetrics())
        self.topics: list[str] = []
        self._arrived = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Receiver:
        self._tasks = [asyncio.create_task(self.source.run()), asyncio.create_task(self._drain())]
        async with asyncio.timeout(30):
            await self.source.wait_connected()
        return self

    async def _drain(self) -> None:
        while (chunk := await self.outbox.get()) is not None:
            self.topics += [inbound.topic for inbound in chunk]
            self.source.ack([i.delivery for i in chunk if i.delivery is not None])
            self._arrived.set()

    async def until(self, *topics: str) -> None:
        """Until every one of `topics` has been received."""
        async with asyncio.timeout(60):
            while not set(topics) <= set(self.topics):
                self._arrived.clear()
                await self._arrived.wait()

    async def __aexit__(self, *_: object) -> None:
        await self.source.stop()
        await asyncio.gather(*self._tasks)
        await self.source.close()


def _target(
    broker: MosquittoServer, root: str, client_id: str, *zones: str, protocol: str = "5"
) -> MqttTarget:
    return MqttTarget(
        broker.host, broker.port, root, client_id=client_id, zones=zones, protocol=protocol
    )


def _city(root: str, zones: Iterable[str], tag: str = "", devices: int = 5) -> list[str]:
    """Every zone's luminaires (their ids marked with `tag`), interleaved, and a gateway's
    batch, then each zone's marker: the last of its messages."""
    zones = list(zones)
    topics = [
        f"{root}/{zone}/lum-{zone}-{tag}{n}/{kind}"
        for n in range(devices)
        for zone in zones
        for kind in ("telemetry", "status")
    ]
    return (
        topics + [f"{root}/{zone}/gw-{zone}-{tag}/batch" for zone in zones] + _end(root, zones, tag)
    )


def _end(root: str, zones: Iterable[str], tag: str = "") -> list[str]:
    return [f"{root}/{zone}/end-{tag}/status" for zone in zones]


def _zone(topic: str, root: str) -> str:
    return topic.removeprefix(root + "/").split("/")[0]


async def _publish(broker: MosquittoServer, topics: list[str]) -> None:
    def publish() -> None:
        publisher = Publisher(broker.url)
        publisher.publish((topic, b"{}") for topic in topics)
        publisher.close()

    await asyncio.to_thread(publish)


def _events(logs: list[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


async def _logged(logs: list[MutableMapping[str, Any]], event: str, **fields: str) -> None:
    """Until `event` with `fields` has been logged."""

    def seen() -> bool:
        return any(all(e.get(k) == v for k, v in fields.items()) for e in _events(logs, event))

    async with asyncio.timeout(60):
        while not seen():  # noqa: ASYNC110 (a log capture has no event to wait on)
            await asyncio.sleep(0.05)


def test_a_source_with_zones_receives_those_zones_and_nothing_else(
    mosquitto: MosquittoServer, topic_root: str
) -> None:
    city = _city(topic_root, ["a", "b", "c"])
    stray = [f"{topic_root}/a/too/many/levels", f"{topic_root}/a/flat"]

    async def main() -> list[str]:
        target = _target(mosquitto, topic_root, f"zones-{uuid.uuid4().hex[:8]}", "a", "b")
        async with Receiver(target) as receiver:
            await _publish(mosquitto, stray + city)
            await receiver.until(*_end(topic_root, ["a", "b"]))
            return receiver.topics

    got = asyncio.run(main())
    assert Counter(got) == Counter(t for t in city if _zone(t, topic_root) in ("a", "b"))


def test_two_sources_with_disjoint_zones_receive_each_message_exactly_once(
    mosquitto: MosquittoServer, topic_root: str
) -> None:
    city = _city(topic_root, ["a", "b", "c"], devices=20)

    async def main() -> tuple[list[str], list[str]]:
        first = _target(mosquitto, topic_root, f"shard1-{uuid.uuid4().hex[:8]}", "a", "b")
        second = _target(mosquitto, topic_root, f"shard2-{uuid.uuid4().hex[:8]}", "c")
        async with Receiver(first) as one, Receiver(second) as two:
            await _publish(mosquitto, city)
            await one.until(*_end(topic_root, ["a", "b"]))
            await two.until(*_end(topic_root, ["c"]))
            return one.topics, two.topics

    one, two = asyncio.run(main())
    assert Counter(one) + Counter(two) == Counter(city)
    assert {_zone(t, topic_root) for t in one} == {"a", "b"}
    assert {_zone(t, topic_root) for t in two} == {"c"}


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_subscriptions_of_an_earlier_configuration_leave_the_session(
    mosquitto: MosquittoServer, topic_root: str, protocol: str
) -> None:
    """One client id through three configurations: every zone ({root}/#), then a and b, then
    a alone, with messages published while it is down between them. What the subscriptions
    of a wider configuration queued or would deliver never reaches the outbox of a narrower
    one, and they are unsubscribed: the last restart finds nothing of them queued. Each round
    ends when the broker has closed the connection (`MqttConnection.disconnect`), so it has read
    the round's acknowledgements before the next round's messages come: closing at once let
    Mosquitto under load drop the connection with the last ones unread, and redeliver them."""
    client_id = f"moving-{uuid.uuid4().hex[:8]}"
    root = topic_root

    def target(*zones: str) -> MqttTarget:
        return _target(mosquitto, root, client_id, *zones, protocol=protocol)

    async def main() -> dict[str, tuple[list[str], list[MutableMapping[str, Any]]]]:
        rounds: dict[str, tuple[list[str], list[MutableMapping[str, Any]]]] = {}
        with capture_logs() as logs:
            async with Receiver(target()) as receiver:
                pass  # the session holds {root}/#
        rounds["all"] = receiver.topics, logs
        await _publish(mosquitto, _city(root, ["a", "c"], "r1"))
        with capture_logs() as logs:
            async with Receiver(target("a", "b")) as receiver:
                await receiver.until(*_end(root, ["a"], "r1"))  # queued under {root}/#
                await _publish(mosquitto, _city(root, ["c", "b", "a"], "r2"))
                await receiver.until(*_end(root, ["b", "a"], "r2"))
        rounds["a, b"] = receiver.topics, logs
        await _publish(mosquitto, _city(root, ["b", "c", "a"], "r3"))
        with capture_logs() as logs:
            async with Receiver(target("a")) as receiver:
                await receiver.until(*_end(root, ["a"], "r3"))  # b's queued under b/+/+
                await _logged(logs, "mqtt_unsubscribed", topics=f"{root}/b/+/+")
        rounds["a"] = receiver.topics, logs
        await _publish(mosquitto, _city(root, ["b", "c", "a"], "r4"))
        with capture_logs() as logs:
            async with Receiver(target("a")) as receiver:
                await receiver.until(*_end(root, ["a"], "r4"))
        rounds["a again"] = receiver.topics, logs
        return rounds

    rounds = asyncio.run(main())
    assert rounds["all"][0] == []
    topics, logs = rounds["a, b"]
    assert Counter(topics) == Counter(
        [t for t in _city(root, ["a", "c"], "r1") if _zone(t, root) == "a"]
        + [t for t in _city(root, ["c", "b", "a"], "r2") if _zone(t, root) in ("a", "b")]
    )
    assert {e["zone"] for e in _events(logs, "mqtt_zone_not_taken")} == {"c"}
    if protocol == "5":  # 3.1.1's UNSUBACK does not say whether there was a subscription
        assert [e["topics"] for e in _events(logs, "mqtt_unsubscribed")] == [f"{root}/#"]
    topics, logs = rounds["a"]
    assert Counter(topics) == Counter(
        t for t in _city(root, ["b", "c", "a"], "r3") if _zone(t, root) == "a"
    )
    assert {e["zone"] for e in _events(logs, "mqtt_zone_not_taken")} == {"b"}
    topics, logs = rounds["a again"]
    assert Counter(topics) == Counter(
        t for t in _city(root, ["b", "c", "a"], "r4") if _zone(t, root) == "a"
    )
    assert _events(logs, "mqtt_zone_not_taken") == []


def test_luxtel_run_with_zones_writes_only_its_zones(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    """The setting reaches the source through the pipeline: zone c's readings, published
    before zone a's last one, never arrive."""
    settings = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
    settings = settings.model_copy(
        update={"mqtt": settings.mqtt.model_copy(update={"zones": ("a",)})}
    )
    messages = [
        (f"{topic_root}/{zone}/lum-{zone}/telemetry", reading(BASE_MS + i, seq=i))
        for i in range(20)
        for zone in ("c", "a")
    ]
    with RunningPipeline(settings):
        publisher = Publisher(mosquitto.url)
        publisher.publish(messages)
        publisher.close()
        wait_until(
            lambda: count(influxdb.url, influx_db, "telemetry") >= 20, what="zone a's readings"
        )
    got = rows(influxdb.url, influx_db, "SELECT zone, power_w FROM telemetry")
    assert Counter(row["zone"] for row in got) == {"a": 20}
