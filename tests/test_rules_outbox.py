"""The outbox is bounded in bytes (`rules.outbox_max_bytes`), on the real SQLite store: rows
delivered or given up are pruned, oldest first (deliveries before give-ups, which `luxtel alerts
list` shows) and after `rules.outbox_keep_s`; rows not yet delivered are never pruned, and when
they alone pass the bound the store says so rather than drop one."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

from structlog.testing import capture_logs

from luxtel.settings import Settings
from models import Observation
from rules.evaluation.evaluator import EngineState
from rules.runtime.store import OUTBOX_MAX_BYTES, ROW_OVERHEAD, OutboxBound, OutboxEntry, Store
from tests.rules_fixtures import Webhook, at, webhook
from tests.test_rules_engine import Clock, engine, feed, notify_to, until

__all__ = ["webhook"]  # a fixture used by name

DEFAULT_MAX_BYTES = 8 * 1024**2
"""`rules.outbox_max_bytes`'s default (`luxtel.settings`)."""
BODY = 128 * 1024
ROW = BODY + len("crew#0") + ROW_OVERHEAD
"""The bytes counted for a row of `BODY` (without an error)."""


def _owe(store: Store, minute: float, body: bytes, count: int = 1) -> None:
    """One evaluation cycle that decided on `count` notifications of `body`."""
    state = EngineState()
    entries = [OutboxEntry("apprise", "crew", 0, body) for _ in range(count)]
    store.save(state, state, {}, [], entries, at(minute))


def _deliver(store: Store, minute: float) -> None:
    for item in store.due(at(minute)):
        store.sent(item.id, at(minute))


def test_delivered_rows_do_not_grow_the_state_file_without_bound(tmp_path: Path) -> None:
    """Twice the default bound of notifications, each delivered: the file stays near the bound
    (SQLite reuses the pages of pruned rows)."""
    path = tmp_path / "rules.sqlite"
    store = Store(path)
    for n in range(2 * DEFAULT_MAX_BYTES // BODY):
        _owe(store, n, bytes([n % 256]) * BODY)
        _deliver(store, n)
    store.close()
    assert path.stat().st_size <= DEFAULT_MAX_BYTES * 5 // 4


def _rows(path: Path) -> list[tuple[int, bool, bool]]:
    """(id, sent, given up) of every outbox row, read with SQLite itself."""
    db = sqlite3.connect(path)
    try:
        return [
            (int(i), sent is not None, gave_up is not None)
            for i, sent, gave_up in db.execute(
                "SELECT id, sent_at, gave_up_at FROM outbox ORDER BY id"
            )
        ]
    finally:
        db.close()


def test_undelivered_rows_are_never_pruned_and_the_store_says_they_pass_the_bound(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rules.sqlite"
    store = Store(path, OutboxBound(max_bytes=10 * ROW))
    _owe(store, 0, b"x" * BODY, count=20)
    for item in store.due(at(0))[:5]:
        store.sent(item.id, at(1))
    size = store.prune(at(2))
    assert size.undelivered_bytes > size.max_bytes
    assert size.over
    # The third delivery passed a quarter of the bound: the three went; two are kept.
    assert size.delivered_bytes == 2 * ROW
    assert store.unsent() == 15
    store.close()
    assert [sent for _, sent, _ in _rows(path)] == [True] * 2 + [False] * 15


def test_deliveries_go_before_give_ups_and_failed_attempts_are_still_counted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rules.sqlite"
    store = Store(path, OutboxBound(max_bytes=8 * ROW + 2 * 100))
    _owe(store, 0, b"x" * BODY, count=6)
    items = store.due(at(0))
    for item in items[:3]:
        store.failed(item.id, "answered 503", at(1))
        store.give_up(item.id, "answered 400", at(2))
    for item in items[3:]:
        store.failed(item.id, "answered 503", at(1))
        store.sent(item.id, at(2))
    assert store.outbox_counts() == {"unsent": 0, "failed_attempts": 9}
    _owe(store, 3, b"y" * BODY, count=4)
    for item in store.due(at(3)):
        store.sent(item.id, at(4))
    # 10 rows of 8 allowed: down to 6, the 4 oldest deliveries first (3 of before, 1 of now)
    # (the give-ups' errors, 12 bytes each, fit in the 200 bytes of slack)
    assert [g.error for g in store.given_up()] == ["answered 400"] * 3
    assert store.outbox_counts() == {"unsent": 0, "failed_attempts": 9}
    store.close()
    assert [(sent, gave_up) for _, sent, gave_up in _rows(path)] == [(False, True)] * 3 + [
        (True, False)
    ] * 3
    reopened = Store(path)
    assert reopened.outbox_counts() == {"unsent": 0, "failed_attempts": 9}
    assert reopened.outbox_size().delivered_bytes == store.outbox_size().delivered_bytes
    reopened.close()


def test_delivered_rows_are_pruned_after_keep(tmp_path: Path) -> None:
    store = Store(tmp_path / "rules.sqlite", OutboxBound(keep=timedelta(hours=1)))
    _owe(store, 0, b"old", count=2)
    old = store.due(at(0))
    store.sent(old[0].id, at(1))
    store.give_up(old[1].id, "answered 400", at(1))
    _owe(store, 30, b"owed")
    _owe(store, 50, b"new")
    store.sent(store.due(at(50))[-1].id, at(51))
    store.prune(at(60))
    assert len(store.given_up()) == 1, "not an hour old yet"
    store.prune(at(62))
    assert store.given_up() == []
    assert [i.body for i in store.due(at(62))] == [b"owed"]
    assert [e.body for e in store.sent_items("apprise")] == [b"new"]
    store.close()


def test_the_default_bound_is_the_settings_default() -> None:
    assert Settings().rules.outbox_max_bytes == OUTBOX_MAX_BYTES == DEFAULT_MAX_BYTES
    assert Settings().rules.outbox_keep_s == OutboxBound().keep.total_seconds()


def test_the_engine_prunes_what_it_delivered_and_says_when_the_undelivered_pass_the_bound(
    tmp_path: Path, webhook: Webhook
) -> None:
    """A real webhook, down then back: while its notifications wait they pass a bound of one
    byte (logged once, and on /metrics) and stay; once delivered they are pruned, and the
    failed attempts are still counted."""
    clock = Clock()
    rules = engine(tmp_path, notify_to(f"apprise: ['json://127.0.0.1:{webhook.port}/hook']"), clock)
    rules.outbox = OutboxBound(max_bytes=1)
    metric = rules.metrics.registry.get_sample_value
    webhook.fail = True

    async def scenario() -> None:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        task = asyncio.create_task(rules.run(inbox))
        await feed(inbox, clock, range(0, 16, 5))
        clock.now = at(17)
        await until(lambda: rules.counters.delivery_failures >= 1, "a failed attempt")
        await until(lambda: metric("luxtel_rules_outbox_over_bound") == 1, "the bound passed")
        assert (metric("luxtel_rules_outbox_bytes", {"state": "undelivered"}) or 0) > 1
        webhook.fail = False
        clock.now = at(40)  # past any backoff
        await until(lambda: len(webhook.received) == 1, "the retried notification")
        await until(lambda: metric("luxtel_rules_outbox_over_bound") == 0, "back under")
        await inbox.put(None)
        await task

    with capture_logs() as logs:
        asyncio.run(scenario())
    events = [e["event"] for e in logs if e["event"].startswith("outbox_")]
    assert events == ["outbox_over_bound", "outbox_back_under_bound"]
    assert metric("luxtel_rules_outbox_bytes", {"state": "delivered"}) == 0
    assert metric("luxtel_rules_outbox_max_bytes") == 1
    assert _rows(tmp_path / "rules.sqlite") == []
    store = Store(tmp_path / "rules.sqlite")
    assert store.outbox_counts() == {
        "unsent": 0,
        "failed_attempts": rules.counters.delivery_failures,
    }
    store.close()
