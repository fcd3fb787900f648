"""Comparing report rows computed two ways (rollups and raw readings, say): the same keys,
counts and flags, and figures equal to float rounding. Sums taken in another order (InfluxDB's
`sum()` over rollups, per group, per day) can differ in their last bits, so a figure printed to
6 decimals can differ by one unit when it lies that close to a rounding boundary."""

from collections.abc import Sequence

import pytest

from energy.report import Row

FIGURE_TOLERANCE = 2e-6
"""kWh and hours: one unit of the 6th printed decimal either way, with room for the rounding."""


def same_rows(x: Sequence[Row], y: Sequence[Row]) -> None:
    assert len(x) == len(y)
    for r, s in zip(x, y, strict=True):
        assert (r.key, r.period, r.readings, r.gap, r.resets, r.method) == (
            s.key,
            s.period,
            s.readings,
            s.gap,
            s.resets,
            s.method,
        ), (r, s)
        for name in ("metered_kwh", "verified_kwh", "burning_h", "baseline_kwh", "savings_kwh"):
            expected = pytest.approx(getattr(s, name), abs=FIGURE_TOLERANCE)
            assert getattr(r, name) == expected, (name, r, s)
