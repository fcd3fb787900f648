"""The engine's shell against real receivers: a JSON webhook (Apprise json://, a local aiohttp
server), e-mail to a real SMTP server (aiosmtpd), a real Prometheus Alertmanager, InfluxDB's
`alerts` measurement; restarts on the SQLite state; failed sends retried, never lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from influx.client import InfluxTarget, InfluxWriter
from models import Observation
from rules.evaluation.evaluator import EngineState
from rules.evaluation.inventory import Inventory
from rules.evaluation.views import DeviceView
from rules.notify.config import NotifyConfig, parse_notify
from rules.notify.routing import DEFAULTS, build_route
from rules.runtime.engine import RulesEngine
from rules.runtime.store import Store
from servers import InfluxDBServer
from tests.rules_fixtures import (
    T0,
    AlertmanagerServer,
    Mailbox,
    Webhook,
    alertmanager,
    at,
    device,
    inventory,
    reading,
    smtp_server,
    webhook,
)
from tests.support import rows

__all__ = ["alertmanager", "smtp_server", "webhook"]  # fixtures used by name

SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "rules" / "streetlight.yaml"
CIRCUIT = [device(f"lum-{i}", circuit="C07") for i in range(4)]
NO_ROUTE = build_route(DEFAULTS)
"""Alerts recorded and published, nothing sent."""


class Clock:
    def __init__(self, base: datetime = T0) -> None:
        self.base = base
        self.now = at(0, base)

    def __call__(self) -> datetime:
        return self.now


def notify_to(receiver: str) -> NotifyConfig:
    return parse_notify(
        f"receivers:\n  - name: crew\n    {receiver}\n"
        "route: {receiver: crew, group_wait: 1m, group_interval: 5m, repeat_interval: 4h}\n"
    )


def engine(
    state_dir: Path,
    notify: NotifyConfig,
    clock: Clock,
    influx: InfluxWriter | None = None,
    published: list[tuple[str, bytes]] | None = None,
    devices: Inventory | None = None,
) -> RulesEngine:
    return RulesEngine(
        SHIPPED,
        devices or inventory(*CIRCUIT),
        state_dir,
        notify,
        influx,
        (lambda topic, payload: published.append((topic, payload)))
        if published is not None
        else None,
        clock,
        tick_s=0.02,
        params={"nominal_voltage_v": 220.0},
    )


def dark(minute: float, volts: float = 0.0, base: datetime = T0) -> list[Observation]:
    on = volts > 0
    return [
        reading(d.device_id, minute, base=base, lamp_on=on, power_w=60.0 * on, voltage_v=volts)
        for d in CIRCUIT
    ]


async def until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(600):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


async def settle() -> None:
    """A few of the engine's ticks."""
    await asyncio.sleep(0.15)


async def feed(
    inbox: asyncio.Queue[list[Observation] | None], clock: Clock, minutes: range, volts: float = 0.0
) -> None:
    for minute in minutes:
        clock.now = at(minute, clock.base)
        await inbox.put(dark(minute, volts, clock.base))
        await settle()


def test_restart_with_a_firing_alert_does_not_notify_again(
    tmp_path: Path, webhook: Webhook
) -> None:
    notify = notify_to(f"apprise: ['json://127.0.0.1:{webhook.port}/hook']")
    clock = Clock()

    async def first() -> None:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        task = asyncio.create_task(engine(tmp_path, notify, clock).run(inbox))
        await feed(inbox, clock, range(0, 16, 5))
        clock.now = at(17)
        await until(lambda: len(webhook.received) == 1, "the incident's notification")
        await inbox.put(None)
        await task

    async def second() -> None:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        restarted = engine(tmp_path, notify, clock)
        task = asyncio.create_task(restarted.run(inbox))
        await settle()
        assert sum(a.fired_at is not None for a in restarted.state.alerts.values()) == 4
        await feed(inbox, clock, range(20, 50, 5))
        assert len(webhook.received) == 1, "the restart must not notify the incident again"
        await feed(inbox, clock, range(50, 70, 5), volts=225.0)
        clock.now = at(90)
        await until(lambda: len(webhook.received) == 2, "the resolved notice")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert restarted.state.resolved == {}, "resolved alerts are let go once told"

    asyncio.run(first())
    asyncio.run(second())
    fired, resolved = webhook.received
    assert fired["title"] == "circuit C07: 4 of 4 luminaires without supply"
    assert fired["type"] == "failure"
    assert resolved["title"].startswith("RESOLVED: circuit C07")


def test_a_failed_notification_stays_due_and_is_retried(tmp_path: Path, webhook: Webhook) -> None:
    notify = notify_to(f"apprise: ['json://127.0.0.1:{webhook.port}/hook']")
    clock = Clock()
    webhook.fail = True
    rules = engine(tmp_path, notify, clock)

    async def scenario() -> None:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        task = asyncio.create_task(rules.run(inbox))
        await feed(inbox, clock, range(0, 16, 5))
        clock.now = at(17)
        await until(lambda: rules.counters.delivery_failures >= 1, "a failed attempt")
        store = Store(tmp_path / "rules.sqlite")
        assert store.outbox_counts()["unsent"] == 1
        store.close()
        webhook.fail = False
        clock.now = at(40)  # past any backoff
        await until(lambda: len(webhook.received) == 1, "the retried notification")
        await inbox.put(None)
        await task

    asyncio.run(scenario())
    store = Store(tmp_path / "rules.sqlite")
    assert store.outbox_counts() == {
        "unsent": 0,
        "failed_attempts": rules.counters.delivery_failures,
    }
    store.close()
    metric = rules.metrics.registry.get_sample_value
    crew = {"receiver": "crew", "channel": "apprise"}
    assert metric("luxtel_notifications_failed_total", crew) == rules.counters.delivery_failures
    assert metric("luxtel_notifications_sent_total", crew) == 1
    assert metric("luxtel_rules_outbox_due") == 0
    assert metric("luxtel_rules_observations_total") == 4 * len(CIRCUIT)
    assert (metric("luxtel_rules_evaluation_seconds_count") or 0) >= 4
    supply = {"rule": "supply_loss", "severity": "critical"}
    assert metric("luxtel_alerts_firing", supply) == len(CIRCUIT)
    assert metric("luxtel_alerts_firing", {"rule": "cycling", "severity": "major"}) == 0


def _transitions(published: list[tuple[str, bytes]]) -> list[tuple[str, str, str]]:
    """(rule, state, at) of each published transition."""
    out = []
    for _, payload in published:
        message = orjson.loads(payload)
        out.append((message["rule"], message["state"], message["at"]))
    return out


def _received(obs: Observation, clock: Clock) -> Observation:
    return replace(obs, received_at=clock.now)


def test_a_stale_reading_does_not_fire_on_the_timer(tmp_path: Path) -> None:
    """A 0 W reading sent an hour ago, then (15 min later in reading time) a normal one: the
    timer ticks in between, but no reading showed the lamp dark for lamp_failure's 30 min."""
    clock = Clock()
    published: list[tuple[str, bytes]] = []
    one = inventory(CIRCUIT[0])

    async def scenario() -> RulesEngine:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        rules = engine(tmp_path, NotifyConfig({}, NO_ROUTE), clock, None, published, one)
        task = asyncio.create_task(rules.run(inbox))
        clock.now = at(60)
        await inbox.put([_received(reading("lum-0", 0, power_w=0.0), clock)])
        await until(lambda: rules.counters.observations == 1, "the stale reading evaluated")
        await settle()
        assert set(rules.state.alerts) == {("lamp_failure", "lum-0")}, "pending"
        clock.now = at(61)
        await inbox.put([_received(reading("lum-0", 15), clock)])
        await until(lambda: rules.counters.observations == 2, "the next reading evaluated")
        clock.now = at(100)
        await settle()
        await inbox.put(None)
        await task
        return rules

    rules = asyncio.run(scenario())
    assert _transitions(published) == []
    assert rules.state.alerts == {}


def test_a_redelivered_old_reading_does_not_reopen_a_repaired_fault(tmp_path: Path) -> None:
    """A lamp failure fires, is repaired and resolves; luxtel restarts and one of its old 0 W
    readings is delivered again (QoS 1): no verdict, no second FIRING. The device's newest
    reading time survives the restart in SQLite."""
    clock = Clock()
    published: list[tuple[str, bytes]] = []
    one = inventory(CIRCUIT[0])
    quiet = NotifyConfig({}, NO_ROUTE)

    async def first() -> None:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        task = asyncio.create_task(engine(tmp_path, quiet, clock, None, published, one).run(inbox))
        for minute, watts in [(0, 0.0), (15, 0.0), (30, 0.0), (45, 60.0), (60, 60.0)]:
            clock.now = at(minute)
            await inbox.put([reading("lum-0", minute, power_w=watts)])
            await settle()
        await inbox.put(None)
        await task

    async def second() -> RulesEngine:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        rules = engine(tmp_path, quiet, clock, None, published, one)
        task = asyncio.create_task(rules.run(inbox))
        clock.now = at(70)
        await inbox.put([_received(reading("lum-0", 30, power_w=0.0), clock)])
        await until(lambda: rules.counters.observations == 1, "the redelivered reading evaluated")
        clock.now = at(100)
        await settle()
        await inbox.put(None)
        await task
        return rules

    asyncio.run(first())
    fired = [
        ("lamp_failure", "firing", at(30).isoformat()),
        ("lamp_failure", "resolved", at(60).isoformat()),
    ]
    assert _transitions(published) == fired
    rules = asyncio.run(second())
    assert _transitions(published) == fired, "the redelivered reading changed nothing"
    assert rules.state.alerts == {}


def test_a_restart_after_an_outage_is_not_every_luminaire_silent(tmp_path: Path) -> None:
    """luxtel down for ten hours: at its first tick after the restart the deadman has nothing
    to say (the backlog the broker held has yet to arrive); a luminaire that then stays
    silent for its limit (3 × 15 min) is told."""
    clock = Clock()
    published: list[tuple[str, bytes]] = []
    quiet = NotifyConfig({}, NO_ROUTE)
    two = inventory(CIRCUIT[0], CIRCUIT[1])

    async def before() -> None:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        task = asyncio.create_task(engine(tmp_path, quiet, clock, None, published, two).run(inbox))
        await inbox.put([reading("lum-0", 0), reading("lum-1", 0)])
        await settle()
        await inbox.put(None)
        await task

    async def after() -> RulesEngine:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        rules = engine(tmp_path, quiet, clock, None, published, two)
        task = asyncio.create_task(rules.run(inbox))
        await settle()
        assert rules.state.alerts == {}, "no silence alarm at the restart"
        backlog = [_received(reading("lum-0", m), clock) for m in range(15, 300, 15)]
        await inbox.put(backlog)
        await until(lambda: rules.counters.observations == len(backlog), "the backlog")
        clock.now = at(600 + 46)
        await settle()
        await inbox.put(None)
        await task
        return rules

    asyncio.run(before())
    clock.now = at(600)
    rules = asyncio.run(after())
    assert set(rules.state.alerts) == {
        ("communication_loss", "lum-0"),
        ("communication_loss", "lum-1"),
    }
    assert [t for t in _transitions(published) if t[0] == "communication_loss"] == [
        ("communication_loss", "firing", at(646).isoformat()),
        ("communication_loss", "firing", at(646).isoformat()),
    ]


def test_rules_behind_the_journal_judge_silence_at_what_they_have_read(tmp_path: Path) -> None:
    """The rules process an hour behind the journal (a backlog after a power cut, a slow
    disk): the deadman judges silence at the time luxtel received what the rules have read so
    far (`contact`), not at the wall clock — the luminaires' newer readings are in the journal,
    unread. Once caught up (`contact` None) the wall clock judges again."""
    clock = Clock()
    published: list[tuple[str, bytes]] = []
    quiet = NotifyConfig({}, NO_ROUTE)
    two = inventory(CIRCUIT[0], CIRCUIT[1])
    heard_until: list[datetime | None] = [at(5)]

    async def main() -> RulesEngine:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        rules = engine(tmp_path, quiet, clock, None, published, two)
        rules.contact = lambda: heard_until[0]
        task = asyncio.create_task(rules.run(inbox))
        await inbox.put(
            [_received(reading("lum-0", 0), clock), _received(reading("lum-1", 0), clock)]
        )
        await until(lambda: rules.counters.observations == 2, "the readings")
        clock.now = at(60)
        await settle()
        assert rules.state.alerts == {}, "an hour of the rules' own lag is no silence"
        heard_until[0] = None
        await settle()
        await inbox.put(None)
        await task
        return rules

    rules = asyncio.run(main())
    assert set(rules.state.alerts) == {
        ("communication_loss", "lum-0"),
        ("communication_loss", "lum-1"),
    }


def test_device_views_survive_a_restart(tmp_path: Path) -> None:
    """The previous reading `previous.*` reads is in SQLite, so a restart does not blind the
    rules that compare a reading with the one before, nor lets an old reading be judged again;
    so are the newest status's time, where the timer counts a device's silence from, and the
    newest status `ts` judged."""
    view = DeviceView(
        "north", at(15), (True, False), {"lamp_on": False, "energy_wh": 7.5}, at(15), at(12), at(9)
    )
    state = EngineState(at(0), devices={"lum-0": view})
    store = Store(tmp_path / "rules.sqlite")
    store.save(EngineState(), state, {}, ["lum-0"], [], at(15))
    store.close()
    store = Store(tmp_path / "rules.sqlite")
    loaded, _ = store.load()
    store.close()
    assert loaded.devices == {"lum-0": view}


def test_email_reaches_a_real_smtp_server(tmp_path: Path, smtp_server: tuple[int, Mailbox]) -> None:
    port, box = smtp_server
    url = f"mailto://127.0.0.1:{port}?from=luxtel@example.org&to=crew@example.org"
    clock = Clock()

    async def scenario() -> None:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        task = asyncio.create_task(
            engine(tmp_path, notify_to(f"apprise: ['{url}']"), clock).run(inbox)
        )
        await feed(inbox, clock, range(0, 16, 5))
        clock.now = at(17)
        await until(lambda: len(box.messages) == 1, "the e-mail")
        await inbox.put(None)
        await task

    asyncio.run(scenario())
    recipients, subject, body = box.messages[0]
    assert recipients == ["crew@example.org"]
    assert subject == "circuit C07: 4 of 4 luminaires without supply"
    assert "No supply at lum-0 (C07, north)" in body


def test_alerts_reach_a_real_alertmanager(tmp_path: Path, alertmanager: AlertmanagerServer) -> None:
    clock = Clock(datetime.now(UTC) - timedelta(minutes=20))  # Alertmanager keeps time itself

    async def scenario() -> None:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        rules = engine(tmp_path, notify_to(f"alertmanager: {alertmanager.url}"), clock)
        task = asyncio.create_task(rules.run(inbox))
        await feed(inbox, clock, range(0, 16, 5))
        clock.now = at(17, clock.base)
        await until(lambda: rules.counters.delivered == 1, "the POST to Alertmanager")
        await inbox.put(None)
        await task

    asyncio.run(scenario())
    alerts = alertmanager.alerts()
    assert sorted(a["labels"]["device_id"] for a in alerts) == [d.device_id for d in CIRCUIT]
    first = alerts[0]
    assert first["labels"]["alertname"] == "supply_loss"
    assert first["labels"]["circuit"] == "C07"
    assert first["labels"]["severity"] == "critical"
    assert first["status"]["state"] == "active"


@pytest.mark.integration
def test_transitions_go_to_influxdb_and_mqtt(
    tmp_path: Path, influxdb: InfluxDBServer, influx_db: str
) -> None:
    clock = Clock()
    published: list[tuple[str, bytes]] = []
    one = inventory(CIRCUIT[0])

    async def scenario() -> None:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        async with InfluxWriter(InfluxTarget(influxdb.url, influx_db)) as writer:
            await writer.create_database()
            rules = engine(
                tmp_path,
                notify_to("apprise: ['json://127.0.0.1:1/']"),
                clock,
                writer,
                published,
                one,
            )
            task = asyncio.create_task(rules.run(inbox))
            for minute in range(0, 61, 5):
                clock.now = at(minute)
                hot = 98.0 if minute < 30 else 45.0
                await inbox.put([reading("lum-0", minute, driver_temp_c=hot)])
                await settle()
            await until(lambda: rules.counters.transitions == 2, "firing and resolved")
            await inbox.put(None)
            await task

    asyncio.run(scenario())
    points = rows(influxdb.url, influx_db, "SELECT * FROM alerts")
    assert [(p["rule"], p["state"], p["device_id"], p["zone"], p["severity"]) for p in points] == [
        ("driver_overtemp", "firing", "lum-0", "north", "major"),
        ("driver_overtemp", "resolved", "lum-0", "north", "major"),
    ]
    assert points[0]["time"] == int(at(10).timestamp() * 1000)
    assert points[0]["value"] == 98.0
    assert "lum-0" in points[0]["summary"]
    assert [topic for topic, _ in published] == ["luxtel/alerts/north/lum-0"] * 2
    messages: list[dict[str, Any]] = [orjson.loads(payload) for _, payload in published]
    assert [m["state"] for m in messages] == ["firing", "resolved"]


@pytest.mark.integration
def test_each_luminaire_state_goes_to_influxdb(
    tmp_path: Path, influxdb: InfluxDBServer, influx_db: str
) -> None:
    """On its ticks the engine writes a `luminaire_state` point per inventory luminaire: lit,
    dark (its lamp_failure only pending), overheating (driver_overtemp firing), never heard."""
    clock = Clock()
    expected = {
        "lum-0": ("on", 2, 0),
        "lum-1": ("alarm", 3, 1),
        "lum-2": ("off", 1, 0),
        "lum-3": ("silent", 0, 0),
    }

    def observations(minute: int) -> list[Observation]:
        return [
            reading("lum-0", minute),
            reading("lum-1", minute, driver_temp_c=98.0),
            reading("lum-2", minute, lamp_on=False, power_w=0.0),
        ]

    async def latest(writer: InfluxWriter) -> dict[str, tuple[str, int, int]]:
        answer = await writer.query(
            'SELECT last("state") AS "state", "state_code", "firing", "lat", "lon" '
            'FROM "luminaire_state" GROUP BY "device_id", "zone", "circuit"'
        )
        shown: dict[str, tuple[str, int, int]] = {}
        for series in answer["results"][0].get("series", []):
            row = dict(zip(series["columns"], series["values"][0], strict=True))
            tags = series["tags"]
            assert (tags["zone"], tags["circuit"], row["lat"], row["lon"]) == (
                "north",
                "C07",
                31.23,
                121.47,
            )
            shown[tags["device_id"]] = (row["state"], row["state_code"], row["firing"])
        return shown

    async def scenario() -> RulesEngine:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        async with InfluxWriter(InfluxTarget(influxdb.url, influx_db)) as writer:
            rules = RulesEngine(
                SHIPPED,
                inventory(*CIRCUIT),
                tmp_path,
                influx=writer,
                clock=clock,
                tick_s=0.02,
                state_interval_s=0.05,
            )
            task = asyncio.create_task(rules.run(inbox))
            for minute in range(0, 11, 5):
                clock.now = at(minute)
                await inbox.put(observations(minute))
                await settle()
            shown: dict[str, tuple[str, int, int]] = {}
            for _ in range(600):
                shown = await latest(writer)
                if shown == expected:
                    break
                await asyncio.sleep(0.05)
            assert shown == expected
            await inbox.put(None)
            await task
        return rules

    rules = asyncio.run(scenario())
    written = rules.metrics.registry.get_sample_value("luxtel_rules_state_points_total") or 0
    assert written >= len(CIRCUIT)  # at least the snapshot read above, every luminaire in it
