"""The dimming calendar: light levels set at local civil times, repeated every day.

``"23:00=50,05:00=100"`` means: 50 % from 23:00, 100 % from 05:00, local time. The level in force
at a moment is the last set point at or before it, wrapping round midnight, so at 19:00 the lamp is
at 100 % (set at 05:00). The local time zone is the simulation's ``--tz`` (an IANA name such as
``Asia/Shanghai``): a calendar is programmed in the city's civil time, DST included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from simulator.clock import to_ms

_SETPOINT = re.compile(r"^(\d{1,2}):(\d{2})=(\d{1,3})$")


@dataclass(frozen=True, slots=True)
class DimmingProfile:
    """Set points ``(minute of the local day, level %)`` by minute; none means always 100 %."""

    setpoints: tuple[tuple[int, int], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> DimmingProfile:
        """Parse ``"HH:MM=PCT,…"``; an empty string is a lamp that is never dimmed."""
        points: dict[int, int] = {}
        for raw in (part.strip() for part in spec.split(",")):
            if not raw:
                continue
            match = _SETPOINT.match(raw)
            if match is None:
                raise ValueError(
                    f"dimming set point {raw!r} is not HH:MM=PCT (e.g. '23:00=50,05:00=100')"
                )
            hour, minute, level = (int(g) for g in match.groups())
            if hour > 23 or minute > 59:
                raise ValueError(f"dimming set point {raw!r} has no such time of day")
            if not 0 <= level <= 100:
                raise ValueError(f"dimming set point {raw!r}: the level must be 0–100 %")
            if hour * 60 + minute in points:
                raise ValueError(f"dimming set point {raw!r} repeats a time already set")
            points[hour * 60 + minute] = level
        return cls(tuple(sorted(points.items())))

    def level_at_minute(self, minute_of_day: int) -> int:
        if not self.setpoints:
            return 100
        level = self.setpoints[-1][1]
        for minute, value in self.setpoints:
            if minute <= minute_of_day:
                level = value
        return level

    def day_changes(self, day: date, tz: tzinfo) -> tuple[int, tuple[tuple[int, int], ...]]:
        """Level at local midnight of ``day`` and the ``(unix_ms, level)`` changes during it."""
        if not self.setpoints:
            return 100, ()
        changes = sorted(
            (to_ms(datetime(day.year, day.month, day.day, m // 60, m % 60, tzinfo=tz)), level)
            for m, level in self.setpoints
        )
        return self.setpoints[-1][1], tuple(changes)

    def __str__(self) -> str:
        return ",".join(f"{m // 60:02d}:{m % 60:02d}={level}" for m, level in self.setpoints)
