"""A close of the rollup upkeep that InfluxDB fails, on a real InfluxDB stopped during it: the
hours the tally handed over are kept (bounded in bytes) and only the step that failed is tried
again once InfluxDB is back — nothing is read back — and the rollups equal a rebuild from the raw
readings. Past the bound, or after a restart of luxtel, the hours are read back instead."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from energy.inventory import read_inventory
from energy.periods import to_ms
from energy.retention import RetentionConfig
from energy.rollup_store import RollupConfig, build
from energy.tally import RollupTally
from energy.upkeep import DirtyHours, Upkeep, UpkeepConfig
from influx.client import InfluxTarget, InfluxWriter
from servers import InfluxDBServer, create_database
from tests.energy_fleet import FLEET, Story, readings, rollup_points, write_inventory

pytestmark = pytest.mark.integration

H = 3_600_000
FIRST = to_ms(datetime(2026, 1, 12, 18, tzinfo=ZoneInfo("Europe/London")))
"""The first hour the upkeep closes (a winter's evening: the lamps light)."""
HOURS = 3
STORY = Story(
    first=FIRST,
    until=FIRST + HOURS * H + 40 * 60_000,
    outages=((FIRST + H, FIRST + H + 30 * 60_000),),
    reset=FIRST + 2 * H,
    onboarding=FIRST + 50 * 60_000,
)
ROLLUPS = RollupConfig(max_interval_ms=6 * H, tz="Europe/London")
DATABASE = "city"


def _points(url: str) -> dict[tuple[str, int], Any]:
    return rollup_points(url, DATABASE, "energy_hourly")


def _closed_with_influxdb_stopped(
    server: InfluxDBServer, tmp_path: Path, kept_max_bytes: int, *, restart: bool = False
) -> Upkeep:
    """An upkeep with its tally fed ``HOURS`` hours of the fleet's readings (written to
    InfluxDB), whose close of those hours finds InfluxDB stopped; InfluxDB is started again
    and the next round runs — in that upkeep, or (``restart``) in a new one on the same state
    file, as after a restart of luxtel. Returns the upkeep of that round."""
    create_database(server.url, DATABASE)
    inventory = read_inventory(write_inventory(tmp_path))
    config = UpkeepConfig(
        every_s=3600,
        settle_s=0,
        rollups=ROLLUPS,
        retention=RetentionConfig(),
        kept_max_bytes=kept_max_bytes,
    )
    lines = sorted(pair for device in FLEET for pair in readings(device, STORY))
    state = tmp_path / "rollups.json"
    state.write_text(json.dumps({"watermark_ms": FIRST}))
    clock = [FIRST / 1000]

    async def upkeep(writer: InfluxWriter) -> Upkeep:
        tally = RollupTally(
            inventory,
            gap_factor=ROLLUPS.gap_factor,
            max_interval_ms=ROLLUPS.max_interval_ms,
            started_ms=FIRST - 2 * H,
            closed_ms=FIRST,
            max_bytes=1 << 20,
        )
        made = Upkeep(
            writer, inventory, state, config, DirtyHours(), clock=lambda: clock[0], tally=tally
        )
        await made.prepare()  # what InfluxDB holds already, as luxtel run asks at start
        return made

    async def run() -> Upkeep:
        async with InfluxWriter(InfluxTarget(server.url, DATABASE)) as writer:
            first = await upkeep(writer)
            assert await first.tick(FIRST) == FIRST  # the retention policies; nothing closes
            for i in range(0, len(lines), 10):
                chunk = [text for _, text in lines[i : i + 10]]
                await writer.write(chunk)
                first.written(chunk)
            clock[0] = (FIRST + HOURS * H) / 1000
            server.stop()
            watermark = await first.tick(FIRST)
            # the hours are not marked closed on disk until written: a restart reads them back
            assert json.loads(state.read_text())["watermark_ms"] == FIRST
            server.start()
            if restart:
                second = await upkeep(writer)
                await second.tick(second.watermark)
            else:
                second = first
                await first.tick(watermark)
            assert json.loads(state.read_text())["watermark_ms"] == FIRST + HOURS * H
            return second

    return asyncio.run(run())


def _equal_to_a_rebuild(url: str, tmp_path: Path) -> None:
    kept = _points(url)
    assert len(kept) == len(FLEET) * HOURS

    async def rebuild() -> None:
        async with InfluxWriter(InfluxTarget(url, DATABASE)) as writer:
            inventory = read_inventory(tmp_path / "inventory.csv")
            await build(writer, inventory, FIRST, FIRST + HOURS * H, ROLLUPS)

    asyncio.run(rebuild())
    assert kept == _points(url)


def test_a_close_that_influxdb_fails_is_written_from_what_the_tally_handed_over(
    influxdb_factory: Callable[..., InfluxDBServer], tmp_path: Path
) -> None:
    server = influxdb_factory()
    upkeep = _closed_with_influxdb_stopped(server, tmp_path, kept_max_bytes=1 << 20)
    assert upkeep.tallied_rows == len(FLEET) * HOURS
    assert upkeep.rows == upkeep.tallied_rows  # nothing read back
    assert upkeep.kept_bytes == 0
    _equal_to_a_rebuild(server.url, tmp_path)


@pytest.mark.parametrize("restart", [False, True], ids=["past-the-bound", "restarted"])
def test_past_its_bound_or_after_a_restart_a_failed_close_is_read_back(
    influxdb_factory: Callable[..., InfluxDBServer], tmp_path: Path, restart: bool
) -> None:
    server = influxdb_factory()
    bound = (1 << 20) if restart else 100
    upkeep = _closed_with_influxdb_stopped(server, tmp_path, bound, restart=restart)
    assert upkeep.tallied_rows == 0
    assert upkeep.rows == len(FLEET) * HOURS  # read back
    _equal_to_a_rebuild(server.url, tmp_path)
