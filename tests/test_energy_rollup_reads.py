"""How a report reads a raw range for every luminaire a slice of luminaires at a time
(``energy.rollup_raw.read_raw_part``): a look-up's answer (in descending device order when
``ORDER BY time DESC``) kept compactly and handed out in ascending order, every value as it came;
a query's answer taken device range by device range, and refused out of order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from energy.counters import Sample
from energy.queries import Series
from energy.report import ReportBuilder
from energy.rollup_raw import Cursor, Kept
from tests.test_energy_rollup import INVENTORY, START

H = 3_600_000


def test_the_readings_before_come_back_in_device_order_with_their_values() -> None:
    kept = Kept({"a", "b", "c"})
    kept.push("x", Sample(START - 5, 1.0))  # not one of those asked for: not kept
    samples = {
        "c": Sample(START - 60_000, 12.5, None, None, 70.0),
        "b": Sample(START - 120_000, None, 40.0, True, None),
        "a": Sample(START - 1, 2.0**32 - 1, 0.0, False, 0.0),
    }
    for device, sample in samples.items():  # descending, as InfluxDB answers ORDER BY time DESC
        kept.push(device, sample)
    kept.sort()
    part = ReportBuilder(START, START + H, INVENTORY, {}, max_interval_ms=6 * H)
    kept.push_upto(part, "b")
    assert sorted(part.streams) == ["a", "b"]
    kept.push_upto(part, None)
    for device, sample in samples.items():
        assert part.streams[device].last == sample
    assert "x" not in part.unknown


def _answer(devices: list[str]) -> AsyncGenerator[Series, None]:
    async def answer() -> AsyncGenerator[Series, None]:
        for device in devices:
            yield Series("telemetry", {"device_id": device}, ["time"], [[START]])

    return answer()


def test_an_answer_is_taken_device_range_by_device_range() -> None:
    async def take() -> list[list[str]]:
        cursor = Cursor(_answer(["a", "a", "b", "d", "e"]))  # a's series in two pieces
        out = []
        for last in ("a", "c", None):
            out.append([s.tags["device_id"] async for s in cursor.take_upto(last)])
        return out

    assert asyncio.run(take()) == [["a", "a"], ["b"], ["d", "e"]]


def test_an_answer_out_of_device_order_is_refused() -> None:
    async def take() -> None:
        cursor = Cursor(_answer(["a", "c", "b"]))
        async for _ in cursor.take_upto(None):
            pass

    with pytest.raises(ValueError, match="'b' after 'c'"):
        asyncio.run(take())
