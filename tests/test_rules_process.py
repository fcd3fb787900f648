"""The rules engine in its own process beside `luxtel run`, with real Mosquitto and InfluxDB: a
separate pid that evaluates (alerts in InfluxDB and on MQTT, its metrics on the parent's
/metrics); killed, it is restarted and does not notify again; stopping the pipeline ends it;
`luxtel run` stopped (SIGTERM) or killed (SIGKILL) leaves no process behind; a child that is
stopped makes the rules lag, and catches up, dropping nothing; a rules file that does not load
stops `luxtel run` with exit 2."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry

from influx.client import InfluxTarget
from luxtel.pipeline import Pipeline, rules_config
from luxtel.settings import InventorySettings, MetricsSettings, RulesSettings, Settings
from rules.evaluation.inventory import COLUMNS
from rules.language.errors import RuleFileError
from rules.runtime.journal import Body
from rules.runtime.journal_writer import JournalWriter
from rules.runtime.process import RulesProcess
from rules.runtime.store import Store
from servers import InfluxDBServer, MosquittoServer, free_port
from tests.rules_fixtures import HOT_RULES, Webhook, webhook
from tests.rules_fixtures import reading as observation
from tests.support import (
    LUXTEL,
    Publisher,
    RunningPipeline,
    count,
    descendants,
    make_settings,
    process_gone,
    reading,
    rows,
    settings_toml,
    start_luxtel,
    wait_until,
)

__all__ = ["webhook"]  # a fixture used by name

DEVICES = ("lum-1", "lum-2", "lum-3")


class AlertWatcher:
    """A subscriber to `luxtel/alerts/#`: the transitions luxtel published, by topic."""

    def __init__(self, mosquitto: MosquittoServer) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"w-{uuid.uuid4().hex[:8]}",
        )
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.connect(mosquitto.host, mosquitto.port)
        self.client.subscribe("luxtel/alerts/#", qos=1)
        self.client.loop_start()
        assert subscribed.wait(30), "the broker did not acknowledge the subscription"

    def on(self, device_id: str) -> int:
        return sum(topic == f"luxtel/alerts/north/{device_id}" for topic, _ in self.received)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def alerts(mosquitto: MosquittoServer) -> Iterator[AlertWatcher]:
    watcher = AlertWatcher(mosquitto)
    yield watcher
    watcher.close()


def write_rules(directory: Path, notify: str | None = None) -> tuple[Path, Path, Path | None]:
    rules = directory / "rules.yaml"
    rules.write_text(HOT_RULES)
    inventory = directory / "inventory.csv"
    inventory.write_text(
        ",".join(COLUMNS)
        + "\n"
        + "".join(f"{d},north,C01,31.2,121.4,60,100,900,LX-M60,2024-01-01\n" for d in DEVICES)
    )
    notify_path = None
    if notify is not None:
        notify_path = directory / "notify.yaml"
        notify_path.write_text(notify)
    return rules, inventory, notify_path


def with_rules(settings: Settings, directory: Path, notify: str | None = None) -> Settings:
    rules, inventory, notify_path = write_rules(directory, notify)
    return settings.model_copy(
        update={
            "rules": RulesSettings(path=rules, notify=notify_path, tick_s=0.2),
            "inventory": InventorySettings(path=inventory),
        }
    )


def driver_at(topic_root: str, device_id: str, temp: float = 95.0) -> tuple[str, bytes]:
    now_ms = int(time.time() * 1000)
    return f"{topic_root}/north/{device_id}/telemetry", reading(now_ms, driver_temp_c=temp)


def alert_rows(influxdb: InfluxDBServer, database: str, device_id: str) -> int:
    statement = f"SELECT * FROM alerts WHERE device_id = '{device_id}'"  # noqa: S608 (test data)
    return len(rows(influxdb.url, database, statement))


def rules_pid(running: RunningPipeline) -> int | None:
    assert running.pipeline is not None
    assert running.pipeline.rules is not None
    return running.pipeline.rules.pid


@pytest.mark.integration
def test_the_rules_run_in_a_process_of_their_own_that_stopping_ends(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
    alerts: AlertWatcher,
) -> None:
    base = make_settings(tmp_path / "state", mosquitto.url, influxdb.url, influx_db, topic_root)
    settings = with_rules(base, tmp_path).model_copy(
        update={"metrics": MetricsSettings(enabled=True, port=0)}
    )
    publisher = Publisher(mosquitto.url)
    try:
        with RunningPipeline(settings) as running:
            pid = rules_pid(running)
            assert pid is not None
            assert pid != os.getpid()
            assert not process_gone(pid)
            publisher.publish([driver_at(topic_root, "lum-1")])
            wait_until(lambda: alerts.on("lum-1") == 1, 60, "the alert on MQTT")
            wait_until(lambda: alert_rows(influxdb, influx_db, "lum-1") == 1, 60, "in InfluxDB")
            # Below ingest: it runs only on CPU time nothing else wants (a reading evaluated
            # means it has set its priority).
            assert os.sched_getscheduler(pid) == os.SCHED_IDLE
            assert running.pipeline is not None
            url = f"http://127.0.0.1:{running.pipeline.metrics_port}/metrics"

            def scraped() -> str:
                with urllib.request.urlopen(url, timeout=10) as response:
                    return str(response.read().decode())

            wait_until(
                lambda: "luxtel_rules_observations_total 1.0" in scraped(),
                60,
                "the rules process's metrics on the parent's /metrics",
            )
            page = scraped()
            assert 'luxtel_alerts_firing{rule="hot",severity="major"} 1.0' in page
            assert "luxtel_messages_received_total 1.0" in page
            assert "luxtel_rules_process_up 1.0" in page
            assert "luxtel_rules_process_restarts_total 0.0" in page
    finally:
        publisher.close()
    assert process_gone(pid), "stopping the pipeline ends its rules process"
    assert running.metric("luxtel_rules_process_up") == 0


def unsent(settings: Settings) -> int | None:
    """The rules' outbox items not yet sent (None while the store is busy)."""
    try:
        store = Store(settings.state_dir / "rules.sqlite")
    except sqlite3.OperationalError:
        return None
    try:
        return store.outbox_counts()["unsent"]
    except sqlite3.OperationalError:
        return None
    finally:
        store.close()


@pytest.mark.integration
def test_a_killed_rules_process_is_restarted_and_does_not_notify_again(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
    alerts: AlertWatcher,
    webhook: Webhook,
) -> None:
    notify = (
        f"receivers:\n  - name: crew\n    apprise: ['json://127.0.0.1:{webhook.port}/hook']\n"
        "route: {receiver: crew, group_by: [device_id], group_wait: 0s, group_interval: 1m,"
        " repeat_interval: 4h}\n"
    )
    base = make_settings(tmp_path / "state", mosquitto.url, influxdb.url, influx_db, topic_root)
    settings = with_rules(base, tmp_path, notify)

    def notified(device_id: str) -> int:
        return sum(device_id in str(message) for message in webhook.received)

    publisher = Publisher(mosquitto.url)
    try:
        with RunningPipeline(settings) as running:
            first = rules_pid(running)
            assert first is not None
            publisher.publish([driver_at(topic_root, "lum-1")])
            wait_until(lambda: notified("lum-1") == 1, 60, "lum-1's notification")
            wait_until(lambda: alerts.on("lum-1") == 1, 60, "lum-1's alert on MQTT")
            # Delivery is at least once: a kill between a send and its record repeats it. The
            # kill comes once the sends are recorded, so a second notification is a defect.
            wait_until(lambda: unsent(settings) == 0, 60, "lum-1's sends recorded")
            os.kill(first, signal.SIGKILL)
            publisher.publish([driver_at(topic_root, "lum-3", 20.0)])  # ingest goes on meanwhile
            wait_until(
                lambda: (
                    running.metric("luxtel_rules_process_restarts_total") == 1
                    and rules_pid(running) not in (None, first)
                ),
                60,
                "the rules process restarted",
            )
            assert process_gone(first)
            # lum-1 is still hot: no new transition, no new notification. lum-2's alert comes
            # after anything the restarted engine would have re-sent for lum-1.
            publisher.publish(
                [driver_at(topic_root, "lum-1", 96.0), driver_at(topic_root, "lum-2")]
            )
            wait_until(lambda: notified("lum-2") == 1, 60, "lum-2's notification")
            wait_until(lambda: alerts.on("lum-2") == 1, 60, "lum-2's alert on MQTT")
            wait_until(lambda: alert_rows(influxdb, influx_db, "lum-2") == 1, 60, "in InfluxDB")
            assert notified("lum-1") == 1, "the restart must not notify again"
            assert alerts.on("lum-1") == 1
            assert alert_rows(influxdb, influx_db, "lum-1") == 1
            wait_until(
                lambda: count(influxdb.url, influx_db, "telemetry") == 4, 60, "every reading"
            )
    finally:
        publisher.close()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 0), (signal.SIGKILL, -signal.SIGKILL)]
)
def test_luxtel_run_leaves_no_process_behind_when_stopped_or_killed(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
    signum: signal.Signals,
    status: int,
) -> None:
    """SIGTERM: luxtel ends its rules process, then exits 0. SIGKILL: the rules process sees
    its channel end and exits by itself (multiprocessing's resource tracker too)."""
    rules, inventory, _ = write_rules(tmp_path)
    settings = make_settings(tmp_path / "state", mosquitto.url, influxdb.url, influx_db, topic_root)
    config = tmp_path / "luxtel.toml"
    config.write_text(
        settings_toml(settings)
        + f'[rules]\npath = "{rules}"\ntick_s = 0.2\n[inventory]\npath = "{inventory}"\n'
    )
    log = tmp_path / "luxtel.log"
    process = start_luxtel(config, log)
    try:
        wait_until(lambda: "mqtt_connected" in log.read_text(), 60, "luxtel connected")
        wait_until(lambda: "rules_started" in log.read_text(), 60, "the rules process running")
        found = re.search(r"rules_process_started\s+pid=(\d+)", log.read_text())
        assert found is not None, log.read_text()
        left = descendants(process.pid)
        assert int(found.group(1)) in left
        process.send_signal(signum)
        assert process.wait(60) == status, log.read_text()[-3000:]
        wait_until(lambda: all(map(process_gone, left)), 60, f"{left} to exit")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_a_rules_file_that_does_not_load_stops_luxtel_run_with_exit_2(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(HOT_RULES.replace("reading.driver_temp_c > 80.0", "reading.driver_temp_c >"))
    config = tmp_path / "luxtel.toml"
    config.write_text(f'[rules]\npath = "{rules}"\n')
    done = subprocess.run([*LUXTEL, "run", "-c", str(config)], capture_output=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert re.search(rf"rules\.path: {re.escape(str(rules))}:\d+: ", done.stderr.decode())


def test_the_pipeline_checks_the_rules_file_before_starting_the_process(tmp_path: Path) -> None:
    """`Pipeline` built from settings that were not checked still raises RuleFileError, as
    when the engine loaded the file in-process, and starts no process."""
    base = make_settings(
        tmp_path / "state",
        f"mqtt://127.0.0.1:{free_port()}",
        f"http://127.0.0.1:{free_port()}",
        "none",
        "t/lighting",
    )
    settings = with_rules(base, tmp_path)
    assert settings.rules.path is not None
    settings.rules.path.write_text("rules:\n  - name: broken\n")
    pipeline = Pipeline(settings)
    with pytest.raises(RuleFileError, match=r"rules\.yaml:2"):
        asyncio.run(pipeline.run())
    assert pipeline.rules is None


def test_a_rules_process_that_is_stopped_lags_and_catches_up_without_dropping(
    tmp_path: Path,
) -> None:
    """The child stopped (SIGSTOP): appends to the journal go on (the child is never waited
    for below the bound), the lag shows them, and once the child goes on it evaluates every
    one of them and the lag returns to 0."""
    settings = with_rules(Settings(state_dir=tmp_path / "state"), tmp_path)
    registry = CollectorRegistry()
    published: list[str] = []

    def metric(name: str) -> float:
        return registry.get_sample_value(name) or 0.0

    async def until(condition: Callable[[], bool]) -> None:
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)

    async def main() -> None:
        journal = JournalWriter(tmp_path / "state" / "journal", 64 << 20, registry)
        rules = RulesProcess(
            rules_config(settings),
            InfluxTarget(url=f"http://127.0.0.1:{free_port()}", database="none"),
            lambda topic, _payload: published.append(topic),
            registry,
            journal,
        )
        task = asyncio.create_task(rules.run())
        await until(lambda: metric("luxtel_rules_process_up") == 1)
        pid = rules.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        chunk = [observation(device, 1.0, lamp_on=False, power_w=0.0) for device in DEVICES * 50]
        sent = 0
        try:
            for _ in range(100):  # 15,000 observations: far beyond any socket's buffer
                await asyncio.wait_for(journal.append(chunk), 30)
                sent += len(chunk)
            assert metric("luxtel_rules_lag_observations") == sent
            assert metric("luxtel_rules_lag_bytes") == journal.end.offset
            assert metric("luxtel_rules_evaluated_total") == 0
        finally:
            os.kill(pid, signal.SIGCONT)
        await until(lambda: metric("luxtel_rules_evaluated_total") == sent)
        await until(lambda: metric("luxtel_rules_observations_total") == sent)
        assert metric("luxtel_rules_lag_observations") == 0
        assert metric("luxtel_rules_lag_seconds") == 0
        rules.close()
        await task
        journal.close()
        assert process_gone(pid)

    asyncio.run(main())


def test_a_journal_record_the_rules_cannot_decode_is_set_aside_not_retried_forever(
    tmp_path: Path,
) -> None:
    """A record whose CRC holds but whose body does not decode (another version wrote it, say)
    would crash every rules process that reads it, and the journal would fill: it is set aside
    and the rules go on with the next records, in the same process."""
    settings = with_rules(Settings(state_dir=tmp_path / "state"), tmp_path)
    registry = CollectorRegistry()

    def metric(name: str) -> float:
        return registry.get_sample_value(name) or 0.0

    async def until(condition: Callable[[], bool]) -> None:
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)

    async def main() -> None:
        directory = tmp_path / "state" / "journal"
        journal = JournalWriter(directory, 64 << 20, registry)
        rules = RulesProcess(
            rules_config(settings),
            InfluxTarget(url=f"http://127.0.0.1:{free_port()}", database="none"),
            lambda _topic, _payload: None,
            registry,
            journal,
        )
        task = asyncio.create_task(rules.run())
        good = [observation(device, 1.0) for device in DEVICES]
        garbage = b'{"not": "observations"}'
        await journal.append(good)
        await journal.append_encoded(Body(garbage, zlib.crc32(garbage), 5))
        await journal.append(good)
        await asyncio.wait_for(until(lambda: metric("luxtel_rules_evaluated_total") == 11), 60)
        await until(lambda: metric("luxtel_rules_observations_total") == 6)
        assert metric("luxtel_rules_process_restarts_total") == 0
        assert [p.read_bytes() for p in directory.glob("*.unreadable")] == [garbage]
        rules.close()
        await task
        journal.close()

    asyncio.run(main())
