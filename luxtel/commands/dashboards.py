"""`luxtel dashboards build` and `luxtel dashboards push`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from dashboards.build import DEFAULT_OUT, build_dashboards, render, write_dashboards
from dashboards.inventory import Inventory, InventoryError, read_inventory
from dashboards.push import DatasourceTargets, PushError, push_dashboards

dashboards_app = typer.Typer(
    help="Build the Grafana dashboards into JSON files, or push them to a running Grafana.",
    no_args_is_help=True,
)
_console = Console(stderr=True)

InventoryOption = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        help="Luminaire inventory CSV: adds the circuit variable and the fleet size. Without "
        "it the dashboards are zone and device level only (the map's places come from the "
        "rules engine's inventory, through InfluxDB).",
        dir_okay=False,
    ),
]


def _inventory(path: Path | None) -> Inventory:
    if path is None:
        return Inventory()
    try:
        return read_inventory(path)
    except InventoryError as error:
        _console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None


@dashboards_app.command()
def build(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for the JSON files.", file_okay=False)
    ] = DEFAULT_OUT,
    inventory: InventoryOption = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 when the files differ from the code."),
    ] = False,
) -> None:
    """Write every dashboard to OUT (deploy/grafana/dashboards by default), reproducibly."""
    fleet = _inventory(inventory)
    if check:
        stale = [
            name
            for name, model in build_dashboards(fleet).items()
            if not (out / name).is_file()
            or (out / name).read_text(encoding="utf-8") != render(model)
        ]
        for name in stale:
            _console.print(f"{out / name} differs from what the code builds")
        raise typer.Exit(1 if stale else 0)
    for path in write_dashboards(out, fleet):
        typer.echo(str(path))


@dashboards_app.command()
def push(
    url: Annotated[
        str, typer.Option("--url", help="Grafana's base URL, e.g. http://grafana:3000.")
    ],
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar="GRAFANA_TOKEN",
            help="A Grafana service-account token (Editor); better from GRAFANA_TOKEN.",
            show_default=False,
        ),
    ],
    inventory: InventoryOption = None,
    influx_url: Annotated[
        str, typer.Option(help="InfluxDB URL for a data source that does not exist yet.")
    ] = "http://influxdb:8086",
    influx_database: Annotated[str, typer.Option(help="InfluxDB database.")] = "lighting",
    influx_token: Annotated[
        str | None,
        typer.Option(
            envvar="GRAFANA_INFLUX_TOKEN",
            help="InfluxDB 2.x/3.x token for the data source Grafana queries with (read access).",
            show_default=False,
        ),
    ] = None,
    prometheus_url: Annotated[
        str, typer.Option(help="Prometheus URL for a data source that does not exist yet.")
    ] = "http://prometheus:9090",
) -> None:
    """Upload the dashboards into Grafana's "luxtel" folder, creating the folder and the data
    sources when missing (existing data sources are left as they are)."""
    models = build_dashboards(_inventory(inventory))
    targets = DatasourceTargets(influx_url, influx_database, influx_token, prometheus_url)
    try:
        result = push_dashboards(url, token, models, targets)
    except PushError as error:
        _console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    if result.folder_created:
        typer.echo("created folder luxtel")
    for uid in result.datasources_created:
        typer.echo(f"created data source {uid}")
    for uid in result.dashboards:
        typer.echo(f"pushed dashboard {uid}")
