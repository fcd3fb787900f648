"""`luxtel rules …` and `luxtel alerts …`: check a rules file; list, acknowledge and silence
alerts in the engine's SQLite state (safe while `luxtel run` is running: WAL mode, short
transactions; the engine reads silences and acknowledgements on every cycle).

Mount: `app.add_typer(rules_app, name="rules")`, `app.add_typer(alerts_app, name="alerts")`.
"""

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rules.language.durations import parse_duration
from rules.language.errors import RuleFileError
from rules.language.loader import load_rules
from rules.notify.config import load_notify
from rules.notify.dispatch import Silence
from rules.notify.listing import Format, Listing, render
from rules.notify.routing import Matcher
from rules.runtime.engine import STATE_FILE
from rules.runtime.store import Store

rules_app = typer.Typer(help="Alerting rules.", no_args_is_help=True, add_completion=False)
alerts_app = typer.Typer(
    help="Alerts: list, acknowledge, silence.", no_args_is_help=True, add_completion=False
)


@rules_app.callback()
def _rules() -> None:
    """Alerting rules."""


StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", help="luxtel's state_dir (default: from -c/--config, else ./state)."
    ),
]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", "-c", help="luxtel's TOML configuration file.")
]


@rules_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The rules file (YAML).")],
    notify: Annotated[
        Path | None, typer.Option("--notify", help="Also check this notification file.")
    ] = None,
) -> None:
    """Validate a rules file; exit 2 with every problem, each as file:line."""
    problems: list[str] = []
    try:
        rules = load_rules(file)
    except RuleFileError as error:
        problems += [str(p) for p in error.problems]
        rules = None
    if notify is not None:
        try:
            load_notify(notify)
        except RuleFileError as error:
            problems += [str(p) for p in error.problems]
    if problems:
        for line in problems:
            typer.echo(line, err=True)
        raise typer.Exit(2)
    assert rules is not None
    typer.echo(f"{file}: {len(rules.rules)} rules OK")


def _store(state_dir: Path | None, config: Path | None, *, create: bool = False) -> Store:
    if state_dir is None:
        from luxtel.settings import ConfigError, load_settings

        try:
            state_dir = load_settings(config).state_dir
        except ConfigError as error:
            typer.echo(f"luxtel: configuration error: {error}", err=True)
            raise typer.Exit(2) from None
    path = state_dir / STATE_FILE
    if not create and not path.exists():
        typer.echo(
            f"luxtel: no rules state at {path} (has `luxtel run` evaluated rules?)", err=True
        )
        raise typer.Exit(2)
    return Store(path)


@alerts_app.command("list")
def list_alerts(
    state_dir: StateDir = None,
    config: ConfigFile = None,
    all_: Annotated[bool, typer.Option("--all", help="Also pending and resolved.")] = False,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format", help="table (fits the terminal), json or csv (every field, for scripts)."
        ),
    ] = "table",
) -> None:
    """The firing alerts (and, with --all, pending and resolved ones awaiting their notice),
    and the notifications that failed for good."""
    store = _store(state_dir, config)
    try:
        acked = frozenset(store.acked())
        alerts = sorted(store.alerts(), key=lambda a: (a.zone, a.rule, a.device_id))
        counts = store.outbox_counts()
        given_up = store.given_up()
        silences = [s for s in store.silences() if s.ends_at > datetime.now(UTC)]
    finally:
        store.close()
    listing = Listing(
        [a for a in alerts if all_ or a.state == "firing"],
        acked,
        given_up,
        counts["unsent"],
        counts["failed_attempts"],
        len(silences),
    )
    render(listing, fmt, Console(highlight=False))


@alerts_app.command("ack")
def ack(
    alert_id: Annotated[str, typer.Argument(help="The alert's id (or a unique prefix).")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the record.")] = "",
    state_dir: StateDir = None,
    config: ConfigFile = None,
) -> None:
    """Acknowledge an alert: no more repeats of it; its resolved notice still goes out."""
    store = _store(state_dir, config)
    try:
        matches = [a for a in store.alerts() if a.id.startswith(alert_id)]
        if len(matches) != 1:
            what = "no alert" if not matches else f"{len(matches)} alerts"
            typer.echo(f"luxtel: {what} with id {alert_id!r}", err=True)
            raise typer.Exit(2)
        store.ack(matches[0].id, datetime.now(UTC), reason)
    finally:
        store.close()
    typer.echo(f"acknowledged {matches[0].id}: {matches[0].summary}")


@alerts_app.command("silence")
def silence(
    reason: Annotated[str, typer.Option("--reason", help="Why (maintenance ticket…).")],
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 4h.")] = "2h",
    zone: Annotated[str | None, typer.Option("--zone")] = None,
    circuit: Annotated[str | None, typer.Option("--circuit")] = None,
    device: Annotated[str | None, typer.Option("--device")] = None,
    rule: Annotated[str | None, typer.Option("--rule")] = None,
    matcher: Annotated[
        list[str] | None, typer.Option("--match", help="More matchers: label=value, =~, !=.")
    ] = None,
    state_dir: StateDir = None,
    config: ConfigFile = None,
) -> None:
    """Silence the alerts matching every option, e.g. `--zone north --for 4h --reason works`."""
    try:
        span = parse_duration(duration)
        matchers = [
            Matcher("zone", "=", zone) if zone else None,
            Matcher("circuit", "=", circuit) if circuit else None,
            Matcher("device_id", "=", device) if device else None,
            Matcher("rule", "=", rule) if rule else None,
            *(Matcher.parse(m) for m in matcher or []),
        ]
    except ValueError as error:
        typer.echo(f"luxtel: {error}", err=True)
        raise typer.Exit(2) from None
    chosen = tuple(m for m in matchers if m is not None)
    if not chosen:
        typer.echo(
            "luxtel: a silence needs at least one of --zone, --circuit, --device, --rule, --match",
            err=True,
        )
        raise typer.Exit(2)
    now = datetime.now(UTC)
    ident = hashlib.blake2b(f"{now.isoformat()}{chosen}".encode(), digest_size=5).hexdigest()
    store = _store(state_dir, config, create=True)
    try:
        store.add_silence(Silence(ident, chosen, now, now + span, reason))
    finally:
        store.close()
    until = (now + span).isoformat(timespec="minutes")
    typer.echo(f"silence {ident}: {', '.join(map(str, chosen))} until {until}")
