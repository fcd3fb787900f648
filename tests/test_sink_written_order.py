"""The sink tells what InfluxDB accepted (the rollups' tally, `energy.tally`) batch by batch in
the order the batches came, though it writes two at once and a small write finishes before a
large one: the tally needs a device's readings in time order, or it reads hours back."""

from __future__ import annotations

from pathlib import Path

import pytest

from influx.client import InfluxTarget
from servers import InfluxDBServer
from tests.sink_fixtures import sink_through, telemetry_batches

pytestmark = pytest.mark.integration


def test_written_lines_are_told_in_batch_order(
    influxdb: InfluxDBServer, influx_db: str, tmp_path: Path
) -> None:
    told: list[tuple[str, bool]] = []

    def written(lines: list[str], replayed: bool) -> None:
        told.extend((line, replayed) for line in lines)

    batches = telemetry_batches([20_000, 1, 5_000, 1, 1, 10_000, 2])
    sink_through(
        InfluxTarget(influxdb.url, influx_db), tmp_path, batches, lambda _: None, written=written
    )
    expected = [point.line for batch in batches for point in batch.points]
    assert [line for line, _ in told] == expected
    assert not any(replayed for _, replayed in told)
