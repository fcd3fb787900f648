"""The electrical truth of a luminaire, as pure functions of time.

Power is piecewise constant. It changes only at a *breakpoint*: dusk or dawn at the luminaire's own
location, a dimming set point, the start or end of a fault that changes power, a cycling lamp's
toggle, or the edge of a noise cell (the power fluctuates once per cell, at most every 15 min,
the value drawn from a hash of the device and the cell, not from a stream). So the power at any
instant, and the energy over any interval, are functions of (luminaire, calendar, faults, seed,
time) alone: ``energy_truth_wh`` does not depend on when or how often the device reported.

Units inside: time in Unix ms, power in centiwatts (the 0.01 W a payload shows), energy in
centiwatt-milliseconds. All integers, so the counter is the integral of the power, exactly.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from simulator.clock import local_day, to_ms
from simulator.dimming import DimmingProfile
from simulator.episodes import (
    CIRCUIT_OUTAGE,
    CYCLING,
    DAY_BURNING,
    DRIVER_OVERTEMP,
    LAMP_FAILURE,
    POWER_FACTOR_LOW,
    POWER_KINDS,
    VOLTAGE_HIGH,
    VOLTAGE_LOW,
    Episode,
)
from simulator.fleet import Luminaire
from simulator.solar import DarkIntervals, dark_intervals, is_dark, lit_window, solar_timezone

__all__ = [
    "WH",
    "DimmingProfile",
    "EnergyCounter",
    "LampModel",
    "Measurement",
    "energy_truth_wh",
    "is_lit",
    "lit_window",
    "power_cw",
    "power_factor",
    "power_w",
    "wh_reported",
]

WH = 360_000_000
"""Centiwatt-milliseconds in one watt-hour."""

POWER_NOISE = 0.03
"""Largest relative deviation of the power from rated × dim (triangular, s.d. about 1.2 %)."""

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def stable_key(*parts: object) -> int:
    """A 64-bit key from its parts, the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def cell_noise(key: int, cell: int) -> float:
    """A triangular value in (-1, 1) for noise cell ``cell`` of the device keyed ``key``."""
    h = _splitmix64(key ^ ((cell * 0x9E3779B97F4A7C15) & _MASK64))
    return ((h >> 32) + (h & 0xFFFFFFFF)) / 4294967296.0 - 1.0


def _round(x: float, scale: float) -> float:
    """``round(x, n)`` for ``scale = 10**n``, several times faster (half rounds away from zero)."""
    return math.floor(x * scale + 0.5) / scale


def wh_reported(units: int) -> float:
    """A register in centiwatt-milliseconds as reported: Wh to the nearest mWh."""
    return ((units + 180_000) // 360_000) / 1000


def power_cw(rated_w: float, fraction: float, noise: float) -> int:
    """Active power in centiwatts: rated × fraction of full output, off by ``noise`` × 3 %."""
    return max(0, round(rated_w * 100.0 * fraction * (1.0 + POWER_NOISE * noise)))


def power_w(rated_w: float, dim_pct: int, noise: float) -> float:
    """Active power in W at a dim level, ``noise`` in [-1, 1] (see ``cell_noise``)."""
    return power_cw(rated_w, dim_pct / 100.0, noise) / 100


def power_factor(dim_pct: int) -> float:
    """An LED driver's power factor: about 0.97 at full output, falling as it is dimmed."""
    return 0.97 - 0.35 * (1.0 - dim_pct / 100.0) ** 2


def ambient_temp_c(hour_of_day: float) -> float:
    """Air temperature with a daily swing, warmest mid-afternoon."""
    return 18.0 + 6.0 * math.sin(2 * math.pi * (hour_of_day - 9.0) / 24.0)


def is_lit(lum: Luminaire, t: datetime, tz: tzinfo | None = None) -> bool:
    """Whether the lamp should be lit at ``t``: the sun is down at its own location."""
    return is_dark(lum.lat, lum.lon, to_ms(t), tz or solar_timezone(lum.lon))


@dataclass(slots=True)  # not frozen: one per reading, and a frozen __init__ costs 3× more
class Measurement:
    """What a controller measures at one instant."""

    lamp_on: bool
    power_cw: int
    dim_pct: int
    voltage_v: float
    current_a: float
    power_factor: float | None
    driver_temp_c: float
    lux: float


@dataclass(frozen=True, slots=True)
class _Day:
    start: int
    end: int
    dark: DarkIntervals
    dim_at_start: int
    dim_changes: tuple[tuple[int, int], ...]
    sun_edges: tuple[int, ...]
    """Sunrise and sunset instants of the day (the dark intervals' ends that are not midnight)."""


class LampModel:
    """One luminaire's lamp state, power and energy as functions of time.

    ``episodes`` are this luminaire's faults. The model caches the local day it last looked at, so
    walking forward through time costs two astral calls per luminaire per day.
    """

    def __init__(
        self,
        lum: Luminaire,
        profile: DimmingProfile,
        tz: tzinfo,
        episodes: Sequence[Episode] = (),
        seed: int = 1,
    ) -> None:
        self.lum = lum
        self.profile = profile
        self.tz = tz
        self.episodes = tuple(sorted(episodes, key=lambda e: (e.start_ms, e.end_ms, e.kind)))
        self._power_eps = tuple(e for e in self.episodes if e.kind in POWER_KINDS)
        self._other_eps = tuple(e for e in self.episodes if e.kind not in POWER_KINDS)
        self._rated_w = lum.rated_power_w
        self._key = stable_key("power", seed, lum.device_id)
        self._cell_ms = min(max(lum.report_interval_s, 60), 900) * 1000
        self._outage_eps = tuple(e for e in self._power_eps if e.kind == CIRCUIT_OUTAGE)
        self._day: _Day | None = None
        self._seg_at = 0
        self._seg: tuple[bool, bool, int, int, int] = (False, False, 0, 0, 0)

    def _day_of(self, t_ms: int) -> _Day:
        day = self._day
        if day is not None and day.start <= t_ms < day.end:
            return day
        civil, start, end = local_day(t_ms, self.tz)
        dim0, changes = self.profile.day_changes(civil, self.tz)
        dark = dark_intervals(self.lum.lat, self.lum.lon, civil, self.tz)
        edges = tuple(x for a, b in dark for x in (a, b) if x not in (start, end))
        day = _Day(start, end, dark, dim0, changes, edges)
        self._day = day
        return day

    def segment(self, t_ms: int) -> tuple[bool, bool, int, int, int]:
        """``(dark, lamp_on, dim_pct, power_cw, end_ms)``: the state from ``t_ms`` to ``end_ms``."""
        seg = self._seg
        if self._seg_at <= t_ms < seg[4]:
            return seg
        seg = self._segment(t_ms)
        self._seg_at, self._seg = t_ms, seg
        return seg

    def _segment(self, t_ms: int) -> tuple[bool, bool, int, int, int]:
        day = self._day_of(t_ms)
        end = day.end
        dark = False
        for a, b in day.dark:
            if t_ms < a:
                end = a
                break
            if t_ms < b:
                dark = True
                end = b
                break
        dim = day.dim_at_start
        for at, level in day.dim_changes:
            if at <= t_ms:
                dim = level
            else:
                end = min(end, at)
                break
        failure: Episode | None = None
        cycling: Episode | None = None
        outage = burning = False
        for ep in self._power_eps:
            if t_ms < ep.start_ms:
                end = min(end, ep.start_ms)
                break
            if t_ms < ep.end_ms:
                end = min(end, ep.end_ms)
                if ep.kind == CIRCUIT_OUTAGE:
                    outage = True
                elif ep.kind == DAY_BURNING:
                    burning = True
                elif ep.kind == LAMP_FAILURE:
                    failure = ep
                elif ep.kind == CYCLING:
                    cycling = ep
        on = (dark or burning) and not outage
        if on and cycling is not None:
            half = int(cycling.level)
            k = (t_ms - cycling.start_ms) // half
            end = min(end, cycling.start_ms + (k + 1) * half)
            on = k % 2 == 1
        if not on:
            return dark, False, 0, 0, end
        cell = t_ms // self._cell_ms
        end = min(end, (cell + 1) * self._cell_ms)
        fraction = failure.level if failure is not None else dim / 100.0
        return dark, True, dim, power_cw(self._rated_w, fraction, cell_noise(self._key, cell)), end

    def power_cw_at(self, t_ms: int) -> int:
        return self.segment(t_ms)[3]

    def energy_cwms(self, t0_ms: int, t1_ms: int) -> int:
        """The integral of the power over ``[t0_ms, t1_ms)``, in centiwatt-milliseconds, exactly."""
        total = 0
        t = t0_ms
        while t < t1_ms:
            _, _, _, p, end = self.segment(t)
            end = min(end, t1_ms)
            total += p * (end - t)
            t = end
        return total

    def measure(self, t_ms: int, rng: random.Random, nominal_v: float = 220.0) -> Measurement:
        """Everything the controller reports at ``t_ms``; ``rng`` draws the measurement noise."""
        dark, on, dim, p_cw, _ = self.segment(t_ms)
        day = self._day_of(t_ms)
        rand = rng.random
        active: dict[str, Episode] = {}
        if self._other_eps:
            active = {e.kind: e for e in self._other_eps if e.start_ms <= t_ms < e.end_ms}
        if self._outage_eps and any(e.start_ms <= t_ms < e.end_ms for e in self._outage_eps):
            voltage = 0.0
        elif VOLTAGE_HIGH in active:
            voltage = nominal_v * active[VOLTAGE_HIGH].level * (0.995 + 0.01 * rand())
        elif VOLTAGE_LOW in active:
            voltage = nominal_v * active[VOLTAGE_LOW].level * (0.995 + 0.01 * rand())
        else:
            voltage = nominal_v * (1.0 + 0.03 * (rand() + rand() - 1.0))
        pf: float | None = None
        current = 0.0
        if on:
            pf = power_factor(dim) + 0.02 * rand() - 0.01
            if POWER_FACTOR_LOW in active:
                pf *= active[POWER_FACTOR_LOW].level
            pf = min(pf, 1.0)
            if voltage > 0:
                current = p_cw / 100.0 / (voltage * pf)
        hour = (t_ms - day.start) / 3_600_000
        load = p_cw / 100.0 / self._rated_w
        if on and DRIVER_OVERTEMP in active:
            temp = active[DRIVER_OVERTEMP].level + 2.0 * rand() - 1.0
        else:
            temp = ambient_temp_c(hour) + (30.0 * load if on else 2.0) + 1.6 * rand() - 0.8
        return Measurement(
            lamp_on=on,
            power_cw=p_cw,
            dim_pct=dim,
            voltage_v=_round(voltage, 10.0),
            current_a=_round(current, 1000.0),
            power_factor=None if pf is None else _round(pf, 1000.0),
            driver_temp_c=_round(temp, 10.0),
            lux=_round(self._lux(t_ms, day, dark, rng), 10.0),
        )

    @staticmethod
    def _lux(t_ms: int, day: _Day, dark: bool, rng: random.Random) -> float:
        """A photocell facing the sky: a few lux of city glow at night, daylight ramping up."""
        if dark:
            return 3.0 * rng.random()
        hours = min((abs(t_ms - x) for x in day.sun_edges), default=12 * 3_600_000) / 3_600_000
        daylight: float = min(1.0, hours / 3.0) ** 1.5
        return 20.0 + 40_000.0 * daylight * (0.3 + 0.7 * rng.random())


class EnergyCounter:
    """A controller's cumulative energy register: the integral of the model's power since the start.

    It only moves forward in time; ``reset`` is a controller replaced (the register restarts at 0).
    """

    def __init__(self, model: LampModel, start_ms: int, initial_wh: float = 0.0) -> None:
        self.model = model
        self.t_ms = start_ms
        self.units = round(initial_wh * WH)

    def advance(self, t_ms: int) -> int:
        """Integrate up to ``t_ms``; returns the energy added, in centiwatt-milliseconds."""
        if t_ms < self.t_ms:
            raise ValueError("an energy counter cannot go back in time")
        added = self.model.energy_cwms(self.t_ms, t_ms)
        self.units += added
        self.t_ms = t_ms
        return added

    def reset(self, t_ms: int) -> None:
        self.advance(t_ms)
        self.units = 0

    @property
    def wh(self) -> float:
        return self.units / WH


def energy_truth_wh(model: LampModel, t0: datetime | int, t1: datetime | int) -> float:
    """The energy really drawn over ``[t0, t1)``, Wh (``t0``, ``t1``: aware, or Unix ms)."""
    a = t0 if isinstance(t0, int) else to_ms(t0)
    b = t1 if isinstance(t1, int) else to_ms(t1)
    return model.energy_cwms(a, b) / WH
