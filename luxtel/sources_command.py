"""`luxtel sources check FILE [--sample TOPIC PAYLOAD.json]`: validate a sources file and try
a payload against it, as `luxtel run` would decode it.

Mount: `app.add_typer(sources_app, name="sources")`.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
from pydantic import BaseModel

sources_app = typer.Typer(
    help="Sources beyond the contract.", no_args_is_help=True, add_completion=False
)


@sources_app.callback()
def _sources() -> None:
    """Sources beyond the contract (ChirpStack, The Things Stack, SenML, declared mappings)."""


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"luxtel: {message}", err=True)
    return typer.Exit(code)


@sources_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The sources file (TOML, [[sources]] tables).")],
    sample: Annotated[
        tuple[str, Path] | None,
        typer.Option(
            "--sample",
            help="A topic and a file holding a payload: print the readings it maps to, or "
            "the reason it would be dead-lettered.",
        ),
    ] = None,
    inventory: Annotated[
        Path | None,
        typer.Option("--inventory", help="The luminaire inventory CSV (default: -c's)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="luxtel's TOML configuration (root, inventory)."),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option("--now", help="The receive time, RFC 3339 (default: the wall clock)."),
    ] = None,
) -> None:
    """Validate a sources file (exit 2 with file:line and key); with --sample, decode one
    payload as `luxtel run` would (exit 1 when it would be dead-lettered)."""
    from ingest.adapters.build import SourcesError, source_router
    from ingest.adapters.config import load_sources
    from ingest.decode import Limits, decode

    topic_root, max_payload = "lighting", 1024 * 1024
    if config is not None:
        from luxtel.settings import ConfigError, load_settings

        try:
            settings = load_settings(config)
        except ConfigError as error:
            raise _fail(f"configuration error: {error}", 2) from None
        topic_root = settings.mqtt.topic_root
        max_payload = settings.ingest.max_payload_bytes
        inventory = inventory or settings.inventory.path
    try:
        router = source_router(file, inventory, topic_root)
        configs = load_sources(file)
    except SourcesError as error:
        raise _fail(str(error), 2) from None
    if sample is None:
        for source in configs:
            typer.echo(f"{source.name}: {source.adapter} on {source.topic}")
        typer.echo(f"{file}: {len(configs)} sources OK")
        return
    topic, payload_file = sample
    try:
        payload = payload_file.read_bytes()
    except OSError as error:
        raise _fail(f"cannot read {str(payload_file)!r}: {error.strerror}", 2) from None
    received_at = datetime.now(UTC)
    if now is not None:
        try:
            received_at = datetime.fromisoformat(now.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            raise _fail(f"--now {now!r} is not an RFC 3339 time", 2) from None
    limits = Limits(
        topic_root=topic_root, max_payload_bytes=max_payload, observe=True, sources=router
    )
    decoded = decode(topic, payload, received_at, limits)
    route = router.route(topic)
    taker = "the contract" if route is None else f"source {route.adapter.source.name!r}"
    typer.echo(f"{topic}: {taker}")
    for observation in decoded.observations:
        shown = observation.reading or observation.status
        assert isinstance(shown, BaseModel), "the decoder's observations hold models"
        values = shown.model_dump(mode="json", exclude_none=True, exclude={"device_id"})
        head = {"zone": observation.zone, "device_id": observation.device_id}
        kind = "reading" if observation.reading is not None else "status"
        typer.echo(f"{kind}: " + orjson.dumps({**head, **values}).decode())
    for point in decoded.points:
        typer.echo(f"line: {point.line}")
    for record in decoded.dead_letters:
        where = f" (element {record.index})" if record.index is not None else ""
        typer.echo(f"dead letter{where}: {record.reason}: {record.detail}")
    if decoded.dead_letters:
        raise typer.Exit(1)
