"""Rules judge readings by their own `ts` (README, "How time works for rules"), end to end on real
Mosquitto and InfluxDB:

- an hour of readings replayed as a backlog (luxtel stopped, the broker queueing them for its
  persistent session, luxtel started) raises exactly the alerts the same hour raises live, fired
  and resolved at the same reading times, and nothing else (no communication_loss either);
- an old reading that arrives again (as a QoS 1 redelivery brings it) changes nothing: a normal
  one does not clear a firing fault, a faulty one does not re-open a resolved fault (no
  transition, no notification, the same alert state).

The readings lie 80 to 20 minutes in the past (reading time). The deadman cannot fire within
these few seconds whatever clock it used (silence counts from luxtel's start at the earliest):
its absence here only shows that the backlog raised no alert of its own; the deadman under lag
is tested on the engine (tests/test_rules_engine.py)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from luxtel.commands.rules import alerts_app
from luxtel.settings import InventorySettings, MetricsSettings, RulesSettings, Settings
from rules.evaluation.inventory import COLUMNS
from servers import InfluxDBServer, MosquittoServer
from tests.rules_fixtures import Webhook, webhook
from tests.support import (
    Publisher,
    RunningPipeline,
    make_settings,
    reading,
    rows,
    wait_until,
)

__all__ = ["webhook"]  # a fixture used by name

RULES = """\
rules:
  - name: lamp_failure
    source: reading
    condition: reading.lamp_on && reading.power_w < 0.2 * device.rated_power_w
    value: reading.power_w
    for: 20m
    keep_firing_for: 10m
    severity: major
    annotations:
      summary: "Lamp failure: {device_id} draws {value:.1f} W since {since}"

  - name: communication_loss
    source: silence
    absent_for_intervals: 3
    severity: major
    annotations:
      summary: "No data from {device_id} for {value:.0f} min"
"""
"""A lamp failure that must hold 20 minutes of reading time and stay clear 10 to resolve, and
the deadman (3 report intervals of 5 minutes without contact)."""

STEP_MIN = 5
HOUR = range(0, 61, STEP_MIN)
"""The minutes of the hour at which every device reports."""

FAULTY = {"lum2": range(10, 41), "lum3": range(20, 26)}
"""The minutes a device draws 0 W while lit: lum2 for 30 minutes (a lamp failure: pending at
10, firing at 30, clear from 45, resolved at 55), lum3 for 5 (a blip shorter than `for`:
never an alert)."""

DEVICES = ("lum1", "lum2", "lum3")

Transition = tuple[str, str, str, float]
"""(rule, device without its run's prefix, state, minute of the hour it is stamped at)."""

EXPECTED: list[Transition] = [
    ("lamp_failure", "lum2", "firing", 30),
    ("lamp_failure", "lum2", "resolved", 55),
]
"""The only transitions of the focused rules."""

SHIPPED = Path(__file__).parent.parent / "deploy" / "rules" / "streetlight.yaml"

SHIPPED_EXPECTED: list[Transition] = [
    ("lamp_failure", "lum2", "firing", 40),
    ("lamp_failure", "lum2", "resolved", 60),
]
"""The shipped rules' transitions: `lamp_failure` holds 30 minutes (pending at 10, firing at
40) and stays clear 15 to resolve (clear from 45, resolved at 60); nothing else applies (the
readings carry no voltage, power factor or driver temperature, and the counters agree with
the power, so no cycling)."""


@dataclass(frozen=True)
class Rulebook:
    """A rules file, the transitions the hour raises under it, and where its luminaires stand."""

    text: str
    expected: list[Transition]
    at_midnight: bool
    """Whether the luminaires stand where the hour is the middle of the night (the shipped
    lamp_failure judges only in the dark, away from twilight); else in Shanghai."""

    def place(self, base: datetime) -> tuple[float, float]:
        """(lat, lon): on the equator at the longitude of local midnight at minute 30 of the
        hour starting at `base` (the night runs ~18:00 to ~06:00 there all year)."""
        if not self.at_midnight:
            return 31.2, 121.4
        middle = base + timedelta(minutes=30)
        hours = middle.hour + middle.minute / 60
        lon = -15.0 * hours
        return 0.0, lon + 360.0 if lon < -180.0 else lon


FOCUSED = Rulebook(RULES, EXPECTED, at_midnight=False)


def power(name: str, minute: int) -> float:
    """What `name` draws at `minute`: 0 W while faulty, its rated 60 W otherwise."""
    return 0.0 if minute in FAULTY.get(name, ()) else 60.0


@dataclass(frozen=True)
class Run:
    """One pipeline's own topic root, state and devices (`{prefix}lum1`, …)."""

    settings: Settings
    prefix: str
    base: datetime
    """Minute 0 of the hour, in reading time."""
    expected: list[Transition]

    def device(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def message(self, name: str, minute: int) -> tuple[str, bytes]:
        """`name`'s reading at `minute` of the hour: the same bytes every time it is asked."""
        ts_ms = int((self.base + timedelta(minutes=minute)).timestamp() * 1000)
        topic = f"{self.settings.mqtt.topic_root}/north/{self.device(name)}/telemetry"
        # The counter agrees with the power drawn since the previous reading.
        energy = 1000.0 + sum(power(name, k) * STEP_MIN / 60 for k in HOUR if k < minute)
        return topic, reading(ts_ms, power=power(name, minute), energy=energy, seq=minute)

    def slots(self) -> list[list[tuple[str, bytes]]]:
        """The hour's readings by 5-minute slot, in `ts` order."""
        return [[self.message(name, minute) for name in DEVICES] for minute in HOUR]

    def hour(self) -> list[tuple[str, bytes]]:
        """Every device's readings of the hour, in `ts` order."""
        return [message for slot in self.slots() for message in slot]


def make_run(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    name: str,
    notify: Path | None = None,
    book: Rulebook = FOCUSED,
) -> Run:
    """A run with a topic root, state dir, client id and device ids of its own; its hour starts
    80 minutes ago (whole minutes)."""
    directory = tmp_path / name
    directory.mkdir()
    prefix = f"{name}{uuid.uuid4().hex[:4]}-"
    rules = directory / "rules.yaml"
    rules.write_text(book.text)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=80)
    lat, lon = book.place(start)
    inventory = directory / "inventory.csv"
    inventory.write_text(
        ",".join(COLUMNS)
        + "\n"
        + "".join(
            f"{prefix}{d},north,C01,{lat},{lon},60,100,{STEP_MIN * 60},LX-M60,2024-01-01\n"
            for d in DEVICES
        )
    )
    base = make_settings(
        directory / "state",
        mosquitto.url,
        influxdb.url,
        influx_db,
        f"t{uuid.uuid4().hex[:8]}/lighting",
    )
    settings = base.model_copy(
        update={
            "rules": RulesSettings(path=rules, notify=notify, tick_s=0.2),
            "inventory": InventorySettings(path=inventory),
            "metrics": MetricsSettings(enabled=True, port=0),
        }
    )
    return Run(settings, prefix, start, book.expected)


class AlertWatcher:
    """A subscriber to `luxtel/alerts/#`: the transitions luxtel published (payloads)."""

    def __init__(self, mosquitto: MosquittoServer) -> None:
        self.received: list[dict[str, Any]] = []
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"w-{uuid.uuid4().hex[:8]}",
        )
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.received.append(orjson.loads(m.payload))
        self.client.connect(mosquitto.host, mosquitto.port)
        self.client.subscribe("luxtel/alerts/#", qos=1)
        self.client.loop_start()
        assert subscribed.wait(30), "the broker did not acknowledge the subscription"

    def of(self, run: Run) -> list[Transition]:
        """`run`'s transitions as (rule, device without prefix, state, minute of the hour of
        `at`), in arrival order."""
        found = []
        for message in list(self.received):
            device = str(message["device_id"])
            if not device.startswith(run.prefix):
                continue
            at = datetime.fromisoformat(message["at"])
            found.append(
                (
                    str(message["rule"]),
                    device.removeprefix(run.prefix),
                    str(message["state"]),
                    minute_of(run, at),
                )
            )
        return found

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def alerts(mosquitto: MosquittoServer) -> Iterator[AlertWatcher]:
    watcher = AlertWatcher(mosquitto)
    yield watcher
    watcher.close()


def minute_of(run: Run, at: datetime) -> float:
    """The minute of `run`'s hour `at` falls on: a whole one for a transition stamped in
    reading time, a fraction (far past 60) for one stamped at the wall clock."""
    return (at - run.base).total_seconds() / 60


def alert_points(run: Run, influxdb: InfluxDBServer) -> list[Transition]:
    """`run`'s points in InfluxDB's `alerts`, as `AlertWatcher.of` gives them, in time order."""
    database = run.settings.influx.database
    found = []
    for point in rows(influxdb.url, database, "SELECT * FROM alerts"):
        device = str(point["device_id"])
        if device.startswith(run.prefix):
            at = datetime.fromtimestamp(point["time"] / 1000, UTC)
            found.append(
                (
                    str(point["rule"]),
                    device.removeprefix(run.prefix),
                    str(point["state"]),
                    minute_of(run, at),
                )
            )
    return found


def evaluated_at_least(running: RunningPipeline, goal: float) -> Callable[[], bool]:
    """Whether the rules have evaluated `goal` observations (their metrics come every second)."""
    return lambda: running.metric("luxtel_rules_evaluated_total") >= goal


def observed_at_least(running: RunningPipeline, goal: float) -> Callable[[], bool]:
    """Whether the rules have received `goal` observations (evaluated or given no verdict)."""
    return lambda: running.metric("luxtel_rules_observations_total") >= goal


def settle(running: RunningPipeline, run: Run, watcher: AlertWatcher, evaluated: int) -> None:
    """Wait until the rules evaluated `evaluated` observations and the expected transitions
    came, then a little longer for anything unexpected (a deadman tick, a late transition)."""
    wait_until(evaluated_at_least(running, evaluated), 60, f"{evaluated} evaluated")
    wait_until(lambda: len(watcher.of(run)) >= len(run.expected), 60, "the expected transitions")
    time.sleep(1.5)  # ~7 ticks of 0.2 s: a spurious alert would come meanwhile


@pytest.mark.integration
@pytest.mark.parametrize(
    "book",
    [FOCUSED, Rulebook(SHIPPED.read_text(), SHIPPED_EXPECTED, at_midnight=True)],
    ids=["focused", "shipped"],
)
def test_a_fault_in_a_replayed_backlog_raises_the_alerts_of_the_live_run(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    alerts: AlertWatcher,
    book: Rulebook,
) -> None:
    """Run A gets the hour live (published in `ts` order to a running luxtel, slot by slot
    with timer ticks in between); run B gets it as a backlog the broker queued for luxtel's
    persistent session while it was stopped. Both raise the same transitions, stamped at the
    same reading times, and nothing else."""
    live = make_run(tmp_path, mosquitto, influxdb, influx_db, "a", book=book)
    backlog = make_run(tmp_path, mosquitto, influxdb, influx_db, "b", book=book)
    total = len(live.hour())
    publisher = Publisher(mosquitto.url)
    try:
        with RunningPipeline(live.settings) as running:
            for slot in live.slots():
                goal = running.metric("luxtel_rules_evaluated_total") + len(slot)
                publisher.publish(slot)
                wait_until(evaluated_at_least(running, goal), 60, "the slot evaluated")
                time.sleep(0.3)  # a timer tick between slots, as live
            settle(running, live, alerts, total)
            assert running.metric("luxtel_messages_received_total") == total

        with RunningPipeline(backlog.settings):
            pass  # the broker now keeps a session (and queues QoS 1 messages) for its client id
        publisher.publish(backlog.hour())
        with RunningPipeline(backlog.settings) as running:
            settle(running, backlog, alerts, total)
            assert running.metric("luxtel_messages_received_total") == total, "the queued hour"
            assert running.metric("luxtel_rules_evaluated_total") == total
    finally:
        publisher.close()

    assert alerts.of(live) == book.expected
    assert alerts.of(backlog) == alerts.of(live)
    wait_until(lambda: len(alert_points(backlog, influxdb)) >= len(book.expected), 30, "points")
    assert alert_points(live, influxdb) == book.expected
    assert alert_points(backlog, influxdb) == alert_points(live, influxdb)


@pytest.mark.integration
def test_an_old_reading_redelivered_out_of_order_changes_nothing(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    alerts: AlertWatcher,
    webhook: Webhook,
) -> None:
    """lum2's lamp failure fires (notified); its normal reading of minute 5 arrives again, byte
    for byte: the failure stays firing, and later resolves at minute 55 as if it had not come.
    Once resolved (notified), its 0 W reading of minute 35 arrives again: no transition, no
    notice, no point, the same alert state. The rules see both, and give them no verdict."""
    notify = tmp_path / "notify.yaml"
    notify.write_text(
        f"receivers:\n  - name: crew\n    apprise: ['json://127.0.0.1:{webhook.port}/hook']\n"
        "route: {receiver: crew, group_by: [device_id], group_wait: 0s, group_interval: 1s,"
        " repeat_interval: 4h}\n"
    )
    run = make_run(tmp_path, mosquitto, influxdb, influx_db, "r", notify)
    total = len(run.hour())
    faulty = run.device("lum2")

    def notifications() -> list[str]:
        return [text for text in map(str, list(webhook.received)) if faulty in text]

    def state() -> str:
        listed = CliRunner().invoke(
            alerts_app,
            ["list", "--all", "--format", "json", "--state-dir", str(run.settings.state_dir)],
        )
        assert listed.exit_code == 0, listed.output
        return listed.output

    publisher = Publisher(mosquitto.url)
    try:
        with RunningPipeline(run.settings) as running:
            # Up to the fault's last reading, then the rest: an alert that fires and resolves
            # before its group's first flush needs no notice (rules/notify/dispatch.py).
            hour = run.hour()
            split = (40 // STEP_MIN + 1) * len(DEVICES)
            publisher.publish(hour[:split])
            wait_until(lambda: len(notifications()) == 1, 60, "the FIRING notice")
            wait_until(observed_at_least(running, split), 60, "the first part at the rules")
            firing = state()
            assert '"firing"' in firing, firing
            publisher.publish([run.message("lum2", 5)])
            wait_until(observed_at_least(running, split + 1), 60, "the old reading at the rules")
            time.sleep(1.0)  # ~5 ticks: a transition would come meanwhile
            assert alerts.of(run) == EXPECTED[:1]
            assert state() == firing
            publisher.publish(hour[split:])
            settle(running, run, alerts, total + 1)
            assert alerts.of(run) == EXPECTED
            wait_until(lambda: len(notifications()) == 2, 60, "the RESOLVED notice")
            transitions = alerts.of(run)
            points = alert_points(run, influxdb)
            before = state()
            observed = running.metric("luxtel_rules_observations_total")

            publisher.publish([run.message("lum2", 35)])
            wait_until(observed_at_least(running, observed + 1), 60, "the old reading at the rules")
            time.sleep(2.0)  # ~10 ticks, and the webhook's group_interval: a notice would come
            assert alerts.of(run) == transitions
            assert len(notifications()) == 2, notifications()
            assert alert_points(run, influxdb) == points
            assert state() == before
            assert (
                running.metric("luxtel_alerts_firing", rule="lamp_failure", severity="major") == 0
            )
    finally:
        publisher.close()
