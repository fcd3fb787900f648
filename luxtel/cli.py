"""The `luxtel` command line."""

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import structlog
import typer

from common.gc_settings import tune_for_ingest
from common.logs import configure_logging
from luxtel.commands.dashboards import dashboards_app
from luxtel.commands.energy import energy_app, export
from luxtel.commands.rules import alerts_app, rules_app
from luxtel.commands.simulate import simulate
from luxtel.config_example import example_toml
from luxtel.local_servers import ServerError
from luxtel.pipeline import Pipeline, PipelineFailedError, check_sources
from luxtel.settings import ConfigError, Settings, load_settings
from luxtel.sources_command import sources_app
from luxtel.up import default_console, run_up
from rules.evaluation.inventory import load_inventory
from rules.language.errors import RuleFileError
from rules.language.loader import load_rules
from rules.notify.config import load_notify
from simulator.config import ConfigError as SimulationConfigError
from simulator.config import SimulationConfig

app = typer.Typer(
    help="luxtel: street-lighting telemetry from MQTT into InfluxDB, with alerts for crews.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """luxtel: street-lighting telemetry from MQTT into InfluxDB, with alerts for crews."""


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML configuration file (default ./luxtel.toml)."),
]


def fail(message: str, code: int) -> typer.Exit:
    """Print one sentence to stderr and return the exit to raise."""
    typer.echo(f"luxtel: {message}", err=True)
    return typer.Exit(code)


def settings_or_exit(config: Path | None) -> Settings:
    """Load the settings, or stop with exit status 2 and one sentence naming the key."""
    try:
        return load_settings(config)
    except ConfigError as error:
        raise fail(f"configuration error: {error}", 2) from None


def rule_files_or_exit(settings: Settings) -> None:
    """The rules, notification and inventory files the rules engine will load must load, or
    `luxtel run` stops with exit status 2 naming the key and the file:line (every problem:
    `luxtel rules check FILE`). Only the run checks them: loading the settings does not, so
    `luxtel alerts` and `luxtel energy` work while a rules file is being fixed."""
    if settings.rules.path is None:
        return
    checks: tuple[tuple[str, Path | None, Callable[[Path], object]], ...] = (
        ("rules.path", settings.rules.path, load_rules),
        ("rules.notify", settings.rules.notify, load_notify),
        ("inventory.path", settings.inventory.path, load_inventory),
    )
    for key, path, load in checks:
        if path is None:
            continue
        try:
            load(path)
        except RuleFileError as error:
            more = len(error.problems) - 1
            extra = f" (and {more} more problem(s): see `luxtel rules check`)" if more else ""
            raise fail(f"configuration error: {key}: {error.problems[0]}{extra}", 2) from None


def source_files_or_exit(settings: Settings) -> None:
    """The sources file must load, or `luxtel run` stops with exit status 2 naming the key."""
    try:
        check_sources(settings)
    except ConfigError as error:
        raise fail(f"configuration error: {error}", 2) from None


async def run_pipeline(settings: Settings) -> None:
    """Run the pipeline until SIGINT or SIGTERM, then drain and return."""
    pipeline = Pipeline(settings)
    tune_for_ingest()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, pipeline.stop.set)
    await pipeline.run()


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run the pipeline: subscribe, validate, write to InfluxDB; stop with Ctrl-C or SIGTERM."""
    settings = settings_or_exit(config)
    rule_files_or_exit(settings)
    source_files_or_exit(settings)
    configure_logging(settings.log.level, settings.log.format)
    try:
        asyncio.run(run_pipeline(settings))
    except PipelineFailedError as error:
        structlog.get_logger("luxtel").error("failed", error=str(error))
        raise fail(str(error), 1) from None


app.command("simulate")(simulate)
app.add_typer(dashboards_app, name="dashboards", help="Build and push the Grafana dashboards.")
app.add_typer(rules_app, name="rules", help="Check rules files.")
app.add_typer(sources_app, name="sources", help="Check sources files and try payloads.")
app.add_typer(alerts_app, name="alerts", help="List, acknowledge and silence alerts.")
app.add_typer(energy_app, name="energy", help="The energy auditor's reports.")
app.command("export")(export)
config_app = typer.Typer(help="luxtel's configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("example")
def config_example() -> None:
    """Print a commented luxtel.toml with every setting and its default."""
    typer.echo(example_toml(), nl=False)


@app.command()
def up(
    config: ConfigOption = None,
    devices: Annotated[int, typer.Option("--devices", "-n", help="Luminaires.")] = 1000,
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second.")] = 60.0,
    hours_back: Annotated[
        float, typer.Option(help="The fleet starts this many hours ago and catches up with now.")
    ] = 18.0,
    interval: Annotated[int, typer.Option(help="Seconds between a luminaire's reports.")] = 900,
    faults: Annotated[
        str, typer.Option(help="Fault injection, KIND=FRACTION,… (see `luxtel simulate --help`).")
    ] = "lamp_failure=0.02,day_burning=0.01,offline=0.01",
    seed: Annotated[int, typer.Option(help="Seed of the simulated fleet.")] = 1,
    centre: Annotated[str, typer.Option(help="City centre as LAT,LON.")] = "31.2304,121.4737",
    tz: Annotated[str, typer.Option(help="IANA time zone of the city.")] = "Asia/Shanghai",
    payload_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="The fleet's form: luxtel, chirpstack, tts or senml (see `luxtel simulate "
            "--help`); luxtel then takes it with deploy/sources/sources.example.toml unless "
            "the configuration names its sources.path.",
        ),
    ] = "luxtel",
) -> None:
    """Start a local Mosquitto and InfluxDB, the pipeline and a simulated city; Ctrl-C stops."""
    settings = settings_or_exit(config)
    rule_files_or_exit(settings)
    source_files_or_exit(settings)
    try:
        lat, lon = (float(part) for part in centre.split(","))
        fleet = SimulationConfig(
            devices=devices,
            speed=speed,
            interval_s=interval,
            faults=faults,
            seed=seed,
            centre_lat=lat,
            centre_lon=lon,
            tz=tz,
            payload_format=payload_format,
        )
        fleet.validate()
    except (ValueError, SimulationConfigError) as error:
        raise fail(f"bad option: {error}", 2) from None
    up_dir = settings.state_dir / "up"
    up_dir.mkdir(parents=True, exist_ok=True)
    with (up_dir / "luxtel.log").open("a") as log_file:
        configure_logging(settings.log.level, settings.log.format, to=log_file)
        try:
            asyncio.run(run_up(settings, fleet, hours_back, default_console()))
        except (PipelineFailedError, ServerError, OSError) as error:
            raise fail(str(error), 1) from None


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
