"""The received queue is bounded in payload bytes as well as in chunks; one chunk always fits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from ingest.chunk_queue import ChunkQueue
from ingest.messages import Inbound

NOW = datetime(2026, 12, 4, tzinfo=UTC)


def chunk(*sizes: int) -> list[Inbound]:
    return [Inbound("lighting/z/d/telemetry", b"x" * size, False, NOW, None) for size in sizes]


def test_full_by_bytes_before_by_count() -> None:
    queue = ChunkQueue(maxsize=64, max_bytes=1000)
    queue.put_nowait(chunk(400, 300))
    queue.put_nowait(chunk(299))
    assert queue.bytes == 999
    assert not queue.full()
    queue.put_nowait(chunk(1))
    assert queue.full()
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait(chunk(1))
    assert queue.get_nowait() == chunk(400, 300)
    assert queue.bytes == 300
    assert not queue.full()


def test_one_chunk_larger_than_the_bound_fits_an_empty_queue() -> None:
    queue = ChunkQueue(maxsize=64, max_bytes=100)
    queue.put_nowait(chunk(5000))
    assert queue.full()
    assert queue.get_nowait() is not None
    assert queue.bytes == 0
    queue.put_nowait(None)  # the end marker weighs nothing
    assert not queue.full()


def test_a_waiting_put_goes_in_once_a_get_makes_room() -> None:
    async def scenario() -> list[int]:
        queue = ChunkQueue(maxsize=64, max_bytes=100)
        queue.put_nowait(chunk(100))
        putter = asyncio.create_task(queue.put(chunk(50)))
        await asyncio.sleep(0)
        assert not putter.done()
        first = await queue.get()
        await putter
        second = await queue.get()
        assert first is not None
        assert second is not None
        return [len(first[0].payload), len(second[0].payload)]

    assert asyncio.run(scenario()) == [100, 50]
