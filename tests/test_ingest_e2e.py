"""End to end through the pipeline, on the real Mosquitto and InfluxDB of the session."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from servers import InfluxDBServer, MosquittoServer, query
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


def test_thousands_of_readings_land_exactly_once_with_tags_types_and_times(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    settings = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
    zones, devices, per_device = 3, 40, 25
    messages = []
    for zone in range(zones):
        for device in range(devices):
            for i in range(per_device):
                ts = BASE_MS + i * 60_000 + device
                body = reading(ts, power=10.0 + i, energy=1000.0 + i, seq=i, dim_pct=50 + device)
                messages.append((f"{topic_root}/z{zone}/lum-{zone}-{device}/telemetry", body))
    gateway_batch = [
        json.loads(reading(BASE_MS + i, seq=i).decode()) | {"device_id": f"gw-lum-{i}"}
        for i in range(200)
    ]
    messages.append((f"{topic_root}/z0/gw-1/batch", json.dumps(gateway_batch).encode()))
    expected = zones * devices * per_device + len(gateway_batch)
    with RunningPipeline(settings) as running:
        publisher = Publisher(mosquitto.url)
        publisher.publish(messages)
        publisher.close()
        wait_until(
            lambda: count(influxdb.url, influx_db, "telemetry") >= expected,
            what="all readings in InfluxDB",
        )
        time.sleep(0.5)
        assert running.metric("luxtel_points_written_total") == expected
    assert count(influxdb.url, influx_db, "telemetry") == expected
    got = rows(
        influxdb.url, influx_db, "SELECT * FROM telemetry WHERE device_id = 'lum-2-7' ORDER BY time"
    )
    assert [r["time"] for r in got] == [BASE_MS + i * 60_000 + 7 for i in range(per_device)]
    assert {r["zone"] for r in got} == {"z2"}
    assert [r["seq"] for r in got] == list(range(per_device))
    assert got[3]["power_w"] == 13.0
    assert got[3]["dim_pct"] == 57
    assert got[3]["lamp_on"] is True
    fields = rows(influxdb.url, influx_db, "SHOW FIELD KEYS FROM telemetry")
    assert {f["fieldKey"]: f["fieldType"] for f in fields} == {
        "dim_pct": "integer",
        "seq": "integer",
        "lamp_on": "boolean",
        "power_w": "float",
        "energy_wh": "float",
    }
    tags = rows(influxdb.url, influx_db, "SHOW TAG KEYS FROM telemetry")
    assert {t["tagKey"] for t in tags} == {"device_id", "zone"}


def test_bad_input_is_dead_lettered_with_its_reason_while_valid_input_lands(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    settings = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
    good = [(f"{topic_root}/north/lum-{i}/telemetry", reading(BASE_MS + i)) for i in range(20)]
    bad: list[tuple[str, bytes, str]] = [
        (
            f"{topic_root}/north/lum-1/telemetry",
            b'{"lamp_on":1,"power_w":5,"energy_wh":1}',
            "wrong_type",
        ),
        (
            f"{topic_root}/north/lum-1/telemetry",
            b'{"lamp_on":true,"power_w":9999,"energy_wh":1}',
            "out_of_range",
        ),
        (
            f"{topic_root}/north/lum-1/telemetry",
            b'{"lamp_on":true,"power_w":NaN,"energy_wh":1}',
            "payload_not_json",
        ),
        (
            f"{topic_root}/north/lum-1/telemetry",
            b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-01-01T00:00:00"}',
            "naive_timestamp",
        ),
        (f"{topic_root}/north/lum-1/telemetry", b"\xff\xfe", "payload_not_utf8"),
        (f"{topic_root}/north/lum 1/telemetry", b"{}", "topic_invalid_device_id"),
        (f"{topic_root}/north/lum,1/telemetry", b"{}", "topic_invalid_device_id"),
        (f"{topic_root}/north/lum=1/telemetry", b"{}", "topic_invalid_device_id"),
        (f"{topic_root}/nörth/lum-1/telemetry", b"{}", "topic_invalid_zone"),
        (f"{topic_root}//lum-1/telemetry", b"{}", "topic_invalid_zone"),
        (f"{topic_root}/north/lum-1/telemetry/deeper", b"{}", "topic_malformed"),
        (f"{topic_root}/north/" + "x" * 200 + "/telemetry", b"{}", "topic_invalid_device_id"),
        (f"{topic_root}/north/lum-1/commands", b"{}", "topic_unknown_kind"),
        (f"{topic_root}/north/lum-1/status", b"{}", "status_empty"),
        (f"{topic_root}/north/gw-1/batch", b"[]", "batch_empty"),
    ]
    seen: list[dict[str, object]] = []
    watcher = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    watcher.on_message = lambda _c, _u, m: seen.append(json.loads(m.payload))
    host, port = mosquitto.url.removeprefix("mqtt://").split(":")
    watcher.connect(host, int(port))
    watcher.subscribe("luxtel/deadletter", qos=1)
    watcher.loop_start()
    try:
        with RunningPipeline(settings) as running:
            publisher = Publisher(mosquitto.url)
            mixed: list[tuple[str, bytes]] = []
            for index, (topic, payload, _) in enumerate(bad):
                mixed.append((topic, payload))
                mixed.append(good[index % len(good)])
            mixed.extend(good)
            publisher.publish(mixed)
            publisher.close()
            deadletter = tmp_path / "deadletter.jsonl"
            wait_until(
                lambda: (
                    deadletter.exists() and len(deadletter.read_text().splitlines()) >= len(bad)
                ),
                what="every bad message in the dead letter",
            )
            wait_until(
                lambda: count(influxdb.url, influx_db, "telemetry") == len(good),
                what="the valid readings",
            )
            wait_until(
                lambda: (
                    len([s for s in seen if str(s["topic"]).startswith(topic_root)]) >= len(bad)
                ),
                what="dead letters on luxtel/deadletter",
                timeout=10,
            )
            assert running.alive
    finally:
        watcher.loop_stop()
        watcher.disconnect()
    records = [json.loads(line) for line in deadletter.read_text().splitlines()]
    assert [(r["topic"], r["reason"]) for r in records] == [(t, reason) for t, _, reason in bad]
    for record in records:
        assert record["detail"]
        assert "received_at" in record
    assert records[4]["payload_b64"] == "//4="
    assert {s["reason"] for s in seen} == {reason for _, _, reason in bad}


def test_the_same_reading_delivered_twice_is_one_point(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    settings = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
    message = (f"{topic_root}/north/lum-1/telemetry", reading(BASE_MS, seq=5))
    with RunningPipeline(settings) as running:
        publisher = Publisher(mosquitto.url)
        publisher.publish([message, message, message])
        publisher.close()
        wait_until(lambda: running.metric("luxtel_points_written_total") == 3, what="three writes")
    assert count(influxdb.url, influx_db, "telemetry") == 1


def test_a_last_will_becomes_a_status_point_with_online_false(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    settings = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
    status_topic = f"{topic_root}/east/lum-9/status"
    with RunningPipeline(settings):
        device = Publisher(
            mosquitto.url,
            client_id="lum-9",
            topic=status_topic,
            payload=b'{"online": false}',
            qos=1,
        )
        device.publish([(status_topic, b'{"online": true, "firmware": "2.3.1"}')])
        device.client.loop_stop()
        sock = device.client.socket()
        assert sock is not None
        sock.close()  # the controller loses power: no DISCONNECT, so the broker sends the will
        wait_until(lambda: count(influxdb.url, influx_db, "status") >= 2, what="the last will")
    got = rows(influxdb.url, influx_db, "SELECT * FROM status ORDER BY time")
    assert [(r["device_id"], r["zone"], r["online"]) for r in got] == [
        ("lum-9", "east", True),
        ("lum-9", "east", False),
    ]
    assert got[0]["firmware"] == "2.3.1"


def test_retained_messages_are_not_written_again(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    topic = f"{topic_root}/north/lum-1/status"
    publisher = Publisher(mosquitto.url)
    publisher.client.publish(topic, b'{"online": true}', qos=1, retain=True).wait_for_publish(10)
    settings = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
    with RunningPipeline(settings) as running:
        wait_until(
            lambda: running.metric("luxtel_retained_skipped_total") == 1,
            what="the retained message",
            timeout=10,
        )
        publisher.publish([(f"{topic_root}/north/lum-1/telemetry", reading(BASE_MS))])
        wait_until(lambda: count(influxdb.url, influx_db, "telemetry") == 1, what="a reading")
    publisher.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
    publisher.close()
    assert count(influxdb.url, influx_db, "status") == 0


def test_points_influxdb_refuses_are_dead_lettered_and_the_rest_written(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    query(
        influxdb.url,
        f'CREATE RETENTION POLICY "short" ON "{influx_db}" DURATION 1h REPLICATION 1 DEFAULT',
    )
    settings = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
    now_ms = int(time.time() * 1000)
    recent = [
        (f"{topic_root}/n/lum-{i}/telemetry", reading(now_ms - 60_000 - i)) for i in range(10)
    ]
    too_old = [
        (f"{topic_root}/n/old-{i}/telemetry", reading(now_ms - 3 * 3_600_000 - i)) for i in range(3)
    ]
    with RunningPipeline(settings):
        publisher = Publisher(mosquitto.url)
        publisher.publish(recent[:5] + too_old + recent[5:])
        publisher.close()
        deadletter = tmp_path / "deadletter.jsonl"
        wait_until(
            lambda: deadletter.exists() and len(deadletter.read_text().splitlines()) == 3,
            what="the refused points in the dead letter",
        )
        wait_until(lambda: count(influxdb.url, influx_db, "telemetry") == 10, what="the rest")
    records = [json.loads(line) for line in deadletter.read_text().splitlines()]
    assert {r["reason"] for r in records} == {"influx_rejected"}
    assert sorted(r["topic"] for r in records) == sorted(t for t, _ in too_old)
    assert all("retention" in r["detail"] for r in records)
    assert all(r["payload"].startswith("telemetry,device_id=old-") for r in records)


def test_metrics_endpoint_serves_the_pipeline_counters(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    settings = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
    settings = settings.model_copy(
        update={"metrics": settings.metrics.model_copy(update={"enabled": True, "port": 0})}
    )
    with RunningPipeline(settings) as running:
        publisher = Publisher(mosquitto.url)
        publisher.publish(
            [
                (f"{topic_root}/n/lum-1/telemetry", reading(BASE_MS)),
                (f"{topic_root}/n/lum-1/telemetry", b"{}"),
            ]
        )
        publisher.close()
        wait_until(lambda: running.metric("luxtel_points_written_total") == 1, what="a write")
        assert running.pipeline is not None
        with urllib.request.urlopen(
            f"http://127.0.0.1:{running.pipeline.metrics_port}/metrics", timeout=10
        ) as response:
            text = response.read().decode()
    assert "luxtel_messages_received_total 2.0" in text
    assert 'luxtel_rejected_total{reason="missing_field"} 1.0' in text
    assert "luxtel_points_written_total 1.0" in text
    assert "luxtel_write_seconds_count" in text
    assert "luxtel_spool_bytes 0.0" in text


def test_one_flooding_device_cannot_starve_the_others(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    settings = make_settings(
        tmp_path,
        mosquitto.url,
        influxdb.url,
        influx_db,
        topic_root,
        device_rate_per_s=5,
        device_burst=100,
    )
    flood = [(f"{topic_root}/n/noisy/telemetry", reading(BASE_MS + i)) for i in range(3000)]
    quiet = [(f"{topic_root}/n/lum-{i}/telemetry", reading(BASE_MS + i)) for i in range(200)]
    mixed = [m for pair in zip(flood[:200], quiet, strict=True) for m in pair] + flood[200:]
    with RunningPipeline(settings) as running:
        publisher = Publisher(mosquitto.url)
        started = time.monotonic()
        publisher.publish(mixed)
        publisher.close()
        wait_until(
            lambda: running.metric("luxtel_messages_received_total") == len(mixed),
            what="everything received",
        )
        elapsed = time.monotonic() - started
        wait_until(
            lambda: (
                count(influxdb.url, influx_db, "telemetry")
                + (running.metric("luxtel_rejected_total", reason="rate_limited") or 0)
                >= len(mixed)
            ),
            what="every message written or dead-lettered",
        )
    written = rows(
        influxdb.url, influx_db, "SELECT COUNT(power_w) FROM telemetry GROUP BY device_id"
    )
    assert len(written) == 201
    noisy = [
        r["count"]
        for r in rows(
            influxdb.url, influx_db, "SELECT COUNT(power_w) FROM telemetry WHERE device_id='noisy'"
        )
    ]
    assert noisy[0] <= 100 + 5 * (elapsed + 1)
    records = (tmp_path / "deadletter.jsonl").read_text().splitlines()
    assert len(records) == 3000 - noisy[0]
    assert all('"rate_limited"' in line for line in records)
