"""Hours closed from the tally, kept until InfluxDB has taken every step of their close.

Why: the tally hands an hour's rollups over once (``RollupTally.bodies`` forgets its sums). A close
whose write or ``INTO`` failed used to be tried again by reading the whole hour back from
InfluxDB (~4.5 µs of CPU a reading, and minutes of InfluxDB's at a city's size); now the write
bodies are kept and only the steps not yet done are tried again:

1. the write bodies, each forgotten once InfluxDB accepted it;
2. the hours' sums per (zone, circuit), ``INTO`` (``rollup_store.into_level``);
3. the daily rollups of the days the hours complete (``rollup_store.build_days``).

The upkeep bounds what it keeps in bytes (``UpkeepConfig.kept_max_bytes``); hours past it, and
hours kept when luxtel stopped, are read back instead (the watermark on disk stays before them).

Clock: the hours are readings' ``ts`` (Unix ms).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from energy.inventory import Luminaire
from energy.rollup import ceil_hour, floor_hour
from energy.rollup_groups import GROUP_HOURLY
from energy.rollup_store import RollupConfig, build_days, into_level
from influx.client import InfluxWriter

_BODY_OVERHEAD = 40
"""A kept body's bytes beyond its text (a bytes object's header), for the bound."""


@dataclass(slots=True)
class Closing:
    """The rollups of the whole hours ``[start_ms, end_ms)`` closed from the tally: ``rows``
    device-hours in write bodies of line protocol, and the steps left."""

    start_ms: int
    end_ms: int
    rows: int
    bodies: list[bytes]
    grouped: bool = False
    """Step 2 done."""
    kept_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.kept_bytes = sum(len(body) + _BODY_OVERHEAD for body in self.bodies)

    async def finish(
        self, writer: InfluxWriter, inventory: Mapping[str, Luminaire], config: RollupConfig
    ) -> int:
        """The steps not done yet, in order; returns the daily points written. InfluxDB failing
        raises (``InfluxError``) with the steps done so far forgotten: the next call goes on
        from the one that failed."""
        a, b = floor_hour(self.start_ms), ceil_hour(self.end_ms)
        target = replace(writer.target, retention_policy=config.retention_policy)
        async with InfluxWriter(target) as out:
            while self.bodies:
                await out.write_body(self.bodies[0])
                self.kept_bytes -= len(self.bodies.pop(0)) + _BODY_OVERHEAD
            if not self.grouped:
                await into_level(writer, config, GROUP_HOURLY, a, b)
                self.grouped = True
            return await build_days(writer, out, inventory, a, b, config, complete=True)
