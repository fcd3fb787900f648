"""The engine's state in SQLite (`{state_dir}/rules.sqlite`): alerts, device views, incident
groups, silences, acknowledgements, and the outbox of notifications and InfluxDB points.

One transaction per evaluation cycle holds the new alert state, the groups' "already told"
sets and the notifications that cycle decided on, so a restart neither forgets a firing alert
nor notifies it again, and a notification decided on is never lost: it stays in the outbox,
due, until a receiver takes it (at least once: a crash between a send and its record repeats it)
or refuses it for good (`NotifyError.retryable` false: a bad URL, a 4xx): such an item is kept,
marked `gave_up_at` with its error, for `luxtel alerts list`, and never tried again. The same
transaction holds the journal position the state reflects (`meta.journal_position`,
`rules.runtime.journal`): a restarted rules process reads the journal on from there, so what it
evaluated before is neither evaluated again in effect nor skipped.

The outbox is bounded in bytes (`OutboxBound`, from `rules.outbox_max_bytes` and
`rules.outbox_keep_s`): rows delivered or given up are pruned, oldest first — deliveries before
give-ups, which `luxtel alerts list` shows — once past `keep` or once the outbox passes
`max_bytes` (down to three quarters of it, so a prune is not paid per notification). A row's
bytes are an estimate: its body, target and error plus `ROW_OVERHEAD`. Rows not yet delivered
are never pruned: when they alone pass the bound, `OutboxSize.over` says so (the engine logs it
and exports it), the outbox grows until the receivers take them, and delivered rows are kept
to a quarter of the bound meanwhile (pruned once past it, not on every delivery). The failed
attempts of pruned rows are kept as a total (`meta.pruned_failed_attempts`), so `luxtel alerts
list`'s count never goes down.

What bounds the file: SQLite reuses the pages pruned rows free (no VACUUM, auto_vacuum off), so
`rules.sqlite` stays at its high-water mark: the other tables (alerts, device views: one row per
luminaire, groups, silences) plus `max_bytes` of outbox (at most a quarter more while
undelivered rows fill most of it) and b-tree slack, and more only while undelivered rows alone
pass it. The WAL beside it is checkpointed back into it every 1000 pages (SQLite's
default, ~4 MiB), and removed on close.

What a cycle owes is an `OutboxEntry` (kind, receiver, index, body); the table keeps the
`channel` / `target` columns of earlier versions (`target` is `receiver#index` for an Apprise
URL, the receiver's name for Alertmanager, `alerts` for InfluxDB), so existing state dirs keep
working; `gave_up_at` is added to them in place.
"""

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson

from rules.evaluation.alerts import Alert
from rules.evaluation.evaluator import EngineState
from rules.evaluation.views import DeviceView
from rules.notify.dispatch import Group, Silence
from rules.notify.routing import Matcher
from rules.runtime.journal import START, Position

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS devices (device_id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS groups (key TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS acks (alert_id TEXT PRIMARY KEY, at TEXT NOT NULL, reason TEXT);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    sent_at TEXT,
    gave_up_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sent_at, next_attempt_at);
"""

OUTBOX_MAX_BYTES = 8 * 1024**2
"""`rules.outbox_max_bytes`'s default: some thousands of notifications."""
OUTBOX_KEEP = timedelta(days=7)
"""`rules.outbox_keep_s`'s default."""
ROW_OVERHEAD = 200
"""Bytes counted for a row beside its body, target and error: its times, counts and b-tree
cell (an estimate; the same number in `_SIZED`)."""
PRUNE_EVERY = timedelta(minutes=1)
"""Least time (the wall clock of `prune`'s `now`) between two scans for rows past `keep`."""
_SIZED = """
CREATE TEMP VIEW IF NOT EXISTS outbox_sized AS SELECT
    id, attempts, sent_at, gave_up_at,
    LENGTH(body) + LENGTH(CAST(target AS BLOB)) + COALESCE(LENGTH(CAST(last_error AS BLOB)), 0)
        + 200 AS size,
    sent_at IS NOT NULL OR gave_up_at IS NOT NULL AS delivered,
    attempts - (sent_at IS NOT NULL) AS failures
FROM outbox;
"""
"""Each outbox row's bytes (estimated), whether it is delivered (or given up), and its failed
attempts."""

OutboxKind = Literal["apprise", "alertmanager", "influx"]
"""An Apprise URL of a receiver, a receiver's Alertmanager, or InfluxDB's `alerts` points."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One thing owed to one place: a notification to one URL of a receiver, or `alerts` points."""

    kind: OutboxKind
    receiver: str
    """The receiver's name (`alerts` for InfluxDB)."""
    index: int
    """Which of the receiver's Apprise URLs (0 for the others)."""
    body: bytes


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """An outbox entry as stored, with its delivery record."""

    id: int
    entry: OutboxEntry
    attempts: int
    created_at: datetime

    @property
    def kind(self) -> OutboxKind:
        return self.entry.kind

    @property
    def receiver(self) -> str:
        return self.entry.receiver

    @property
    def body(self) -> bytes:
        return self.entry.body


@dataclass(frozen=True, slots=True)
class GivenUp:
    """An outbox entry a receiver refused for good (for `luxtel alerts list`)."""

    kind: OutboxKind
    receiver: str
    index: int
    created_at: datetime
    gave_up_at: datetime
    attempts: int
    error: str


@dataclass(frozen=True, slots=True)
class OutboxBound:
    """How much of the outbox's delivered history is kept."""

    max_bytes: int = OUTBOX_MAX_BYTES
    """The outbox's bytes (`ROW_OVERHEAD`'s estimate) past which delivered rows are pruned."""
    keep: timedelta = OUTBOX_KEEP
    """How long a delivered or given-up row is kept at most (from its `sent_at` / `gave_up_at`,
    the engine's wall clock)."""


@dataclass(frozen=True, slots=True)
class OutboxSize:
    """The outbox's bytes (estimated), delivered and not, against its bound."""

    delivered_bytes: int
    undelivered_bytes: int
    max_bytes: int

    @property
    def over(self) -> bool:
        """Rows not yet delivered alone pass the bound (they are never pruned)."""
        return self.undelivered_bytes > self.max_bytes


DEFAULT_BOUND = OutboxBound()


def _entry_size(entry: OutboxEntry) -> int:
    return len(entry.body) + len(_target(entry).encode()) + ROW_OVERHEAD


def _target(entry: OutboxEntry) -> str:
    return f"{entry.receiver}#{entry.index}" if entry.kind == "apprise" else entry.receiver


def _entry(channel: str, target: str, body: bytes) -> OutboxEntry:
    """The entry of a stored row; a channel this version does not know is kept as is, and the
    deliverer gives up on it."""
    kind: Any = channel
    receiver, index = target, 0
    if channel == "apprise":
        name, _, number = target.rpartition("#")
        if name and number.isdigit():
            receiver, index = name, int(number)
    return OutboxEntry(kind, receiver, index, body)


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def alert_to_json(alert: Alert) -> bytes:
    data = asdict(alert)
    del data["_id"]  # a cache, not state
    data["labels"] = [list(pair) for pair in alert.labels]
    return orjson.dumps(data)


def alert_from_json(body: bytes) -> Alert:
    data: dict[str, Any] = orjson.loads(body)
    for key in ("active_at", "fired_at", "resolved_at", "cleared_at", "last_sent_at"):
        data[key] = _dt(data[key])
    data["labels"] = tuple((k, v) for k, v in data["labels"])
    return Alert(**data)


def _group_to_json(group: Group) -> bytes:
    data = asdict(group)
    data["labels"] = [list(pair) for pair in group.labels]
    data["notified_firing"] = sorted(group.notified_firing)
    data["unnotified"] = sorted(group.unnotified)
    return orjson.dumps(data)


def _group_from_json(body: bytes) -> Group:
    data: dict[str, Any] = orjson.loads(body)
    for key in ("created_at", "next_flush_at", "last_notified_at"):
        data[key] = _dt(data[key])
    data["labels"] = tuple((k, v) for k, v in data["labels"])
    data["notified_firing"] = frozenset(data["notified_firing"])
    data["unnotified"] = frozenset(data.get("unnotified", ()))  # absent in earlier versions
    return Group(**data)


def _silence_to_json(silence: Silence) -> bytes:
    return orjson.dumps(
        {
            "id": silence.id,
            "matchers": [str(m) for m in silence.matchers],
            "starts_at": silence.starts_at,
            "ends_at": silence.ends_at,
            "reason": silence.reason,
            "created_by": silence.created_by,
        }
    )


def _silence_from_json(body: bytes) -> Silence:
    data: dict[str, Any] = orjson.loads(body)
    return Silence(
        id=data["id"],
        matchers=tuple(Matcher.parse(m) for m in data["matchers"]),
        starts_at=datetime.fromisoformat(data["starts_at"]),
        ends_at=datetime.fromisoformat(data["ends_at"]),
        reason=data["reason"],
        created_by=data.get("created_by", ""),
    )


class Store:
    """One SQLite database; used from one thread (the engine's event loop, or the CLI). The
    engine is the outbox's only writer: the byte counts kept here are its own."""

    def __init__(self, path: Path, bound: OutboxBound = DEFAULT_BOUND) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "gave_up_at" not in columns:  # a state dir of an earlier version
            self._db.execute("ALTER TABLE outbox ADD COLUMN gave_up_at TEXT")
        self._db.executescript(_SIZED)
        self.bound = bound
        delivered, undelivered = self._db.execute(
            "SELECT COALESCE(SUM(size) FILTER (WHERE delivered), 0), "
            "COALESCE(SUM(size) FILTER (WHERE NOT delivered), 0) FROM outbox_sized"
        ).fetchone()
        self._delivered_bytes = int(delivered)
        self._undelivered_bytes = int(undelivered)
        self._scanned_at: datetime | None = None

    def close(self) -> None:
        self._db.close()

    def load(self) -> tuple[EngineState, dict[str, Group]]:
        started = self._db.execute("SELECT value FROM meta WHERE key='started_at'").fetchone()
        alerts: dict[tuple[str, str], Alert] = {}
        resolved: dict[str, Alert] = {}
        for (body,) in self._db.execute("SELECT body FROM alerts"):
            alert = alert_from_json(body)
            if alert.resolved_at is None:
                alerts[alert.key] = alert
            else:
                resolved[alert.id] = alert
        devices = {}
        for device_id, body in self._db.execute("SELECT device_id, body FROM devices"):
            data = orjson.loads(body)
            devices[device_id] = DeviceView(
                data["zone"],
                datetime.fromisoformat(data["last_seen_at"]),
                tuple(data["lamps"]),
                data.get("last_reading"),
                _dt(data.get("last_reading_at")),
                _dt(data.get("status_at")),
                _dt(data.get("status_ts_at")),
            )
        groups = {
            key: _group_from_json(body)
            for key, body in self._db.execute("SELECT key, body FROM groups")
        }
        state = EngineState(_dt(started[0]) if started else None, alerts, resolved, devices)
        return state, groups

    def position(self) -> Position:
        """The journal position the saved state reflects (the start when none was saved)."""
        row = self._db.execute("SELECT value FROM meta WHERE key='journal_position'").fetchone()
        return START if row is None else Position.parse(row[0])

    def save(
        self,
        old: EngineState,
        new: EngineState,
        groups: Mapping[str, Group],
        devices: Iterable[str],
        outbox: Iterable[OutboxEntry],
        now: datetime,
        position: Position | None = None,
    ) -> None:
        """Write what changed from `old` to `new`, the groups, the devices named, the new
        outbox entries and the journal `position` reached, in one transaction."""
        entries = list(outbox)
        db = self._db
        db.execute("BEGIN")
        try:
            if position is not None:
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('journal_position', ?)",
                    (position.encode(),),
                )
            if new.started_at is not None:
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('started_at', ?)",
                    (new.started_at.isoformat(),),
                )
            before = {a.id: a for a in (*old.alerts.values(), *old.resolved.values())}
            after = {a.id: a for a in (*new.alerts.values(), *new.resolved.values())}
            db.executemany(
                "INSERT OR REPLACE INTO alerts VALUES (?, ?)",
                [(i, alert_to_json(a)) for i, a in after.items() if before.get(i) is not a],
            )
            db.executemany(
                "DELETE FROM alerts WHERE id = ?", [(i,) for i in before if i not in after]
            )
            rows = []
            for device_id in devices:
                view = new.devices.get(device_id)
                if view is not None:
                    body = orjson.dumps(
                        {
                            "zone": view.zone,
                            "last_seen_at": view.last_seen_at,
                            "lamps": list(view.lamp_history),
                            "last_reading": view.last_reading,
                            "last_reading_at": view.last_reading_at,
                            "status_at": view.status_at,
                            "status_ts_at": view.status_ts_at,
                        }
                    )
                    rows.append((device_id, body))
            db.executemany("INSERT OR REPLACE INTO devices VALUES (?, ?)", rows)
            db.execute("DELETE FROM groups")
            db.executemany(
                "INSERT INTO groups VALUES (?, ?)",
                [(k, _group_to_json(g)) for k, g in groups.items()],
            )
            stamp = now.isoformat()
            db.executemany(
                "INSERT INTO outbox (channel, target, body, created_at, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(e.kind, _target(e), e.body, stamp, stamp) for e in entries],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._undelivered_bytes += sum(_entry_size(e) for e in entries)

    def due(self, now: datetime, limit: int = 100) -> list[OutboxItem]:
        rows = self._db.execute(
            "SELECT id, channel, target, body, attempts, created_at FROM outbox "
            "WHERE sent_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= ? "
            "ORDER BY id LIMIT ?",
            (now.isoformat(), limit),
        ).fetchall()
        return [
            OutboxItem(r[0], _entry(r[1], r[2], r[3]), r[4], datetime.fromisoformat(r[5]))
            for r in rows
        ]

    def next_due(self) -> datetime | None:
        row = self._db.execute(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE sent_at IS NULL AND gave_up_at IS NULL"
        ).fetchone()
        return _dt(row[0]) if row and row[0] else None

    def sent(self, item_id: int, at: datetime) -> None:
        """The item was delivered at `at` (the engine's wall clock); the delivered rows past
        the bound are pruned."""
        self._settle(
            item_id,
            "UPDATE outbox SET sent_at = ?, attempts = attempts + 1 WHERE id = ?",
            (at.isoformat(), item_id),
        )

    def failed(self, item_id: int, error: str, retry_at: datetime) -> None:
        size = self._row_size(item_id)
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
            "WHERE id = ?",
            (error[:1000], retry_at.isoformat(), item_id),
        )
        self._undelivered_bytes += self._row_size(item_id) - size

    def give_up(self, item_id: int, error: str, at: datetime) -> None:
        """A receiver refused the item for good: keep it, with its error, and never retry it
        (until pruned, after the deliveries)."""
        self._settle(
            item_id,
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, gave_up_at = ? "
            "WHERE id = ?",
            (error[:1000], at.isoformat(), item_id),
        )

    def _row_size(self, item_id: int) -> int:
        row = self._db.execute("SELECT size FROM outbox_sized WHERE id = ?", (item_id,)).fetchone()
        return 0 if row is None else int(row[0])

    def _settle(self, item_id: int, update: str, args: tuple[object, ...]) -> None:
        """Mark an undelivered item delivered (or given up) and prune if that passed the bound."""
        before = self._row_size(item_id)
        self._db.execute(update, args)
        self._undelivered_bytes -= before
        self._delivered_bytes += self._row_size(item_id)
        if self._prunable():
            self._prune_bytes()

    def _prunable(self) -> bool:
        """Past the bound, with more than a quarter of it delivered: while undelivered rows
        alone pass the bound, a prune per delivery would scan them all every time."""
        bound = self.bound.max_bytes
        delivered = self._delivered_bytes
        return delivered + self._undelivered_bytes > bound and delivered > bound // 4

    def outbox_size(self) -> OutboxSize:
        return OutboxSize(self._delivered_bytes, self._undelivered_bytes, self.bound.max_bytes)

    def prune(self, now: datetime) -> OutboxSize:
        """Prune the delivered rows past `bound.keep` at `now` (the wall clock, as `sent_at`
        and `gave_up_at`; scanned at most every `PRUNE_EVERY`) and those past the byte bound;
        returns the outbox's size."""
        if self._scanned_at is None or now - self._scanned_at >= PRUNE_EVERY:
            self._scanned_at = now
            cutoff = (now - self.bound.keep).isoformat()
            self._delete(
                "SELECT id, size, failures FROM outbox_sized "
                "WHERE COALESCE(sent_at, gave_up_at) < ?",
                (cutoff,),
            )
        if self._prunable():
            self._prune_bytes()
        return self.outbox_size()

    def _prune_bytes(self) -> None:
        """Delivered rows, deliveries first then give-ups, each oldest first, until the outbox
        is down to three quarters of the bound (or no delivered row is left)."""
        excess = self._delivered_bytes + self._undelivered_bytes - self.bound.max_bytes * 3 // 4
        self._delete(
            "SELECT id, size, failures FROM ("
            "SELECT id, size, failures, "
            "SUM(size) OVER (ORDER BY gave_up_at IS NOT NULL, id) AS running "
            "FROM outbox_sized WHERE delivered) WHERE running - size < ?",
            (excess,),
        )

    def _delete(self, select: str, args: tuple[object, ...]) -> None:
        """Delete the rows `select` names (id, size, failed attempts) in one transaction,
        adding their failed attempts to `meta.pruned_failed_attempts`."""
        db = self._db
        db.execute("BEGIN")
        try:
            rows = db.execute(select, args).fetchall()
            if rows:
                db.execute(
                    "INSERT INTO meta VALUES ('pruned_failed_attempts', ?) ON CONFLICT (key) "
                    "DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value",
                    (sum(int(r[2]) for r in rows),),
                )
                db.executemany("DELETE FROM outbox WHERE id = ?", [(r[0],) for r in rows])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._delivered_bytes -= sum(int(r[1]) for r in rows)

    def unsent(self) -> int:
        """Outbox items not delivered yet (due now or waiting for a retry)."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND gave_up_at IS NULL"
        ).fetchone()
        return int(row[0])

    def outbox_counts(self) -> dict[str, int]:
        """Unsent items and failed attempts so far (those of pruned rows too), for `luxtel
        alerts list` and metrics."""
        unsent, failures = self._db.execute(
            "SELECT COUNT(*) FILTER (WHERE sent_at IS NULL AND gave_up_at IS NULL), "
            "COALESCE(SUM(attempts - (sent_at IS NOT NULL)), 0) FROM outbox"
        ).fetchone()
        pruned = self._db.execute(
            "SELECT value FROM meta WHERE key = 'pruned_failed_attempts'"
        ).fetchone()
        failures += int(pruned[0]) if pruned else 0
        return {"unsent": int(unsent), "failed_attempts": int(failures)}

    def given_up(self, limit: int = 100) -> list[GivenUp]:
        """The items receivers refused for good, newest first."""
        rows = self._db.execute(
            "SELECT channel, target, body, created_at, gave_up_at, attempts, last_error "
            "FROM outbox WHERE gave_up_at IS NOT NULL ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        out = []
        for channel, target, body, created, gave_up, attempts, error in rows:
            entry = _entry(channel, target, body)
            out.append(
                GivenUp(
                    entry.kind,
                    entry.receiver,
                    entry.index,
                    datetime.fromisoformat(created),
                    datetime.fromisoformat(gave_up),
                    int(attempts),
                    error or "",
                )
            )
        return out

    def sent_items(self, kind: OutboxKind) -> list[OutboxEntry]:
        rows = self._db.execute(
            "SELECT channel, target, body FROM outbox WHERE channel = ? AND sent_at IS NOT NULL "
            "ORDER BY id",
            (kind,),
        )
        return [_entry(r[0], r[1], r[2]) for r in rows]

    def silences(self) -> list[Silence]:
        return [_silence_from_json(b) for (b,) in self._db.execute("SELECT body FROM silences")]

    def add_silence(self, silence: Silence) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO silences VALUES (?, ?)",
            (silence.id, _silence_to_json(silence)),
        )

    def acked(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT alert_id FROM acks")}

    def ack(self, alert_id: str, at: datetime, reason: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO acks VALUES (?, ?, ?)", (alert_id, at.isoformat(), reason)
        )

    def alerts(self) -> list[Alert]:
        return [alert_from_json(b) for (b,) in self._db.execute("SELECT body FROM alerts")]
