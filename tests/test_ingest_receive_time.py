"""Readings without `ts`, end to end on the session's real Mosquitto and InfluxDB: each is
stored at its receive time made unique per device, so a burst from one device that luxtel reads
in one go is as many points as readings (issue 13, case 1)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from mqtt.codec import (
    V311,
    Connack,
    Puback,
    Publish,
    StreamDecoder,
    encode_connect,
    encode_disconnect,
    encode_publish,
)
from servers import InfluxDBServer, MosquittoServer
from tests.support import Publisher, RunningPipeline, count, make_settings, rows, wait_until

PLAIN = {"lamp_on": True, "power_w": 40.0, "energy_wh": 1000.0}


def publish_in_one_write(broker_url: str, messages: list[tuple[str, bytes]]) -> None:
    """Every message as a QoS 1 PUBLISH, all in ONE write to the broker's socket (the way
    `mosquitto_pub -l` or a gateway flushing its buffer sends them), then wait for every
    PUBACK: the broker forwards them back to back, and luxtel reads them a few reads at most,
    within a millisecond or two."""
    host, port = broker_url.removeprefix("mqtt://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        decoder = StreamDecoder(V311)
        sock.sendall(encode_connect(f"burst-{time.monotonic_ns()}", version=V311, clean_start=True))
        packets: list[object] = []
        while not any(isinstance(p, Connack) for p in packets):
            packets.extend(decoder.feed(sock.recv(65536)))
        burst = b"".join(
            encode_publish(Publish(topic.encode(), payload, 1, index + 1), version=V311)
            for index, (topic, payload) in enumerate(messages)
        )
        sock.sendall(burst)
        acked = 0
        while acked < len(messages):
            acked += sum(isinstance(p, Puback) for p in decoder.feed(sock.recv(65536)))
        sock.sendall(encode_disconnect(version=V311))


def test_a_burst_of_readings_without_ts_from_one_device_is_as_many_points(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    settings = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
    topic = f"{topic_root}/north/lum-1/telemetry"
    burst = [(topic, json.dumps({**PLAIN, "seq": i}).encode()) for i in range(100)]
    with RunningPipeline(settings) as running:
        publish_in_one_write(mosquitto.url, burst)
        wait_until(lambda: running.metric("luxtel_points_written_total") == 100, what="100 writes")
    got = rows(influxdb.url, influx_db, "SELECT seq FROM telemetry ORDER BY time")
    assert count(influxdb.url, influx_db, "telemetry") == 100
    assert [r["seq"] for r in got] == list(range(100)), "stored in the order received"
    times = [r["time"] for r in got]
    assert times == sorted(set(times))


def test_a_batch_with_several_readings_of_one_device_without_ts_is_as_many_points(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    """A gateway relaying what it buffered: five readings of lum-1, three of lum-2 (no `ts`),
    and one plain reading per device on their own topics in the same write."""
    settings = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
    elements = [{**PLAIN, "device_id": "lum-1", "seq": i} for i in range(5)]
    elements += [{**PLAIN, "device_id": "lum-2", "seq": i} for i in range(3)]
    messages = [
        (f"{topic_root}/north/gw-1/batch", json.dumps(elements).encode()),
        (f"{topic_root}/north/lum-1/telemetry", json.dumps({**PLAIN, "seq": 5}).encode()),
        (f"{topic_root}/north/gw-1/batch", json.dumps(elements[5:]).encode()),
    ]
    with RunningPipeline(settings) as running:
        publish_in_one_write(mosquitto.url, messages)
        wait_until(lambda: running.metric("luxtel_points_written_total") == 12, what="12 writes")
    got = rows(influxdb.url, influx_db, "SELECT seq, device_id FROM telemetry")
    assert sorted(r["seq"] for r in got if r["device_id"] == "lum-1") == list(range(6))
    assert sorted(r["seq"] for r in got if r["device_id"] == "lum-2") == [0, 0, 1, 1, 2, 2]
    assert count(influxdb.url, influx_db, "telemetry") == 12


def test_readings_without_ts_queued_while_luxtel_was_down_are_as_many_points(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    """The broker holds 200 readings of two devices for luxtel's session and hands them over
    at once when it is back: read in a few large reads, one receive time each."""
    settings = make_settings(
        tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root, client_id=f"q-{topic_root}"
    )
    with RunningPipeline(settings):
        pass  # the session now holds the subscription
    queued = [
        (f"{topic_root}/north/lum-{i % 2}/telemetry", json.dumps({**PLAIN, "seq": i}).encode())
        for i in range(200)
    ]
    publisher = Publisher(mosquitto.url)
    publisher.publish(queued)
    publisher.close()
    with RunningPipeline(settings) as running:
        wait_until(lambda: running.metric("luxtel_points_written_total") == 200, what="200 writes")
    assert count(influxdb.url, influx_db, "telemetry") == 200
