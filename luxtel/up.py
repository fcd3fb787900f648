"""`luxtel up`: the whole system on one machine, for a first look.

Starts (or reuses, when URLs are configured) a Mosquitto and an InfluxDB with their data under
`{state_dir}/up/`, runs the pipeline in this process and a simulated fleet beside it in accelerated
time, and shows what flows until Ctrl-C; then the fleet stops first, the pipeline drains, and the
servers stop. The data stays for the next `luxtel up`.

The rules engine runs too, with the shipped rules (`deploy/rules/streetlight.yaml`) and the
simulated fleet's inventory, unless the configuration names its own rules or inventory: so the
alerts and the city map (the engine's `luminaire_state` points) have something to show.
"""

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from rich.console import Console
from rich.live import Live

from influx.client import InfluxWriter
from luxtel.live_view import (
    TITLE,
    Counters,
    FleetNow,
    Where,
    fleet_now,
    render,
    status_line,
    where_lines,
)
from luxtel.local_stack import LocalStack, port_is_free
from luxtel.pipeline import Pipeline, influx_target
from luxtel.settings import Settings
from simulator.config import SimulationConfig
from simulator.fleet import write_inventory_csv
from simulator.runner import Progress, build_plan, run_simulation

log = structlog.get_logger("luxtel.up")

REFRESH_S = 0.5
PLAIN_EVERY_S = 5.0

SHIPPED_RULES = Path("deploy") / "rules" / "streetlight.yaml"
"""The shipped rules, relative to a checkout of the repository."""
SHIPPED_SOURCES = Path("deploy") / "sources" / "sources.example.toml"
"""The example sources (`luxtel up --format chirpstack|tts|senml` takes the fleet with them)."""


@dataclass
class SimulationState:
    """What the fleet's thread reports, read by the view."""

    sim_ms: int | None = None
    sent: int = 0
    finished: bool = False
    error: BaseException | None = None


def local_settings(settings: Settings, stack: LocalStack, state_dir: Path) -> Settings:
    """The settings pointed at the local stack, with the pipeline's state under `state_dir`
    and /metrics on its configured port, or another when that one is taken."""
    assert stack.mqtt_url is not None
    assert stack.influx_url is not None
    metrics = settings.metrics
    if metrics.enabled and metrics.port and not port_is_free(metrics.port, metrics.host):
        metrics = metrics.model_copy(update={"port": 0})
    return settings.model_copy(
        update={
            "state_dir": state_dir,
            "mqtt": settings.mqtt.model_copy(update={"url": stack.mqtt_url}),
            "influx": settings.influx.model_copy(update={"url": stack.influx_url}),
            "metrics": metrics,
        }
    )


def shipped_rules(relative: Path = SHIPPED_RULES) -> Path | None:
    """The shipped rules file: in the checkout luxtel runs from (an editable install), else in
    the current directory's checkout; None when neither has it (an installed package without
    the repository: the rules stay off unless the configuration names a file)."""
    for root in (Path(__file__).resolve().parent.parent, Path.cwd()):
        path = root / relative
        if path.is_file():
            return path
    return None


def with_sources(settings: Settings, payload_format: str) -> Settings:
    """For a fleet that publishes in another form than the contract's: the example sources
    file, unless the configuration names its own."""
    if payload_format == "luxtel" or settings.sources.path is not None:
        return settings
    sources = shipped_rules(SHIPPED_SOURCES)
    if sources is None:
        raise OSError(f"--format {payload_format} needs sources.path (no {SHIPPED_SOURCES} here)")
    return settings.model_copy(
        update={"sources": settings.sources.model_copy(update={"path": sources})}
    )


def with_rules(settings: Settings, inventory: Path, rules: Path | None) -> Settings:
    """The settings with the rules engine on: `rules` and the simulated fleet's `inventory`,
    each unless the configuration sets its own."""
    if settings.rules.path is None and rules is not None:
        settings = settings.model_copy(
            update={"rules": settings.rules.model_copy(update={"path": rules})}
        )
    if settings.inventory.path is None:
        settings = settings.model_copy(
            update={"inventory": settings.inventory.model_copy(update={"path": inventory})}
        )
    return settings


def fleet_config(
    base: SimulationConfig, settings: Settings, hours_back: float, up_dir: Path
) -> SimulationConfig:
    """The simulated fleet: starting `hours_back` ago, catching up with now at `base.speed`."""
    start = datetime.now(UTC) - timedelta(hours=hours_back)
    return replace(
        base,
        start=start.replace(microsecond=0),
        mqtt_url=settings.mqtt.url,
        topic_root=settings.mqtt.topic_root,
        inventory_path=up_dir / "inventory.csv",
        ground_truth_path=up_dir / "faults.csv",
        energy_truth_path=up_dir / "energy-truth.csv",
        client_id="luxtel-up-fleet",
    )


async def run_up(
    settings: Settings,
    fleet: SimulationConfig,
    hours_back: float,
    console: Console,
) -> None:
    """Run the local stack until SIGINT/SIGTERM."""
    up_dir = settings.state_dir / "up"
    configured = settings.mqtt.model_fields_set, settings.influx.model_fields_set
    stack = LocalStack(
        up_dir,
        mqtt_url=settings.mqtt.url if "url" in configured[0] else None,
        influx_url=settings.influx.url if "url" in configured[1] else None,
    )
    with stack:
        local = local_settings(settings, stack, up_dir / "luxtel")
        fleet = fleet_config(fleet, local, hours_back, up_dir)
        assert fleet.inventory_path is not None
        # The rules engine reads the inventory as it starts, before the fleet would write it.
        write_inventory_csv(fleet.inventory_path, build_plan(fleet).fleet)
        local = with_rules(local, fleet.inventory_path, shipped_rules())
        local = with_sources(local, fleet.payload_format)
        pipeline = Pipeline(local)
        state = SimulationState()
        stop_fleet = threading.Event()
        stop_requested = asyncio.Event()
        loop = asyncio.get_running_loop()

        def request_stop() -> None:
            stop_fleet.set()
            stop_requested.set()

        def fleet_failed() -> None:
            loop.call_soon_threadsafe(request_stop)

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, request_stop)
        where = Where(
            mqtt_url=local.mqtt.url,
            influx_url=local.influx.url,
            database=local.influx.database,
            state_dir=str(up_dir.resolve()),
            topic_root=local.mqtt.topic_root,
            rules=str(local.rules.path) if local.rules.path is not None else None,
            rules_state_dir=str(local.state_dir.resolve()),
        )
        log.info(
            "up",
            mqtt=where.mqtt_url,
            influx=where.influx_url,
            state=where.state_dir,
            rules=where.rules,
            inventory=str(local.inventory.path),
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(pipeline.run(), name="pipeline")
                await pipeline.wait_connected()
                fleet_task = group.create_task(
                    asyncio.to_thread(_run_fleet, fleet, stop_fleet, state, fleet_failed),
                    name="fleet",
                )
                group.create_task(
                    _show(pipeline, local, where, state, console, stop_requested),
                    name="view",
                )
                await stop_requested.wait()
                await fleet_task
                pipeline.stop.set()
        finally:
            stop_fleet.set()  # whatever ended the group, the fleet's thread must end too
        if state.error is not None:
            raise state.error


def _run_fleet(
    config: SimulationConfig,
    stop: threading.Event,
    state: SimulationState,
    on_failure: Callable[[], None],
) -> None:
    def progress(report: Progress) -> None:
        state.sim_ms = report.sim_ms
        state.sent = report.sent

    try:
        run_simulation(config, stop, progress)
    except BaseException as error:  # raised once everything has stopped
        state.error = error
        on_failure()
    finally:
        state.finished = True


async def _show(
    pipeline: Pipeline,
    settings: Settings,
    where: Where,
    state: SimulationState,
    console: Console,
    stop: asyncio.Event,
) -> None:
    """The view until `stop`."""
    counters = Counters()
    fleet = FleetNow()
    async with InfluxWriter(influx_target(settings)) as writer:
        if console.is_terminal:
            with Live(console=console, refresh_per_second=1 / REFRESH_S, transient=False) as live:
                while not stop.is_set():
                    counters.update(pipeline.metrics.registry)
                    fleet = await fleet_now(writer, window_s=2 * 900)
                    live.update(render(counters, fleet, where, _sim_text(state)))
                    await asyncio.sleep(REFRESH_S)
        else:
            console.print(TITLE, soft_wrap=True, markup=False, highlight=False)
            for line in where_lines(where):
                console.print(line, soft_wrap=True, markup=False, highlight=False)
            while not stop.is_set():
                counters.update(pipeline.metrics.registry)
                fleet = await fleet_now(writer, window_s=2 * 900)
                line = status_line(counters, fleet, _sim_text(state))
                console.print(line, soft_wrap=True, markup=False, highlight=False)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), PLAIN_EVERY_S)


def _sim_text(state: SimulationState) -> str:
    if state.sim_ms is None:
        return "starting"
    moment = datetime.fromtimestamp(state.sim_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{moment}{' (finished)' if state.finished else ''}"


def default_console() -> Console:
    return Console(file=sys.stdout)
