"""An alert's id (`Alert.id`) is kept once asked for: the same hash of its rule, device and
start, a copy made by `replace` asks again, and the store neither writes the kept value nor
needs it to read an alert back."""

import hashlib
import sqlite3
from dataclasses import replace
from pathlib import Path

import orjson

from rules.evaluation.alerts import Alert
from rules.evaluation.evaluator import EngineState
from rules.runtime.store import Store
from tests.rules_fixtures import at


def _alert(minute: float = 0.0) -> Alert:
    return Alert(
        "lamp_failure", "a", "north", "C01", "major", (("team", "x"),), 3.0, "s", at(minute)
    )


def _hashed(alert: Alert) -> str:
    text = f"{alert.rule}|{alert.device_id}|{alert.active_at.isoformat()}"
    return hashlib.blake2b(text.encode(), digest_size=5).hexdigest()


def test_the_id_is_the_hash_of_rule_device_and_start_kept_per_alert() -> None:
    alert = _alert()
    assert alert.id == _hashed(alert)
    assert alert.id is alert.id  # kept, not hashed again
    fired = replace(alert, fired_at=at(30), value=9.0, summary="t")
    assert fired.id == alert.id
    later = replace(alert, active_at=at(60))
    assert later.id == _hashed(later) != alert.id
    assert fired == replace(alert, fired_at=at(30), value=9.0, summary="t")  # not compared


def test_the_store_reads_back_alerts_whose_id_was_asked(tmp_path: Path) -> None:
    alert = _alert()
    done = replace(_alert(-60), fired_at=at(-30), resolved_at=at(-10))
    ids = (alert.id, done.id)
    new = EngineState(at(-120), {alert.key: alert}, {done.id: done})
    store = Store(tmp_path / "state.db")
    store.save(EngineState(), new, {}, [], [], at(1))
    store.close()
    db = sqlite3.connect(tmp_path / "state.db")
    bodies = [body for (body,) in db.execute("SELECT body FROM alerts")]
    db.close()
    assert len(bodies) == 2
    assert all("_id" not in orjson.loads(body) for body in bodies)
    loaded, _ = Store(tmp_path / "state.db").load()
    assert dict(loaded.alerts) == {alert.key: alert}
    assert dict(loaded.resolved) == {done.id: done}
    assert (loaded.alerts[alert.key].id, loaded.resolved[done.id].id) == ids
