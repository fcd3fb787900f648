"""With the rules on, the sink journals a batch's observations while it writes the batch's points
to InfluxDB (`Sink.deliver`): a batch is acknowledged only once its observations are in the
journal, fsynced, and the journal holds the batches in the order they came, though two are
written at once and a small batch's write finishes before a large one's."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from influx.client import InfluxTarget, InfluxWriter
from ingest.messages import Batch
from ingest.metrics import IngestMetrics
from mqtt.acks import Delivery
from rules.runtime.journal import START
from rules.runtime.journal_reader import JournalReader
from rules.runtime.journal_writer import JournalWriter
from servers import InfluxDBServer
from tests.sink_fixtures import new_sink, sink_through, telemetry_batch, telemetry_batches

pytestmark = pytest.mark.integration


def test_a_batch_is_acknowledged_once_journaled_and_the_journal_keeps_the_batches_order(
    influxdb: InfluxDBServer, influx_db: str, tmp_path: Path
) -> None:
    sizes = [8_000, 1, 3_000, 1, 1, 5_000, 2]
    batches = telemetry_batches(sizes, numbered=True)
    journal = JournalWriter(tmp_path / "journal", 1 << 30)
    acknowledged: list[tuple[int, int]] = []
    """(the batch, the observations in the journal, durable, when it was acknowledged)"""

    def acknowledge(deliveries: list[Delivery]) -> None:
        (delivery,) = deliveries
        acknowledged.append((delivery.position, journal.end.seq))

    sink_through(
        InfluxTarget(influxdb.url, influx_db), tmp_path, batches, acknowledge, journal=journal.admit
    )
    journal.close()
    assert len(acknowledged) == len(batches)
    for number, durable in acknowledged:
        assert durable >= sum(sizes[: number + 1]), f"batch {number} acknowledged before journaled"
    reader = JournalReader(tmp_path / "journal", START)
    got = []
    while records := reader.read(journal.end.offset):
        for record in records:
            got.append(list(reader.decode(record)))
    assert [len(chunk) for chunk in got] == sizes, "one record a batch, in the batches' order"
    expected = [o for batch in batches for o in batch.observations]
    assert [(o.device_id, o.at) for chunk in got for o in chunk] == [
        (o.device_id, o.at) for o in expected
    ]


def test_at_the_journal_bound_a_batch_is_neither_written_nor_acknowledged_and_stopping_is_clean(
    influxdb: InfluxDBServer, influx_db: str, tmp_path: Path
) -> None:
    """The rules commit nothing and the journal is at its bound after the first batch: the
    second waits for room without being written to InfluxDB or acknowledged; stopping the
    sink then leaves the journal holding exactly the first batch, whole."""
    first, second = telemetry_batch(0, 3_000, 0), telemetry_batch(3_000, 3_000, 1)
    journal = JournalWriter(tmp_path / "journal", 1 << 20)  # 3,000 observations: ~0.75 MiB
    acknowledged: list[int] = []

    async def run() -> int:
        metrics = IngestMetrics()
        async with InfluxWriter(InfluxTarget(influxdb.url, influx_db)) as writer:
            sink = new_sink(
                writer,
                tmp_path,
                metrics,
                lambda deliveries: acknowledged.extend(d.position for d in deliveries),
                journal=journal.admit,
            )
            inbox: asyncio.Queue[Batch | None] = asyncio.Queue()
            inbox.put_nowait(first)
            inbox.put_nowait(second)
            task = asyncio.create_task(sink.run(inbox))
            # The gauge is what says the append waits for room (and the first batch is done).
            while journal.metrics.full._value.get() != 1 or not acknowledged:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            written = int(metrics.points_written._value.get())
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return written

    written = asyncio.run(run())
    journal.close()
    assert written == 3_000, "the second batch is not written while the journal has no room"
    assert acknowledged == [0]
    reopened = JournalWriter(tmp_path / "journal", 1 << 20)
    assert reopened.end.seq == 3_000, "the first batch whole, nothing of the second"
    reopened.close()


def test_the_sink_says_when_its_batches_wait_for_influxdb(
    influxdb: InfluxDBServer, influx_db: str, tmp_path: Path
) -> None:
    """Backlogged (told True) once a batch waits for a write slot, and told False once none
    waits: what holds the rules' journal end back through a burst."""
    told: list[bool] = []
    sink_through(
        InfluxTarget(influxdb.url, influx_db),
        tmp_path,
        telemetry_batches([100, 100, 100, 100]),
        lambda deliveries: None,
        writes_in_flight=1,
        backlogged=told.append,
    )
    assert told == [True, False]
    told.clear()
    sink_through(
        InfluxTarget(influxdb.url, influx_db),
        tmp_path,
        telemetry_batches([100]),
        lambda deliveries: None,
        writes_in_flight=1,
        backlogged=told.append,
    )
    assert told == [], "one batch never waits"
