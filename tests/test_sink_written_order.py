"""The sink tells what InfluxDB accepted (the rollups' tally, `energy.tally`) batch by batch in
the order the batches came, though it writes two at once and a small write finishes before a
large one: the tally needs a device's readings in time order, or it reads hours back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from influx.client import InfluxTarget, InfluxWriter
from ingest.deadletters import DeadLetterLog
from ingest.decode import Point
from ingest.messages import Batch
from ingest.metrics import IngestMetrics
from ingest.sink import Sink
from ingest.spool import Spool
from servers import InfluxDBServer

pytestmark = pytest.mark.integration

BASE_MS = 1_790_000_000_000


def _batch(first: int, n: int) -> Batch:
    return Batch(
        points=[
            Point(
                f"telemetry,device_id=lum-{i % 50},zone=north lamp_on=true,power_w=40.0,"
                f"energy_wh={1000.0 + i!r} {BASE_MS + i}",
                "lighting/north/x/telemetry",
            )
            for i in range(first, first + n)
        ]
    )


def test_written_lines_are_told_in_batch_order(
    influxdb: InfluxDBServer, influx_db: str, tmp_path: Path
) -> None:
    told: list[tuple[str, bool]] = []

    def written(lines: list[str], replayed: bool) -> None:
        told.extend((line, replayed) for line in lines)

    sizes = [20_000, 1, 5_000, 1, 1, 10_000, 2]
    batches, first = [], 0
    for n in sizes:
        batches.append(_batch(first, n))
        first += n

    async def run() -> None:
        metrics = IngestMetrics()
        async with InfluxWriter(InfluxTarget(influxdb.url, influx_db)) as writer:
            sink = Sink(
                writer,
                Spool(tmp_path / "spool", 1 << 30),
                DeadLetterLog(tmp_path / "deadletter.jsonl", metrics),
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
