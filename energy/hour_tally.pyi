"""Types of the C module `energy/hour_tally.c`: hourly rollup sums tallied from written lines."""

from collections.abc import Sequence
from typing import final

TakenRow = tuple[int, float, float, int, float, float, float, float, int, int]
"""(readings, counter_wh, power_wh, methods, verified_wh, burn_ms, dim_ms, baseline_wh,
flagged, resets); methods: 1 counter, 2 power (bits)."""

@final
class HourTally:
    def __init__(
        self,
        devices: Sequence[str],
        gap_ms: Sequence[float],
        baseline_w: Sequence[float],
        max_interval_ms: float,
        closed_ms: int,
        max_fallback: int,
    ) -> None: ...
    def feed(self, lines: Sequence[str], replayed: bool = False, /) -> None: ...
    def take(self, hour_ms: int, /) -> list[TakenRow]: ...
    def close(self, closed_ms: int, /) -> None: ...
    def fallback(self) -> tuple[set[int], tuple[int, int] | None]: ...
    def forget(self, before_ms: int, /) -> None: ...
    def stats(self) -> dict[str, int]: ...

def record_bytes() -> int: ...
