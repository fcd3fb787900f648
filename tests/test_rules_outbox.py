"""The outbox is bounded in bytes (`rules.outbox_max_bytes`), on the real SQLite store: rows
delivered or given up are pruned, oldest first (deliveries before give-ups, which `luxtel alerts
list` shows) and after `rules.outbox_keep_s`; rows not yet delivered are never pruned, and when
they alone pass the bound the store says so rather than drop one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rules.evaluation.evaluator import EngineState
from rules.runtime.store import OutboxEntry, Store
from tests.rules_fixtures import at

DEFAULT_MAX_BYTES = 8 * 1024**2
"""`rules.outbox_max_bytes`'s default (`luxtel.settings`)."""
BODY = 128 * 1024


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
