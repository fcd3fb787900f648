"""What the sink tests build alike: batches of telemetry points (and their readings for the
rules), and a `Sink` writing to a real InfluxDB with its spool and dead letters in a temporary
directory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from influx.client import InfluxTarget, InfluxWriter
from ingest.deadletters import DeadLetterLog
from ingest.decode import Point
from ingest.messages import Batch
from ingest.metrics import IngestMetrics
from ingest.sink import Sink
from ingest.spool import Spool
from mqtt.acks import Delivery
from tests.rules_fixtures import reading

BASE_MS = 1_790_000_000_000


def telemetry_batch(first: int, n: int, number: int | None = None) -> Batch:
    """Readings ``first`` … ``first + n - 1`` of 50 luminaires, 1 ms apart; with ``number``
    also the delivery to acknowledge and each reading's observation for the rules."""
    points = [
        Point(
            f"telemetry,device_id=lum-{i % 50},zone=north lamp_on=true,power_w=40.0,"
            f"energy_wh={1000.0 + i!r} {BASE_MS + i}",
            "lighting/north/x/telemetry",
        )
        for i in range(first, first + n)
    ]
    if number is None:
        return Batch(points=points)
    return Batch(
        points=points,
        deliveries=[Delivery(0, number)],
        observations=[reading(f"lum-{i}", i / 60) for i in range(first, first + n)],
    )


def new_sink(
    writer: InfluxWriter,
    tmp_path: Path,
    metrics: IngestMetrics,
    acknowledge: Callable[[list[Delivery]], None],
    **options: Any,
) -> Sink:
    return Sink(
        writer,
        Spool(tmp_path / "spool", 1 << 30),
        DeadLetterLog(tmp_path / "deadletter.jsonl", metrics),
        metrics,
        acknowledge,
        **options,
    )


def telemetry_batches(sizes: list[int], numbered: bool = False) -> list[Batch]:
    """Consecutive `telemetry_batch`es of these sizes (``numbered``: each with its delivery and
    observations)."""
    batches, first = [], 0
    for number, n in enumerate(sizes):
        batches.append(telemetry_batch(first, n, number if numbered else None))
        first += n
    return batches


def sink_through(
    target: InfluxTarget,
    tmp_path: Path,
    batches: list[Batch],
    acknowledge: Callable[[list[Delivery]], None],
    **options: Any,
) -> None:
    """A `new_sink` writing to ``target`` runs over ``batches`` to the end marker."""

    async def run() -> None:
        metrics = IngestMetrics()
        async with InfluxWriter(target) as writer:
            sink = new_sink(writer, tmp_path, metrics, acknowledge, **options)
            inbox: asyncio.Queue[Batch | None] = asyncio.Queue()
            for batch in batches:
                inbox.put_nowait(batch)
            inbox.put_nowait(None)
            await sink.run(inbox)

    asyncio.run(run())
