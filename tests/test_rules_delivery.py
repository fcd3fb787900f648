"""Delivery against real receivers on loopback: a receiver that refuses a notification for good
(an Alertmanager API answering 400, an Apprise URL no plugin knows) is recorded once, shown by
`luxtel alerts list` and not retried; the receivers of one notification are sent concurrently,
so a slow one does not hold up the others."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from typer.testing import CliRunner

from luxtel.commands.rules import alerts_app
from models import Observation
from rules.notify.apprise_log import refused_for_good
from rules.runtime.store import OutboxEntry, Store
from servers import free_port
from tests.rules_fixtures import at, serve_http
from tests.test_rules_engine import Clock, engine, feed, notify_to, settle, until

Handler = Callable[[web.Request], Awaitable[web.Response]]


@dataclass
class Http:
    """An aiohttp server in a thread of its own on a free loopback port; `requests` counts
    what reached each path."""

    port: int
    requests: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def http() -> Iterator[Callable[[Handler], Http]]:
    stops: list[Callable[[], None]] = []

    def start(handler: Handler) -> Http:
        server = Http(free_port())

        async def counted(request: web.Request) -> web.Response:
            server.requests[request.path] = server.requests.get(request.path, 0) + 1
            return await handler(request)

        stops.append(serve_http(server.port, counted))
        return server

    yield start
    for stop in stops:
        stop()


def run_until_refused(state_dir: Path, receiver: str) -> int:
    """Fire an incident to `receiver`, wait for its refusal, then let the clock pass any
    backoff and the engine tick a while; returns the delivery failures counted."""
    clock = Clock()
    rules = engine(state_dir, notify_to(receiver), clock)

    async def scenario() -> None:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        task = asyncio.create_task(rules.run(inbox))
        await feed(inbox, clock, range(0, 16, 5))
        clock.now = at(17)
        await until(lambda: rules.counters.delivery_failures >= 1, "the refused notification")
        clock.now = at(120)  # past any backoff: a retryable item would be tried again now
        for _ in range(5):
            await settle()
        await inbox.put(None)
        await task

    asyncio.run(scenario())
    return rules.counters.delivery_failures


def test_an_alertmanager_400_is_recorded_once_shown_and_not_retried(
    tmp_path: Path, http: Callable[[Handler], Http]
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=400, text="bad alert: labels missing")

    server = http(refuse)
    failures = run_until_refused(tmp_path, f"alertmanager: http://127.0.0.1:{server.port}")
    assert server.requests == {"/api/v2/alerts": 1}, "a 400 is not worth a second attempt"
    assert failures == 1
    store = Store(tmp_path / "rules.sqlite")
    try:
        given_up = store.given_up()
        assert store.unsent() == 0
        assert store.next_due() is None
    finally:
        store.close()
    assert [(g.kind, g.receiver, g.attempts) for g in given_up] == [("alertmanager", "crew", 1)]
    assert "answered 400" in given_up[0].error
    shown = CliRunner().invoke(
        alerts_app, ["list", "--state-dir", str(tmp_path)], env={"COLUMNS": "200"}
    )
    assert shown.exit_code == 0, shown.output
    assert "1 notification(s) failed for good" in shown.output
    assert "crew" in shown.output
    assert "answered 400" in shown.output


def test_a_webhook_answering_400_behind_an_apprise_url_is_given_up_once(
    tmp_path: Path, http: Callable[[Handler], Http]
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=400, text="unknown channel")

    server = http(refuse)
    failures = run_until_refused(tmp_path, f"apprise: ['json://127.0.0.1:{server.port}/hook']")
    assert server.requests == {"/hook": 1}
    assert failures == 1
    store = Store(tmp_path / "rules.sqlite")
    try:
        given_up = store.given_up()
    finally:
        store.close()
    assert [(g.kind, g.receiver, g.index) for g in given_up] == [("apprise", "crew", 0)]
    assert "error=400" in given_up[0].error


def test_a_webhook_answering_503_or_429_behind_an_apprise_url_is_retried(
    tmp_path: Path, http: Callable[[Handler], Http]
) -> None:
    async def busy(request: web.Request) -> web.Response:
        status = 429 if sum(server.requests.values()) % 2 else 503
        return web.Response(status=status, text="busy")

    server = http(busy)
    failures = run_until_refused(tmp_path, f"apprise: ['json://127.0.0.1:{server.port}/hook']")
    assert failures >= 2
    assert server.requests["/hook"] == failures
    store = Store(tmp_path / "rules.sqlite")
    try:
        assert store.given_up() == []
        assert store.unsent() == 1
    finally:
        store.close()


@pytest.mark.parametrize(
    ("warnings", "for_good"),
    [
        (["Failed to send JSON POST notification: Bad Request, error=400."], True),
        (["Failed to send Slack notification: Not Found, error=404."], True),
        (["Failed to send JSON POST notification: error=429."], False),
        (["Failed to send JSON POST notification: Request Timeout, error=408."], False),
        (["Failed to send JSON POST notification: Service Unavailable, error=503."], False),
        (["A Connection error occurred sending JSON notification to 127.0.0.1."], False),
        ([], False),
        (["…error=400.", "…error=502."], False),
    ],
)
def test_which_apprise_failures_are_for_good(warnings: list[str], for_good: bool) -> None:
    assert refused_for_good(warnings) is for_good


def test_a_url_apprise_does_not_know_is_given_up_at_once(tmp_path: Path) -> None:
    failures = run_until_refused(tmp_path, "apprise: ['nosuchscheme://crew.example.org']")
    assert failures == 1
    store = Store(tmp_path / "rules.sqlite")
    try:
        given_up = store.given_up()
    finally:
        store.close()
    assert [(g.kind, g.receiver, g.index) for g in given_up] == [("apprise", "crew", 0)]
    assert "not a valid Apprise URL" in given_up[0].error


def test_a_slow_receiver_does_not_hold_up_a_fast_one(
    tmp_path: Path, http: Callable[[Handler], Http]
) -> None:
    """The slow URL comes first in the receiver's list and answers only once the fast one has
    been reached: sent one after another, the fast one would wait behind it (and the slow one
    time out at Apprise's 4 s); sent concurrently, both are delivered."""
    reached_fast = threading.Event()
    slow_pending_when_fast_arrived: list[bool] = []
    slow_answered = threading.Event()

    async def slow(request: web.Request) -> web.Response:
        await request.read()
        for _ in range(400):  # at most 20 s, so the server always ends
            if reached_fast.is_set():
                break
            await asyncio.sleep(0.05)
        slow_answered.set()
        return web.Response(text="ok")

    async def fast(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        slow_pending_when_fast_arrived.append(not slow_answered.is_set())
        reached_fast.set()
        return web.Response(text="ok")

    slow_server, fast_server = http(slow), http(fast)
    urls = [
        f"json://127.0.0.1:{slow_server.port}/hook",
        f"json://127.0.0.1:{fast_server.port}/hook",
    ]
    clock = Clock()
    rules = engine(tmp_path, notify_to(f"apprise: {orjson.dumps(urls).decode()}"), clock)

    async def scenario() -> None:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        task = asyncio.create_task(rules.run(inbox))
        await feed(inbox, clock, range(0, 16, 5))
        clock.now = at(17)
        await until(
            lambda: rules.counters.delivered + rules.counters.delivery_failures >= 2,
            "both receivers' outcomes",
        )
        await inbox.put(None)
        await task

    asyncio.run(scenario())
    assert slow_pending_when_fast_arrived == [True], "the fast receiver waited for the slow one"
    assert (rules.counters.delivered, rules.counters.delivery_failures) == (2, 0)


def test_a_state_dir_of_the_earlier_version_keeps_its_outbox(tmp_path: Path) -> None:
    """The outbox table as earlier versions made it (no `gave_up_at`): opened, it is migrated
    in place and its due items read back as typed entries."""
    path = tmp_path / "rules.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, target TEXT NOT NULL,
            body BLOB NOT NULL, created_at TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL, last_error TEXT, sent_at TEXT
        );
        """
    )
    stamp = at(0).isoformat()
    db.executemany(
        "INSERT INTO outbox (channel, target, body, created_at, next_attempt_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            ("apprise", "crew#1", b"{}", stamp, stamp),
            ("alertmanager", "city", b"[]", stamp, stamp),
            ("influx", "alerts", b"alerts x=1", stamp, stamp),
        ],
    )
    db.commit()
    db.close()
    store = Store(path)
    try:
        due = store.due(at(1))
        assert [i.entry for i in due] == [
            OutboxEntry("apprise", "crew", 1, b"{}"),
            OutboxEntry("alertmanager", "city", 0, b"[]"),
            OutboxEntry("influx", "alerts", 0, b"alerts x=1"),
        ]
        store.give_up(due[1].id, "answered 400", at(1))
        assert store.unsent() == 2
        assert [(g.receiver, g.error) for g in store.given_up()] == [("city", "answered 400")]
    finally:
        store.close()
