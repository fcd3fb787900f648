"""Outages and crashes, with real servers: InfluxDB away, the broker restarting, luxtel killed.
Nothing published at QoS 1 may be lost, and the process must never give up."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from luxtel.settings import Settings
from servers import InfluxDBServer, MosquittoServer, create_database
from tests.support import (
    LUXTEL,
    Publisher,
    RunningPipeline,
    count,
    make_settings,
    reading,
    settings_toml,
    start_luxtel,
    wait_until,
)

BASE_MS = int(time.time() * 1000) - 7_200_000


def write_config(tmp_path: Path, settings: Settings) -> tuple[Path, Path]:
    """`settings` as tmp_path/luxtel.toml for `luxtel run -c`, and where its log goes."""
    config = tmp_path / "luxtel.toml"
    config.write_text(settings_toml(settings))
    return config, tmp_path / "luxtel.log"


def wait_connected(log: Path) -> None:
    """Until `luxtel run` writing to `log` has connected and subscribed."""
    wait_until(lambda: "mqtt_connected" in log.read_text(), what="luxtel connected")


def stream(root: str, start: int, n: int, devices: int = 50) -> list[tuple[str, bytes]]:
    """`n` readings with distinct timestamps, spread over `devices` luminaires."""
    return [
        (f"{root}/z{i % 3}/lum-{i % devices}/telemetry", reading(BASE_MS + i, seq=i))
        for i in range(start, start + n)
    ]


def test_influxdb_stopped_mid_stream_then_started_loses_nothing(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb_factory: Callable[..., InfluxDBServer],
    topic_root: str,
) -> None:
    influx = influxdb_factory()
    create_database(influx.url, "lighting")
    settings = make_settings(tmp_path / "state", mosquitto.url, influx.url, "lighting", topic_root)
    publisher = Publisher(mosquitto.url)
    with RunningPipeline(settings) as running:
        publisher.publish(stream(topic_root, 0, 2000))
        wait_until(lambda: count(influx.url, "lighting", "telemetry") == 2000, what="first part")
        influx.stop()
        publisher.publish(stream(topic_root, 2000, 3000))
        # Everything acknowledged while InfluxDB is away went to the spool. The spool may also
        # hold a batch of the first part: InfluxDB stored it (the count saw it) but stopped before
        # its answer reached luxtel, so luxtel could not know and spooled it (the same points,
        # harmless to write twice). So: all 5,000 acknowledged, and at least 3,000 spooled.
        wait_until(
            lambda: (
                running.metric("luxtel_messages_received_total") == 5000
                and running.metric("luxtel_unacked_messages") == 0
            ),
            what="the second part acknowledged",
        )
        assert running.metric("luxtel_points_spooled_total") >= 3000
        assert list((tmp_path / "state" / "spool").glob("*.spool"))
        time.sleep(3)  # a few replay probes fail while InfluxDB is away
        assert running.alive
        influx.start()
        publisher.publish(stream(topic_root, 5000, 1000))
        wait_until(lambda: count(influx.url, "lighting", "telemetry") == 6000, what="everything")
        wait_until(
            lambda: not list((tmp_path / "state" / "spool").glob("*.spool")),
            what="an empty spool",
            timeout=20,
        )
        spooled = running.metric("luxtel_points_spooled_total")
        assert spooled >= 3000
        assert running.metric("luxtel_points_replayed_total") == spooled
    publisher.close()


def test_broker_restart_reconnects_resubscribes_and_carries_on(
    tmp_path: Path,
    mosquitto_factory: Callable[..., MosquittoServer],
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    broker = mosquitto_factory()
    settings = make_settings(tmp_path, broker.url, influxdb.url, influx_db, topic_root)
    with RunningPipeline(settings) as running:
        publisher = Publisher(broker.url)
        publisher.publish(stream(topic_root, 0, 500))
        publisher.close()
        wait_until(lambda: count(influxdb.url, influx_db, "telemetry") == 500, what="before")
        broker.restart()
        running.wait_connected()
        wait_until(lambda: running.metric("luxtel_mqtt_connects_total") >= 2, what="reconnect")
        publisher = Publisher(broker.url)
        publisher.publish(stream(topic_root, 500, 500))
        publisher.close()
        wait_until(lambda: count(influxdb.url, influx_db, "telemetry") == 1000, what="after")


def test_messages_published_while_luxtel_is_down_are_kept_by_the_broker(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    settings = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
    with RunningPipeline(settings):
        pass  # the first run makes the persistent session
    publisher = Publisher(mosquitto.url)
    publisher.publish(stream(topic_root, 0, 3000))
    publisher.close()
    with RunningPipeline(settings):
        wait_until(lambda: count(influxdb.url, influx_db, "telemetry") == 3000, what="backlog")


class BackgroundPublisher(threading.Thread):
    def __init__(self, url: str, messages: list[tuple[str, bytes]]) -> None:
        super().__init__(daemon=True)
        self.url, self.messages = url, messages
        self.error: BaseException | None = None
        self.published = 0

    def run(self) -> None:
        publisher = Publisher(self.url)
        try:
            for start in range(0, len(self.messages), 500):
                self.published += publisher.publish(self.messages[start : start + 500])
        except BaseException as error:
            self.error = error
        finally:
            publisher.close()


def test_kill_9_mid_stream_then_restart_loses_no_message(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    settings = make_settings(
        tmp_path / "state",
        mosquitto.url,
        influxdb.url,
        influx_db,
        topic_root,
        client_id=f"luxtel-kill-{topic_root[1:9]}",
    )
    config, log = write_config(tmp_path, settings)
    total = 20000
    process = start_luxtel(config, log)
    try:
        wait_connected(log)  # a new session: what is published before it subscribes is not kept
        sender = BackgroundPublisher(mosquitto.url, stream(topic_root, 0, total))
        sender.start()
        for threshold in (3000, 9000):

            def reached(threshold: int = threshold) -> bool:
                return count(influxdb.url, influx_db, "telemetry") >= threshold

            wait_until(reached, what=f"{threshold} points before the kill")
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            process = start_luxtel(config, log)
        sender.join(120)
        assert sender.error is None
        assert sender.published == total
        wait_until(
            lambda: count(influxdb.url, influx_db, "telemetry") == total,
            timeout=120,
            what="every message after two kills",
        )
        # On a busy machine the second run may have written everything before its kill: the
        # third must be up (its SIGTERM handler installed) before it is asked to stop.
        wait_until(
            lambda: log.read_text().count("mqtt_connected") >= 3, what="the third run connected"
        )
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode == 0, log.read_text()[-3000:]


def test_kill_9_while_spooling_then_restart_replays_the_spool(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb_factory: Callable[..., InfluxDBServer],
    topic_root: str,
) -> None:
    influx = influxdb_factory()
    create_database(influx.url, "lighting")
    settings = make_settings(
        tmp_path / "state",
        mosquitto.url,
        influx.url,
        "lighting",
        topic_root,
        client_id=f"luxtel-spool-{topic_root[1:9]}",
    )
    config, log = write_config(tmp_path, settings)
    process = start_luxtel(config, log)
    try:
        wait_connected(log)
        influx.stop()
        publisher = Publisher(mosquitto.url)
        publisher.publish(stream(topic_root, 0, 4000))
        spool = tmp_path / "state" / "spool"
        wait_until(lambda: len(list(spool.glob("*.spool"))) >= 2, what="spooled batches")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        influx.start()
        process = start_luxtel(config, log)
        publisher.publish(stream(topic_root, 4000, 1000))
        publisher.close()
        wait_until(
            lambda: count(influx.url, "lighting", "telemetry") == 5000,
            timeout=90,
            what="spool and stream",
        )
    finally:
        process.terminate()
        process.wait(30)


def test_sigterm_drains_and_exits_0(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    settings = make_settings(
        tmp_path / "state",
        mosquitto.url,
        influxdb.url,
        influx_db,
        topic_root,
        flush_interval_s=30,
        batch_size=100000,
        idle_flush_s=0,  # held in the batch until SIGTERM
    )
    config, log = write_config(tmp_path, settings)
    process = start_luxtel(config, log)
    wait_connected(log)
    publisher = Publisher(mosquitto.url)
    publisher.publish(stream(topic_root, 0, 700))
    publisher.close()
    time.sleep(1)
    assert count(influxdb.url, influx_db, "telemetry") == 0  # held in a 30 s batch
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0, log.read_text()[-3000:]
    assert count(influxdb.url, influx_db, "telemetry") == 700


def test_bad_configuration_exits_2_with_one_sentence(tmp_path: Path) -> None:
    config = tmp_path / "luxtel.toml"
    config.write_text('[mqtt]\nurl = "mqtt://broker"\n[ingest]\nbatch_size = "big"\n')
    done = subprocess.run(
        [*LUXTEL, "run", "-c", str(config)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "ingest.batch_size" in done.stderr


def test_influx_refusing_the_credentials_stops_with_exit_1(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb_factory: Callable[..., InfluxDBServer],
    topic_root: str,
) -> None:
    influx = influxdb_factory(auth_enabled=True, admin_password="right-password")
    settings = make_settings(tmp_path / "state", mosquitto.url, influx.url, "lighting", topic_root)
    config = tmp_path / "luxtel.toml"
    text = settings_toml(settings).replace(
        "[influx]\n",
        '[influx]\nusername = "admin"\npassword_file = "' + str(tmp_path / "pw") + '"\n',
    )
    config.write_text(text)
    (tmp_path / "pw").write_text("wrong-password\n")
    done = subprocess.run(
        [*LUXTEL, "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )
    assert done.returncode == 1, done.stderr
    assert "refused the credentials" in done.stderr
    assert "wrong-password" not in done.stderr


def test_a_full_spool_holds_back_acknowledgements_and_loses_nothing(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb_factory: Callable[..., InfluxDBServer],
    topic_root: str,
) -> None:
    influx = influxdb_factory()
    create_database(influx.url, "lighting")
    settings = make_settings(tmp_path / "state", mosquitto.url, influx.url, "lighting", topic_root)
    settings = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"spool_max_bytes": 1024 * 1024})}
    )
    publisher = Publisher(mosquitto.url)
    with RunningPipeline(settings) as running:
        influx.stop()
        publisher.publish(stream(topic_root, 0, 30000))
        wait_until(
            lambda: running.metric("luxtel_spool_bytes") > 900 * 1024,
            timeout=180,  # InfluxDB's retries come first: slow on a busy machine, not a defect
            what="a full spool",
        )
        time.sleep(2)
        spooled = running.metric("luxtel_points_spooled_total")
        assert 0 < spooled < 30000
        assert running.metric("luxtel_unacked_messages") > 0
        assert running.alive
        influx.start()
        wait_until(
            lambda: count(influx.url, "lighting", "telemetry") == 30000,
            timeout=120,
            what="every message once InfluxDB is back",
        )
    publisher.close()


def test_a_devices_backlog_after_a_luxtel_outage_is_not_rate_limited(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    """The broker hands over a week of one device's readings at once: with the default limit
    (1 message/s, bursts of 2000) all of it lands."""
    settings = make_settings(
        tmp_path,
        mosquitto.url,
        influxdb.url,
        influx_db,
        topic_root,
        device_rate_per_s=1.0,
        device_burst=2000,
    )
    with RunningPipeline(settings):
        pass
    week = [
        (f"{topic_root}/z0/lum-7/telemetry", reading(BASE_MS - i * 900_000, seq=i))
        for i in range(672)
    ]
    publisher = Publisher(mosquitto.url)
    publisher.publish(week)
    publisher.close()
    with RunningPipeline(settings) as running:
        wait_until(lambda: count(influxdb.url, influx_db, "telemetry") == 672, what="the week")
        assert running.metric("luxtel_rejected_total", reason="rate_limited") == 0
