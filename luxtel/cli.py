"""The `luxtel` command line."""

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated

import structlog
import typer

from luxtel.logs import configure_logging
from luxtel.pipeline import Pipeline, PipelineFailedError
from luxtel.settings import ConfigError, Settings, load_settings

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


async def run_pipeline(settings: Settings) -> None:
    """Run the pipeline until SIGINT or SIGTERM, then drain and return."""
    pipeline = Pipeline(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, pipeline.stop.set)
    await pipeline.run()


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run the pipeline: subscribe, validate, write to InfluxDB; stop with Ctrl-C or SIGTERM."""
    settings = settings_or_exit(config)
    configure_logging(settings.log.level, settings.log.format)
    try:
        asyncio.run(run_pipeline(settings))
    except PipelineFailedError as error:
        structlog.get_logger("luxtel").error("failed", error=str(error))
        raise fail(str(error), 1) from None


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
