"""The sink tells what InfluxDB accepted (the rollups' tally, `energy.tally`) batch by batch in
the order the batches came, though it writes two at once and a small write finishes before a
large one: the tally needs a device's readings in time order, or it reads hours back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from influx.client import InfluxTarget, InfluxWriter
from ingest.messages import Batch
from ingest.metrics import IngestMetrics
from servers import InfluxDBServer
from tests.sink_fixtures import new_sink, telemetry_batch

pytestmark = pytest.mark.integration


def test_written_lines_are_told_in_batch_order(
    influxdb: InfluxDBServer, influx_db: str, tmp_path: Path
) -> None:
    told: list[tuple[str, bool]] = []

    def written(lines: list[str], replayed: bool) -> None:
        told.extend((line, replayed) for line in lines)

    sizes = [20_000, 1, 5_000, 1, 1, 10_000, 2]
    batches, first = [], 0
    for n in sizes:
        batches.append(telemetry_batch(first, n))
        first += n

    async def run() -> None:
        metrics = IngestMetrics()
        async with InfluxWriter(InfluxTarget(influxdb.url, influx_db)) as writer:
            sink = new_sink(
                writer,
                tmp_path,
                metrics,
                lambda _deliveries: None,
                written=written,
            )
            inbox: asyncio.Queue[Batch | None] = asyncio.Queue()
            for batch in batches:
                inbox.put_nowait(batch)
            inbox.put_nowait(None)
            await sink.run(inbox)

    asyncio.run(run())
    expected = [point.line for batch in batches for point in batch.points]
    assert [line for line, _ in told] == expected
    assert not any(replayed for _, replayed in told)
