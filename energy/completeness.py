"""Data completeness: readings received against readings expected, and when to raise a flag.

A luminaire that reports every ``report_interval_s`` is expected to send ``span / interval``
readings over a span (jitter makes the count of one day vary by ±1). Completeness is what arrived
over what was expected, in percent; it can exceed 100 when a device reports more often than its
inventory says.

Completeness alone would not catch a device that sent all its readings but whose counter was
reset, nor a single six-hour hole in an otherwise full month; so a row is **flagged** when any
interval in it is a gap, a reset or a stretch without data (see ``energy.counters``), and the
energy of those intervals is reported as *unverified*: counted in the metered kWh (it was drawn),
but kept out of the baseline and the savings, so a gap never becomes a saving.
"""

from __future__ import annotations

DEFAULT_GAP_FACTOR = 1.5
"""A stretch longer than 1.5 report intervals without a reading is a gap (jitter is ±10 %)."""


def gap_ms(report_interval_s: int, gap_factor: float = DEFAULT_GAP_FACTOR) -> float:
    """The longest interval between readings that is not a gap, in ms."""
    return report_interval_s * 1000 * gap_factor


def expected_readings(span_ms: float, report_interval_s: int) -> float:
    """Readings one device should send over ``span_ms``."""
    return span_ms / (report_interval_s * 1000)


def completeness_pct(received: int, expected: float) -> float | None:
    """Received over expected, in percent; None when nothing was expected."""
    if expected <= 0:
        return None
    return 100.0 * received / expected
