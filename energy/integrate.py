"""Energy from power, for a device without an energy counter.

The contract makes ``energy_wh`` required, but points written by other tools, or old firmware
that reports no register, may lack it: then the energy of an interval is the integral of the
power over it. Readings are samples of the power at two instants; the trapezoid between them is
the best estimate without knowing when the power changed. The report names this method
(``power``) beside each figure, since it is an estimate where the counter is a measurement.
In integers, as every figure of ``energy.counters``: mW in, mWh out.
"""

from __future__ import annotations

MS_PER_H = 3_600_000


def trapezoid_mwh(power0_mw: int, power1_mw: int, dt_ms: int) -> int:
    """Energy in mWh between two power samples in mW ``dt_ms`` apart (trapezoid rule), in
    integers, rounded to the nearest mWh (halves up): ``⌊(p0 + p1) · dt / 7,200,000 + ½⌋``."""
    return ((power0_mw + power1_mw) * dt_ms + MS_PER_H) // (2 * MS_PER_H)
