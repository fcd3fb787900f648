"""Fault injection: the ``--faults`` spec, the seeded schedule of episodes, and the ground truth.

``--faults lamp_failure=0.02,offline=0.01`` gives one episode to 2 % of the luminaires and another
to a further 1 % (a luminaire gets at most one fault, so an episode's readings show that fault and
nothing else); ``circuit_outage`` counts circuits, not luminaires. An episode is placed where it can
be seen, which is why a run can apply fewer than asked: a night fault needs a night in the run.

Kinds (when they are placed: what the luminaire does):

- ``lamp_failure`` (one night): lamp on, but it draws 2–8 % of rated power.
- ``day_burning`` (one day): lamp lit in daylight, at the calendar's level.
- ``offline`` (any time): silent; its connection drops uncleanly, so the broker fires its Last
  Will; at the end it reconnects and sends a birth status. Its energy counter keeps counting.
- ``voltage_high`` / ``voltage_low`` (any time): supply at 113–118 % / 80–86 % of nominal.
- ``cycling`` (one night): lamp off and on every ``interval / 3`` (≥ 60 s) while it should be lit,
  so consecutive readings alternate.
- ``power_factor_low`` (one night): power factor × 0.55–0.70.
- ``driver_overtemp`` (one night): driver at 93–105 °C, and a status with
  ``"faults": ["driver_overtemp"]`` at the start (``[]`` at the end).
- ``circuit_outage`` (one night): every luminaire of the circuit dark together: lamp off, 0 W,
  0 V, still reporting (a tripped cabinet breaker; the controllers are fed separately).
- ``counter_reset`` (an instant): controller replaced: energy counter and ``seq`` restart at 0,
  with a birth status.

Episodes last from ``max(10 min, 4 × report interval)`` up to the kind's maximum, whole seconds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import timedelta, tzinfo

from simulator.clock import local_day
from simulator.episodes import (
    CIRCUIT_OUTAGE,
    COUNTER_RESET,
    CYCLING,
    DAY_BURNING,
    DRIVER_OVERTEMP,
    FAULT_KINDS,
    LAMP_FAILURE,
    OFFLINE,
    POWER_FACTOR_LOW,
    VOLTAGE_HIGH,
    VOLTAGE_LOW,
    Episode,
)
from simulator.fleet import Luminaire
from simulator.solar import dark_intervals

_NIGHT, _DAY, _ANY, _INSTANT = "night", "day", "any", "instant"
_HOUR = 3_600_000

# kind: (when it can be seen, longest episode in ms)
_PLACEMENT: dict[str, tuple[str, int]] = {
    LAMP_FAILURE: (_NIGHT, 12 * _HOUR),
    DAY_BURNING: (_DAY, 12 * _HOUR),
    OFFLINE: (_ANY, 6 * _HOUR),
    VOLTAGE_HIGH: (_ANY, 6 * _HOUR),
    VOLTAGE_LOW: (_ANY, 6 * _HOUR),
    CYCLING: (_NIGHT, 4 * _HOUR),
    POWER_FACTOR_LOW: (_NIGHT, 8 * _HOUR),
    DRIVER_OVERTEMP: (_NIGHT, 4 * _HOUR),
    CIRCUIT_OUTAGE: (_NIGHT, 4 * _HOUR),
    COUNTER_RESET: (_INSTANT, 0),
}
_OUTAGE_MARGIN_MS = 5 * 60_000


def parse_faults(spec: str) -> dict[str, float]:
    """Parse ``kind=fraction,…``; raises ``ValueError`` with one sentence naming what is wrong."""
    fractions: dict[str, float] = {}
    for raw in (part.strip() for part in spec.split(",")):
        if not raw:
            continue
        kind, sep, value = (x.strip() for x in raw.partition("="))
        if not sep:
            raise ValueError(f"fault {raw!r} has no fraction: write it as {raw}=0.01")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known kinds: {', '.join(FAULT_KINDS)}")
        if kind in fractions:
            raise ValueError(f"fault kind {kind!r} is given twice")
        try:
            fraction = float(value)
        except ValueError:
            fraction = math.nan
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fault {kind!r} needs a fraction between 0 and 1, not {value!r}")
        fractions[kind] = fraction
    return fractions


def _count(fraction: float, population: int) -> int:
    """How many members get the fault: the rounded share, and at least one if it is not zero."""
    if fraction <= 0.0 or population == 0:
        return 0
    return max(1, round(fraction * population))


def _merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in intervals:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def night_windows(lum: Luminaire, tz: tzinfo, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """The nights (sun down at the luminaire) in ``[start_ms, end_ms)``, merged over midnight."""
    day, _, _ = local_day(start_ms, tz)
    last, _, _ = local_day(max(start_ms, end_ms - 1), tz)
    spans: list[tuple[int, int]] = []
    while day <= last:
        spans.extend(dark_intervals(lum.lat, lum.lon, day, tz))
        day += timedelta(days=1)
    clipped = ((max(a, start_ms), min(b, end_ms)) for a, b in _merge(spans))
    return [(a, b) for a, b in clipped if a < b]


def _day_windows(
    nights: list[tuple[int, int]], start_ms: int, end_ms: int
) -> list[tuple[int, int]]:
    edges = [start_ms, *(x for night in nights for x in night), end_ms]
    pairs = zip(edges[::2], edges[1::2], strict=True)
    return [(a, b) for a, b in pairs if a < b]


def _place(
    rng: random.Random, windows: Sequence[tuple[int, int]], shortest: int, longest: int
) -> tuple[int, int] | None:
    """A random ``[start, end)`` of whole seconds inside one of ``windows``, None if none fits."""
    fits = [(a, b) for a, b in windows if b - a >= shortest + 2000]
    if not fits:
        return None
    a, b = rng.choice(fits)
    a = -(-a // 1000) * 1000
    b = b // 1000 * 1000
    length = rng.randint(shortest // 1000, min(longest, b - a) // 1000) * 1000
    start = a + rng.randint(0, (b - a - length) // 1000) * 1000
    return start, start + length


def _level(kind: str, rng: random.Random, interval_s: int) -> float:
    if kind == LAMP_FAILURE:
        return rng.uniform(0.02, 0.08)
    if kind == VOLTAGE_HIGH:
        return rng.uniform(1.13, 1.18)
    if kind == VOLTAGE_LOW:
        return rng.uniform(0.80, 0.86)
    if kind == POWER_FACTOR_LOW:
        return rng.uniform(0.55, 0.70)
    if kind == DRIVER_OVERTEMP:
        return rng.uniform(93.0, 105.0)
    if kind == CYCLING:
        return float(max(60, interval_s // 3) * 1000)
    return 0.0


def _windows_for(
    when: str, lum: Luminaire, tz: tzinfo, start_ms: int, end_ms: int
) -> list[tuple[int, int]]:
    if when == _ANY:
        return [(start_ms, end_ms)]
    nights = night_windows(lum, tz, start_ms, end_ms)
    return nights if when == _NIGHT else _day_windows(nights, start_ms, end_ms)


def schedule_faults(
    fleet: Sequence[Luminaire],
    fractions: dict[str, float],
    start_ms: int,
    end_ms: int,
    tz: tzinfo,
    seed: int = 1,
) -> list[Episode]:
    """Seeded fault episodes for a run over ``[start_ms, end_ms)``, sorted by start then device."""
    rng = random.Random(f"luxtel-faults:{seed}")
    free = {lum.device_id for lum in fleet}
    episodes: list[Episode] = []
    if fractions.get(CIRCUIT_OUTAGE, 0.0) > 0.0:
        circuits: dict[str, list[Luminaire]] = {}
        for lum in fleet:
            circuits.setdefault(lum.circuit, []).append(lum)
        names = sorted(circuits)
        for name in sorted(rng.sample(names, _count(fractions[CIRCUIT_OUTAGE], len(names)))):
            members = circuits[name]
            first = members[0]
            shortest = max(600, 4 * first.report_interval_s) * 1000
            nights = [
                (a + _OUTAGE_MARGIN_MS, b - _OUTAGE_MARGIN_MS)
                for a, b in night_windows(first, tz, start_ms, end_ms)
            ]
            span = _place(rng, nights, shortest, _PLACEMENT[CIRCUIT_OUTAGE][1])
            free.difference_update(lum.device_id for lum in members)
            if span is not None:
                episodes.extend(
                    Episode(lum.device_id, lum.zone, lum.circuit, CIRCUIT_OUTAGE, *span)
                    for lum in members
                )
    by_id = {lum.device_id: lum for lum in fleet}
    for kind in FAULT_KINDS:
        fraction = fractions.get(kind, 0.0)
        if kind == CIRCUIT_OUTAGE or fraction <= 0.0:
            continue
        wanted = _count(fraction, len(fleet))
        if wanted > len(free):
            raise ValueError(
                f"the fault fractions ask for more faulty luminaires than the fleet has "
                f"({kind} needs {wanted}, {len(free)} left): lower them"
            )
        chosen = sorted(rng.sample(sorted(free), wanted))
        free.difference_update(chosen)
        when, longest = _PLACEMENT[kind]
        for device_id in chosen:
            lum = by_id[device_id]
            if when == _INSTANT:
                lo, hi = -(-start_ms // 1000) + 1, (end_ms - 1) // 1000
                if lo > hi:
                    continue
                at = rng.randint(lo, hi) * 1000
                episodes.append(Episode(device_id, lum.zone, lum.circuit, kind, at, at))
                continue
            shortest = max(600, 4 * lum.report_interval_s) * 1000
            span = _place(rng, _windows_for(when, lum, tz, start_ms, end_ms), shortest, longest)
            if span is not None:
                level = _level(kind, rng, lum.report_interval_s)
                episodes.append(Episode(device_id, lum.zone, lum.circuit, kind, *span, level))
    episodes.sort(key=lambda e: (e.start_ms, e.device_id, e.kind))
    return episodes


def applied(episodes: Iterable[Episode], stop_ms: int) -> list[Episode]:
    """The episodes a run that stopped at ``stop_ms`` applied, their ends clipped to the stop."""
    out: list[Episode] = []
    for ep in episodes:
        if ep.start_ms < stop_ms:
            out.append(ep if ep.end_ms <= stop_ms else replace(ep, end_ms=stop_ms))
    return out
