"""An alert that fires and resolves before its group's first flush is told once, as resolved,
through the real engine to a real webhook: whether it resolved in a later evaluation cycle or in
the same one (a backlog of readings evaluated at once); what a group owes survives a restart."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from models import Observation
from rules.evaluation.evaluator import EngineState
from rules.notify.dispatch import Group
from rules.runtime.store import Store
from tests.rules_fixtures import Webhook, at, webhook
from tests.test_rules_engine import CIRCUIT, Clock, dark, engine, notify_to, settle, until

__all__ = ["webhook"]  # a fixture used by name


@pytest.mark.parametrize("cycles", ["two cycles", "one cycle"])
def test_a_supply_loss_over_before_the_group_wait_is_told_once_as_resolved(
    tmp_path: Path, webhook: Webhook, cycles: str
) -> None:
    """The circuit is dark from reading-minute 0 (supply_loss fires at 10) and back at 11 (it
    resolves at 21, after keep_firing_for); all of it reaches the engine at wall-clock minute
    30, within the group_wait (1 min) of the incident's group."""
    clock = Clock()
    clock.now = at(30)
    rules = engine(tmp_path, notify_to(f"apprise: ['json://127.0.0.1:{webhook.port}/hook']"), clock)
    out = [dark(minute) for minute in (0, 5, 10)]
    back = [dark(minute, volts=225.0) for minute in (11, 16, 21)]

    def firing() -> int:
        return sum(a.fired_at is not None for a in rules.state.alerts.values())

    async def scenario() -> None:
        inbox: asyncio.Queue[list[Observation] | None] = asyncio.Queue()
        task = asyncio.create_task(rules.run(inbox))
        if cycles == "two cycles":
            await inbox.put([o for batch in out for o in batch])
            await until(lambda: firing() == len(CIRCUIT), "the incident firing")
            await inbox.put([o for batch in back for o in batch])
        else:
            await inbox.put([o for batch in (*out, *back) for o in batch])
        await until(lambda: rules.counters.transitions == 2 * len(CIRCUIT), "fired, resolved")
        assert webhook.received == [], "group_wait has not passed"
        clock.now = at(31.5)
        await until(lambda: len(webhook.received) == 1, "the resolved notice")
        clock.now = at(40)
        for _ in range(5):
            await settle()
        await inbox.put(None)
        await task

    asyncio.run(scenario())
    [note] = webhook.received
    assert note["title"] == "RESOLVED: circuit C07: 4 of 4 luminaires without supply"
    assert note["type"] == "success"
    lines = note["message"].splitlines()
    assert len(lines) == len(CIRCUIT)
    assert all(line.startswith("RESOLVED No supply at lum-") for line in lines)
    assert all(
        line.endswith("; fired 2026-01-10 14:10:00 UTC, resolved 2026-01-10 14:21:00 UTC")
        for line in lines
    )
    assert rules.state.resolved == {}, "let go once told"


def test_a_group_keeps_what_it_owes_across_a_restart(tmp_path: Path) -> None:
    """The group's `unnotified` is saved with it; a group saved by an earlier version (without
    it) loads with none."""
    group = Group(
        "k",
        "0",
        "crew",
        (("circuit", "C07"),),
        at(30),
        at(31),
        None,
        frozenset(),
        frozenset({"a1", "b2"}),
    )
    store = Store(tmp_path / "rules.sqlite")
    state = EngineState()
    store.save(state, state, {"k": group}, [], [], at(30))
    store.close()
    store = Store(tmp_path / "rules.sqlite")
    assert store.load()[1] == {"k": group}
    store.close()
    db = sqlite3.connect(tmp_path / "rules.sqlite")
    body = orjson.loads(db.execute("SELECT body FROM groups").fetchone()[0])
    del body["unnotified"]
    db.execute("UPDATE groups SET body = ?", (orjson.dumps(body),))
    db.commit()
    db.close()
    store = Store(tmp_path / "rules.sqlite")
    assert store.load()[1] == {"k": replace(group, unnotified=frozenset())}
    store.close()
