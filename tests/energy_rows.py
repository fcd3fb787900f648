"""Comparing report rows computed two ways (rollups and raw readings, say): every figure is
computed from integers (``energy.counters``), whose sums do not depend on their order, so the
rows are equal, every printed digit included."""

from collections.abc import Sequence

from energy.report import Row


def same_rows(x: Sequence[Row], y: Sequence[Row]) -> None:
    assert len(x) == len(y)
    for r, s in zip(x, y, strict=True):
        assert r == s, (r, s)
