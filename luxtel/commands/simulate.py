"""``luxtel simulate``: the typer command over ``run_simulation``.

Mounted by the luxtel CLI with ``app.command("simulate")(simulate)``. Exit status: 0 done (also
after SIGINT/SIGTERM, which stop the run cleanly and still write the truth files), 1 the broker
could not be reached, 2 a bad option (one sentence on stderr).
"""

from __future__ import annotations

import signal
import threading
from datetime import datetime, time
from pathlib import Path
from types import FrameType
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from simulator.clock import rfc3339, to_ms
from simulator.config import PER_DEVICE_LIMIT, ConfigError, SimulationConfig
from simulator.episodes import FAULT_KINDS
from simulator.publisher import PublishError
from simulator.runner import Progress as RunProgress
from simulator.runner import SimulationSummary, run_simulation

_err = Console(stderr=True)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"luxtel simulate: {message}", err=True)
    return typer.Exit(code)


def _parse_centre(text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--centre {text!r} must be LAT,LON, e.g. 31.2304,121.4737") from None
    return lat, lon


def _parse_when(flag: str, text: str | None, tz_name: str) -> datetime | None:
    """RFC 3339 with an offset, or a bare date meaning local midnight in ``--tz``."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--{flag} {text!r} is not an RFC 3339 time or a date") from None
    if len(text) == 10:
        try:
            return datetime.combine(parsed.date(), time(0), tzinfo=ZoneInfo(tz_name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"--tz {tz_name!r} is not an IANA time zone such as Asia/Shanghai"
            ) from None
    if parsed.tzinfo is None:
        raise ConfigError(f"--{flag} {text!r} needs a UTC offset, e.g. 2026-06-01T00:00:00Z")
    return parsed


def simulate(
    devices: Annotated[
        int, typer.Option("--devices", "-n", help="Luminaires in the fleet.")
    ] = 1000,
    zones: Annotated[int, typer.Option(help="Zones (north, south, east, west, centre, …).")] = 4,
    circuits_per_zone: Annotated[
        int, typer.Option(help="Circuits (streets, one cabinet each) per zone.")
    ] = 6,
    centre: Annotated[str, typer.Option(help="City centre as LAT,LON.")] = "31.2304,121.4737",
    tz: Annotated[
        str,
        typer.Option(
            help="IANA time zone of the city (must fit --centre): the dimming calendar runs on it."
        ),
    ] = "Asia/Shanghai",
    interval: Annotated[int, typer.Option(help="Seconds between a luminaire's reports.")] = 900,
    jitter: Annotated[
        float | None,
        typer.Option(help="Random delay of each report, 0 to JITTER s (default: interval / 10)."),
    ] = None,
    dimming: Annotated[
        str,
        typer.Option(
            help="Dimming calendar, HH:MM=PCT set points in local time ('' = never dimmed)."
        ),
    ] = "23:00=50,05:00=100",
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per wall second (60: a minute per second).")
    ] = 1.0,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", help="Backfill (or accelerated) start: RFC 3339, or a date (local midnight)."
        ),
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Backfill end, exclusive (default: now).")
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            help="Wall seconds to run, real-time, accelerated or flood (default: until stopped)."
        ),
    ] = None,
    rate: Annotated[float | None, typer.Option(help="Cap on messages per second.")] = None,
    flood: Annotated[
        bool,
        typer.Option(
            help="Benchmark: publish the last 30 days (or --from/--to) as fast as the broker acks."
        ),
    ] = False,
    gateway: Annotated[
        int,
        typer.Option(
            help="Gateway mode: one gateway per circuit sends batches of up to N readings."
        ),
    ] = 0,
    faults: Annotated[
        str,
        typer.Option(
            help=f"Fault injection, KIND=FRACTION,… with KIND one of {', '.join(FAULT_KINDS)}."
        ),
    ] = "",
    seed: Annotated[
        int, typer.Option(help="Seed: the same seed, options and start give the same run.")
    ] = 1,
    inventory: Annotated[
        Path | None, typer.Option(help="Write the fleet's inventory CSV here.")
    ] = None,
    ground_truth: Annotated[
        Path | None,
        typer.Option(help="Write the injected faults here (CSV, or JSON Lines if *.jsonl)."),
    ] = None,
    energy_truth: Annotated[
        Path | None, typer.Option(help="Write each luminaire's true energy here (CSV, or *.jsonl).")
    ] = None,
    mqtt_url: Annotated[
        str,
        typer.Option(
            envvar="LUXTEL_MQTT__URL", help="Broker, mqtt://host:port or mqtts://host:port."
        ),
    ] = "mqtt://127.0.0.1:1883",
    mqtt_username: Annotated[
        str | None, typer.Option(envvar="LUXTEL_MQTT__USERNAME", help="Broker user.")
    ] = None,
    mqtt_password: Annotated[
        str | None,
        typer.Option(
            envvar="LUXTEL_MQTT__PASSWORD", help="Broker password (from the environment)."
        ),
    ] = None,
    topic_root: Annotated[str, typer.Option(help="Topic root.")] = "lighting",
    qos: Annotated[int, typer.Option(help="QoS of telemetry and status messages.")] = 1,
    connections: Annotated[
        str,
        typer.Option(
            help="per-device (own client id and Last Will per luminaire), shared (one "
            "connection; an offline fault then publishes the offline status itself) or auto "
            f"(per-device up to {PER_DEVICE_LIMIT} luminaires)."
        ),
    ] = "auto",
    window: Annotated[
        int, typer.Option(help="Messages in flight before waiting for acknowledgements.")
    ] = 1000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    payload_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="The form of each reading: luxtel (the contract's telemetry), chirpstack "
            "(ChirpStack v4 uplinks on application/…/event/up), tts (The Things Stack v3 on "
            "v3/…/up) or senml (SenML packs on lwm2m/{device}/senml); luxtel takes them with "
            "deploy/sources/sources.example.toml and the fleet's --inventory.",
        ),
    ] = "luxtel",
) -> None:
    """Publish the readings of a simulated fleet of street lights over MQTT, faults on request."""
    try:
        lat, lon = _parse_centre(centre)
        config = SimulationConfig(
            devices=devices,
            zones=zones,
            circuits_per_zone=circuits_per_zone,
            centre_lat=lat,
            centre_lon=lon,
            tz=tz,
            interval_s=interval,
            jitter_s=jitter,
            dimming=dimming,
            speed=speed,
            start=_parse_when("from", from_, tz),
            end=_parse_when("to", to, tz),
            duration_s=duration,
            rate=rate,
            flood=flood,
            gateway_batch=gateway,
            faults=faults,
            seed=seed,
            inventory_path=inventory,
            ground_truth_path=ground_truth,
            energy_truth_path=energy_truth,
            mqtt_url=mqtt_url,
            mqtt_username=mqtt_username,
            mqtt_password=mqtt_password,
            topic_root=topic_root,
            qos=qos,
            connections=_connections(connections),
            window=window,
            payload_format=payload_format,
        )
        config.validate()
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in previous:
            signal.signal(sig, on_signal)
    try:
        summary = _run_with_progress(config, stop, quiet)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    except (PublishError, OSError) as exc:
        raise _fail(str(exc), 1) from None
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    _print_summary(summary)


def _connections(value: str) -> Literal["auto", "per-device", "shared"]:
    if value == "auto":
        return "auto"
    if value == "per-device":
        return "per-device"
    if value == "shared":
        return "shared"
    raise ConfigError("--connections must be auto, per-device or shared")


def _run_with_progress(
    config: SimulationConfig, stop: threading.Event, quiet: bool
) -> SimulationSummary:
    if quiet:
        return run_simulation(config, stop)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[sim]}"),
        TextColumn("{task.fields[msgs]} msgs, {task.fields[rate]} msg/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_err, transient=False) as bar:
        task: TaskID | None = None

        def show(p: RunProgress) -> None:
            nonlocal task
            total = None if p.end_ms is None else float(p.end_ms - p.start_ms)
            if task is None:
                task = bar.add_task(config.mode, total=total, sim="", msgs=0, rate=0)
            bar.update(
                task,
                completed=float(p.sim_ms - p.start_ms),
                sim=rfc3339(p.sim_ms)[:16].replace("T", " "),
                msgs=f"{p.acked:,}",
                rate=f"{p.acked / p.elapsed_s:,.0f}" if p.elapsed_s > 0 else "0",
            )

        return run_simulation(config, stop, show)


def _print_summary(s: SimulationSummary) -> None:
    typer.echo(
        f"{s.mode}, {s.devices:,} luminaires ({s.connections} connections): "
        f"{rfc3339(to_ms(s.start))} → {rfc3339(to_ms(s.stop))}"
    )
    typer.echo(
        f"{s.messages:,} messages acknowledged in {s.wall_s:.1f} s ({s.rate:,.0f} msg/s): "
        f"{s.readings:,} readings, {s.telemetry:,} telemetry, {s.batches:,} batches, "
        f"{s.statuses:,} statuses, {s.drops:,} dropped connections"
    )
    if s.unacknowledged:
        typer.echo(f"{s.unacknowledged:,} messages were not acknowledged", err=True)
    typer.echo(f"faults: {s.episodes_applied} episodes applied ({s.episodes_planned} planned)")
    for name, path in s.files.items():
        typer.echo(f"{name.replace('_', ' ')}: {path}")
