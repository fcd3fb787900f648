"""The durable hand-over from ingest to the rules (the journal), against real Mosquitto and
InfluxDB: an observation whose message luxtel acknowledged is evaluated exactly once in effect
even when the rules process or luxtel itself is killed (`kill -9`) right after; a rules process
that is stopped or behind makes the rules lag, never drop; a journal at its bound holds ingest
back (no acknowledgement, nothing lost) until the rules catch up.

Every test fires one alert per device (the `hot` rule) and checks that each device's alert
comes exactly once, on MQTT and as a webhook notification."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from luxtel.settings import InventorySettings, MetricsSettings, RulesSettings, Settings
from rules.evaluation.inventory import COLUMNS
from servers import InfluxDBServer, MosquittoServer, free_port
from tests.rules_fixtures import HOT_RULES, Webhook, webhook
from tests.support import (
    Publisher,
    RunningPipeline,
    count,
    make_settings,
    process_gone,
    reading,
    settings_toml,
    start_luxtel,
    wait_until,
)

__all__ = ["webhook"]  # a fixture used by name


def devices(n: int) -> list[str]:
    """Ids no one of which is part of another (a notification is found by its device id)."""
    return [f"d{i:04d}x" for i in range(n)]


class Alerts:
    """A subscriber to `luxtel/alerts/#`: the transitions luxtel published, by device."""

    def __init__(self, mosquitto: MosquittoServer) -> None:
        self.received: list[str] = []
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"w-{uuid.uuid4().hex[:8]}",
        )
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.received.append(m.topic)
        self.client.connect(mosquitto.host, mosquitto.port)
        self.client.subscribe("luxtel/alerts/#", qos=1)
        self.client.loop_start()
        assert subscribed.wait(30), "the broker did not acknowledge the subscription"

    def by_device(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for topic in list(self.received):
            device = topic.rsplit("/", 1)[1]
            found[device] = found.get(device, 0) + 1
        return found

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def alerts(mosquitto: MosquittoServer) -> Iterator[Alerts]:
    watcher = Alerts(mosquitto)
    yield watcher
    watcher.close()


def notified(hook: Webhook, ids: list[str]) -> dict[str, int]:
    found = dict.fromkeys(ids, 0)
    for message in list(hook.received):
        text = str(message)
        for device in ids:
            if device in text:
                found[device] += 1
    return found


def rules_files(directory: Path, ids: list[str], hook: Webhook) -> tuple[Path, Path, Path]:
    rules = directory / "rules.yaml"
    rules.write_text(HOT_RULES)
    inventory = directory / "inventory.csv"
    inventory.write_text(
        ",".join(COLUMNS)
        + "\n"
        + "".join(f"{d},north,C01,31.2,121.4,60,100,900,LX-M60,2024-01-01\n" for d in ids)
    )
    notify = directory / "notify.yaml"
    notify.write_text(
        f"receivers:\n  - name: crew\n    apprise: ['json://127.0.0.1:{hook.port}/hook']\n"
        "route: {receiver: crew, group_by: [device_id], group_wait: 0s, group_interval: 1m,"
        " repeat_interval: 4h}\n"
    )
    return rules, inventory, notify


def with_rules(base: Settings, directory: Path, ids: list[str], hook: Webhook) -> Settings:
    rules, inventory, notify = rules_files(directory, ids, hook)
    return base.model_copy(
        update={
            "rules": RulesSettings(path=rules, notify=notify, tick_s=0.2),
            "inventory": InventorySettings(path=inventory),
            "metrics": MetricsSettings(enabled=True, port=0),
        }
    )


def hot(topic_root: str, ids: list[str], per_device: int = 1) -> list[tuple[str, bytes]]:
    """`per_device` readings of each device, all over 80 °C (one alert per device)."""
    now_ms = int(time.time() * 1000)
    return [
        (
            f"{topic_root}/north/{device}/telemetry",
            reading(now_ms - (per_device - k) * 1000, driver_temp_c=95.0, seq=k),
        )
        for k in range(per_device)
        for device in ids
    ]


def notifications_recorded(running: RunningPipeline) -> float:
    """Notifications the rules process has recorded as delivered (its metrics as last reported
    to `luxtel run`), alert points to InfluxDB not counted."""
    assert running.pipeline is not None
    return sum(
        sample.value
        for family in running.pipeline.metrics.registry.collect()
        for sample in family.samples
        if sample.name == "luxtel_notifications_sent_total"
        and sample.labels.get("channel") != "influx"
    )


def rules_pid(running: RunningPipeline) -> int:
    assert running.pipeline is not None
    assert running.pipeline.rules is not None
    pid = running.pipeline.rules.pid
    assert pid is not None
    return pid


def assert_each_once(alerts: Alerts, hook: Webhook, ids: list[str]) -> None:
    wait_until(lambda: len(alerts.by_device()) == len(ids), 120, "every device's alert on MQTT")
    wait_until(lambda: min(notified(hook, ids).values()) >= 1, 120, "every notification")
    time.sleep(1.0)  # anything sent twice would come meanwhile
    assert set(alerts.by_device().values()) == {1}, alerts.by_device()
    assert set(notified(hook, ids).values()) == {1}, notified(hook, ids)


@pytest.mark.integration
def test_a_rules_process_killed_mid_stream_evaluates_everything_once(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
    alerts: Alerts,
    webhook: Webhook,
) -> None:
    """Half the devices are evaluated (and notified); the child is stopped, the other half is
    ingested and acknowledged meanwhile, and the child is killed: its successor evaluates the
    second half from the journal, and notifies nothing of the first half again."""
    ids = devices(300)
    first, second = ids[:150], ids[150:]
    base = make_settings(tmp_path / "state", mosquitto.url, influxdb.url, influx_db, topic_root)
    settings = with_rules(base, tmp_path, ids, webhook)
    publisher = Publisher(mosquitto.url)
    try:
        with RunningPipeline(settings) as running:
            publisher.publish(hot(topic_root, first))
            wait_until(lambda: len(alerts.by_device()) == len(first), 60, "the first half")
            # Stopped once the first half's notifications are recorded as sent: one killed
            # between its webhook's answer and that record would be sent again (the outbox
            # delivers at least once: README, "How observations reach the rules").
            wait_until(
                lambda: notifications_recorded(running) >= len(first), 60, "the first half sent"
            )
            pid = rules_pid(running)
            os.kill(pid, signal.SIGSTOP)
            publisher.publish(hot(topic_root, second))
            wait_until(
                lambda: count(influxdb.url, influx_db, "telemetry") == len(ids), 60, "ingested"
            )
            wait_until(lambda: running.metric("luxtel_unacked_messages") == 0, 30, "acked")
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: process_gone(pid), 30, "the child killed")
            assert_each_once(alerts, webhook, ids)
            wait_until(lambda: running.metric("luxtel_rules_lag_observations") == 0, 60, "no lag")
    finally:
        publisher.close()


@pytest.mark.integration
def test_a_rules_process_killed_while_it_evaluates_a_backlog_notifies_each_once(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
    alerts: Alerts,
    webhook: Webhook,
) -> None:
    """A backlog journaled while the child was stopped; it goes on and is killed as soon as it
    has evaluated part of it (evaluated, maybe not committed yet): its successor goes on from
    the committed position, and no alert comes twice. The webhook answers 500 until the kill,
    so that the kill cannot fall between a webhook's answer and its record as sent (the outbox
    delivers at least once: README); what the first child committed is delivered by its
    successor, once."""
    ids = devices(200)
    per_device = 30
    total = len(ids) * per_device
    base = make_settings(tmp_path / "state", mosquitto.url, influxdb.url, influx_db, topic_root)
    settings = with_rules(base, tmp_path, ids, webhook)
    publisher = Publisher(mosquitto.url)
    try:
        with RunningPipeline(settings) as running:
            pid = rules_pid(running)
            os.kill(pid, signal.SIGSTOP)
            webhook.fail = True
            publisher.publish(hot(topic_root, ids, per_device))
            wait_until(
                lambda: running.metric("luxtel_rules_lag_observations") == total, 60, "journaled"
            )
            os.kill(pid, signal.SIGCONT)
            wait_until(
                lambda: running.metric("luxtel_rules_evaluated_total") > 0, 60, "some evaluated"
            )
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: process_gone(pid), 30, "the child killed")
            webhook.fail = False
            wait_until(
                lambda: running.metric("luxtel_rules_evaluated_total") == total,
                120,
                "every observation evaluated",
            )
            assert_each_once(alerts, webhook, ids)
            assert running.metric("luxtel_rules_process_restarts_total") == 1
    finally:
        publisher.close()


@pytest.mark.integration
def test_luxtel_killed_right_after_its_acks_evaluates_them_on_restart(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
    alerts: Alerts,
    webhook: Webhook,
) -> None:
    """The rules process is stopped, readings are ingested and acknowledged, and `luxtel run`
    is killed (its stopped child too): the broker holds nothing for luxtel any more, and the
    restarted luxtel evaluates them from its journal."""
    ids = devices(200)
    rules, inventory, notify = rules_files(tmp_path, ids, webhook)
    settings = make_settings(tmp_path / "state", mosquitto.url, influxdb.url, influx_db, topic_root)
    port = free_port()
    config = tmp_path / "luxtel.toml"
    config.write_text(
        settings_toml(settings).replace(
            "[metrics]\nenabled = false\n", f"[metrics]\nenabled = true\nport = {port}\n"
        )
        + f'[rules]\npath = "{rules}"\nnotify = "{notify}"\ntick_s = 0.2\n'
        + f'[inventory]\npath = "{inventory}"\n'
    )

    def scraped(name: str) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
                text = page.read().decode()
        except OSError:
            return None
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        return None if found is None else float(found.group(1))

    log = tmp_path / "luxtel.log"
    publisher = Publisher(mosquitto.url)
    process = start_luxtel(config, log)
    try:
        wait_until(lambda: "rules_started" in log.read_text(), 60, "the rules process running")
        found = re.search(r"rules_process_started\s+pid=(\d+)", log.read_text())
        assert found is not None, log.read_text()
        child = int(found.group(1))
        os.kill(child, signal.SIGSTOP)
        publisher.publish(hot(topic_root, ids))
        wait_until(lambda: scraped("luxtel_messages_received_total") == len(ids), 60, "received")
        wait_until(lambda: scraped("luxtel_unacked_messages") == 0, 60, "every message acked")
        process.kill()
        os.kill(child, signal.SIGKILL)
        process.wait(30)
        wait_until(lambda: process_gone(child), 30, "the old rules process gone")
        assert count(influxdb.url, influx_db, "telemetry") == len(ids)
        assert alerts.by_device() == {}, "nothing evaluated before the kill"
        process = start_luxtel(config, log)
        assert_each_once(alerts, webhook, ids)
        assert scraped("luxtel_messages_received_total") == 0, "the broker redelivered nothing"
    finally:
        publisher.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


@pytest.mark.integration
def test_a_stopped_rules_process_lags_instead_of_dropping(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
    alerts: Alerts,
    webhook: Webhook,
) -> None:
    """A backlog far larger than any buffer: nothing dropped; once the child goes on it
    catches up, every observation is evaluated, and the lag returns to 0."""
    ids = devices(100)
    per_device = 60
    total = len(ids) * per_device
    base = make_settings(tmp_path / "state", mosquitto.url, influxdb.url, influx_db, topic_root)
    settings = with_rules(base, tmp_path, ids, webhook)
    publisher = Publisher(mosquitto.url)
    try:
        with RunningPipeline(settings) as running:
            pid = rules_pid(running)
            os.kill(pid, signal.SIGSTOP)
            try:
                publisher.publish(hot(topic_root, ids, per_device))
                wait_until(
                    lambda: count(influxdb.url, influx_db, "telemetry") == total, 120, "ingested"
                )
                wait_until(
                    lambda: running.metric("luxtel_rules_lag_observations") == total,
                    30,
                    "the lag to show the backlog",
                )
                assert running.metric("luxtel_rules_lag_seconds") > 0
            finally:
                os.kill(pid, signal.SIGCONT)
            wait_until(
                lambda: running.metric("luxtel_rules_observations_total") == total,
                120,
                "every observation evaluated",
            )
            wait_until(
                lambda: running.metric("luxtel_rules_lag_observations") == 0, 30, "no lag left"
            )
            assert running.metric("luxtel_rules_evaluated_total") == total
            assert_each_once(alerts, webhook, ids)
    finally:
        publisher.close()


@pytest.mark.integration
def test_a_full_journal_holds_ingest_back_and_loses_nothing(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
    alerts: Alerts,
    webhook: Webhook,
) -> None:
    """The rules process stopped and a journal of 1 MiB (~3,000 observations): ingest stops
    acknowledging (and writing) at the bound, the broker holds the rest; once the rules go
    on, everything is written, acknowledged and evaluated, once."""
    ids = devices(80)
    per_device = 100
    total = len(ids) * per_device
    base = make_settings(tmp_path / "state", mosquitto.url, influxdb.url, influx_db, topic_root)
    settings = with_rules(base, tmp_path, ids, webhook)
    settings = settings.model_copy(
        update={
            "rules": settings.rules.model_copy(update={"journal_max_bytes": 1 << 20}),
        }
    )
    publisher = Publisher(mosquitto.url)
    try:
        with RunningPipeline(settings) as running:
            pid = rules_pid(running)
            os.kill(pid, signal.SIGSTOP)
            try:
                publisher.publish(hot(topic_root, ids, per_device))
                wait_until(
                    lambda: running.metric("luxtel_rules_journal_full") == 1, 60, "a full journal"
                )
                time.sleep(2.0)  # whatever ingest would still do, it does meanwhile
                written = count(influxdb.url, influx_db, "telemetry")
                assert written < total, "ingest must wait for the rules"
                assert running.metric("luxtel_rules_journal_bytes") <= 1 << 20
                assert running.metric("luxtel_unacked_messages") > 0, "nothing past the bound acked"
            finally:
                os.kill(pid, signal.SIGCONT)
            wait_until(
                lambda: count(influxdb.url, influx_db, "telemetry") == total, 120, "all written"
            )
            wait_until(
                lambda: running.metric("luxtel_rules_evaluated_total") == total,
                120,
                "every observation evaluated",
            )
            assert running.metric("luxtel_rules_journal_full") == 0
            assert_each_once(alerts, webhook, ids)
            wait_until(lambda: running.metric("luxtel_unacked_messages") == 0, 30, "all acked")
    finally:
        publisher.close()
