"""What a simulation run is asked to do, its checks, and the time plan it implies.

Time modes:

- **real time** (default): simulated time is the wall clock, from now, for ``duration_s`` or until
  stopped.
- **accelerated** (``speed`` > 1): ``speed`` simulated seconds per wall second. Timestamps are
  simulated, so they start in the past (``start``, or ``now − duration × speed``, or a day ago when
  running without end) and never run ahead of the wall clock: once caught up the run continues in
  real time (luxtel rejects readings from the future).
- **backfill** (``start`` given, ``speed`` 1): ``[start, end or now)`` as fast as the broker
  acknowledges, capped by ``rate`` if given.
- **flood** (``flood``): a backfill that ignores ``rate``, by default over the last 30 days, for
  benchmarks; ``duration_s`` then bounds the wall time.

Fault episodes are placed over the run; a run without end places them in its first day.
"""

from __future__ import annotations

import re
import resource
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from simulator.clock import MS_PER_DAY, to_ms
from simulator.dimming import DimmingProfile
from simulator.faults import parse_faults
from simulator.formats import FORMATS
from simulator.publisher import parse_mqtt_url

PER_DEVICE_LIMIT = 2000
"""``connections="auto"`` gives each luminaire its own connection up to this fleet size."""

Mode = Literal["realtime", "accelerated", "backfill", "flood"]

_MAX_TZ_DRIFT_H = 4.0
"""How far a time zone may run from solar time at the city centre (China: up to 3.2 h)."""

_TOPIC_ROOT = re.compile(r"^[^#+/\x00][^#+\x00]*(?<!/)$")


class ConfigError(ValueError):
    """A bad option: the message is one sentence naming it."""


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    devices: int = 1000
    zones: int = 4
    circuits_per_zone: int = 6
    centre_lat: float = 31.2304
    centre_lon: float = 121.4737
    tz: str = "Asia/Shanghai"
    """IANA zone of the city's civil time: the dimming calendar and the local day use it."""
    interval_s: int = 900
    jitter_s: float | None = None
    """Random delay added to each report, ``[0, jitter]`` s; default a tenth of the interval."""
    dimming: str = "23:00=50,05:00=100"
    speed: float = 1.0
    start: datetime | None = None
    end: datetime | None = None
    duration_s: float | None = None
    rate: float | None = None
    """Cap on messages per second, None for none."""
    flood: bool = False
    gateway_batch: int = 0
    """Gateway mode when > 0: readings go out as batches of up to this many per circuit gateway."""
    gateway_max_age_s: float | None = None
    """A gateway sends its batch once its oldest reading is this old, even if not full; default
    the report interval, so a gateway relays each of its luminaires' reports once per cycle."""
    faults: str = ""
    seed: int = 1
    inventory_path: Path | None = None
    ground_truth_path: Path | None = None
    energy_truth_path: Path | None = None
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    topic_root: str = "lighting"
    qos: int = 1
    connections: Literal["auto", "per-device", "shared"] = "auto"
    window: int = 1000
    """Messages in flight (sent, not yet acknowledged) over all connections."""
    nominal_voltage_v: float = 220.0
    firmware: str = "2.3.1"
    client_id: str = "luxtel-sim"
    payload_format: str = "luxtel"
    """The form of each reading (`simulator.formats`): the contract's, or a ChirpStack, The
    Things Stack or SenML uplink on their topics."""

    @property
    def jitter_ms(self) -> int:
        jitter = self.interval_s / 10 if self.jitter_s is None else self.jitter_s
        return int(jitter * 1000)

    @property
    def gateway_max_age_ms(self) -> int:
        age = self.interval_s if self.gateway_max_age_s is None else self.gateway_max_age_s
        return int(age * 1000)

    @property
    def per_device(self) -> bool:
        """Whether each luminaire gets its own connection (and so a real Last Will)."""
        if self.gateway_batch > 0 or self.connections == "shared":
            return False
        return self.connections == "per-device" or self.devices <= PER_DEVICE_LIMIT

    @property
    def mode(self) -> Mode:
        if self.flood:
            return "flood"
        if self.speed != 1.0:
            return "accelerated"
        return "backfill" if self.start is not None else "realtime"

    def validate(self) -> None:
        """Raise ``ConfigError`` on the first bad option."""
        for name in ("devices", "zones", "circuits_per_zone", "interval_s", "window"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{_flag(name)} must be at least 1")
        if not -90.0 <= self.centre_lat <= 90.0 or not -180.0 <= self.centre_lon <= 180.0:
            raise ConfigError(
                "--centre must be LAT,LON with latitude in [-90, 90], longitude in [-180, 180]"
            )
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"--tz {self.tz!r} is not an IANA time zone such as Asia/Shanghai"
            ) from None
        offset_h = (datetime.now(zone).utcoffset() or timedelta()) / timedelta(hours=1)
        drift_h = (offset_h - self.centre_lon / 15.0 + 12.0) % 24.0 - 12.0
        if abs(drift_h) > _MAX_TZ_DRIFT_H:
            raise ConfigError(
                f"--tz {self.tz} (UTC{offset_h:+g}) cannot be the civil time at longitude "
                f"{self.centre_lon:g}: give the city's own --tz"
            )
        if self.jitter_s is not None and not 0 <= self.jitter_s < self.interval_s:
            raise ConfigError("--jitter must be at least 0 and shorter than --interval")
        for parse, flag, value in (
            (DimmingProfile.parse, "dimming", self.dimming),
            (parse_faults, "faults", self.faults),
            (parse_mqtt_url, "mqtt-url", self.mqtt_url),
        ):
            try:
                parse(value)
            except ValueError as exc:
                raise ConfigError(f"--{flag}: {exc}") from None
        self._validate_time()
        if self.rate is not None and self.rate <= 0:
            raise ConfigError("--rate must be a positive number of messages per second")
        if self.rate is not None and self.flood:
            raise ConfigError("--rate and --flood exclude each other: a flood has no cap")
        if self.gateway_batch < 0 or (self.gateway_max_age_s or 1) <= 0:
            raise ConfigError("--gateway must be 0 (off) or a number of readings per batch")
        if self.qos not in (0, 1, 2):
            raise ConfigError("--qos must be 0, 1 or 2")
        if self.connections not in ("auto", "per-device", "shared"):
            raise ConfigError("--connections must be auto, per-device or shared")
        if self.connections == "per-device" and self.gateway_batch > 0:
            raise ConfigError(
                "--gateway publishes through gateways: use it with --connections shared or auto"
            )
        if self.payload_format not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}")
        if self.payload_format != "luxtel" and self.gateway_batch > 0:
            raise ConfigError("--gateway sends contract batches: use it with --format luxtel")
        if not _TOPIC_ROOT.match(self.topic_root):
            raise ConfigError(
                f"--topic-root {self.topic_root!r} must be a topic without wildcards or end slashes"
            )
        if self.per_device:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            if soft != resource.RLIM_INFINITY and soft < self.devices + 64:
                raise ConfigError(
                    f"--connections per-device needs {self.devices + 64} open files, the limit is "
                    f"{soft}: raise it (ulimit -n) or use --connections shared"
                )

    def _validate_time(self) -> None:
        for flag, t in (("from", self.start), ("to", self.end)):
            if t is not None and (t.tzinfo is None or t.utcoffset() is None):
                raise ConfigError(f"--{flag} needs a UTC offset, e.g. 2026-06-01T00:00:00Z")
        if self.end is not None and self.start is None:
            raise ConfigError("--to needs --from")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ConfigError("--to must be after --from")
        if not self.speed > 0:
            raise ConfigError("--speed must be a positive factor")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ConfigError("--duration must be a positive number of seconds")
        if self.mode == "backfill" and self.duration_s is not None:
            raise ConfigError(
                "--duration is for real-time, accelerated and flood runs; a backfill ends at --to"
            )


def _flag(name: str) -> str:
    return {"interval_s": "interval", "devices": "devices"}.get(name, name.replace("_", "-"))


@dataclass(frozen=True, slots=True)
class TimePlan:
    mode: Mode
    start_ms: int
    end_ms: int | None
    """Simulated end (exclusive), None to run until stopped."""
    wall_limit_s: float | None
    """Wall-clock bound (flood with a duration)."""

    @property
    def fault_horizon_ms(self) -> int:
        return self.end_ms if self.end_ms is not None else self.start_ms + MS_PER_DAY


def plan_time(config: SimulationConfig, now_ms: int) -> TimePlan:
    """Simulated start and end of the run from the options and the wall clock ``now_ms``."""
    mode = config.mode
    start = None if config.start is None else to_ms(config.start)
    end = None if config.end is None else to_ms(config.end)
    duration_ms = None if config.duration_s is None else int(config.duration_s * 1000)
    if mode == "realtime":
        return TimePlan(mode, now_ms, None if duration_ms is None else now_ms + duration_ms, None)
    if mode == "backfill":
        assert start is not None
        end = end if end is not None else now_ms
        if end <= start:
            raise ConfigError("--from must be in the past when --to is not given")
        return TimePlan(mode, start, end, None)
    if mode == "flood":
        start = start if start is not None else now_ms - 30 * MS_PER_DAY
        end = end if end is not None else max(now_ms, start + 1)
        return TimePlan(mode, start, end, config.duration_s)
    span = None if duration_ms is None else int(duration_ms * config.speed)
    if start is None:
        start = now_ms - (span if span is not None else MS_PER_DAY)
    if end is None and span is not None:
        end = start + span
    return TimePlan(mode, start, end, None)
