"""``luxtel energy report`` and ``luxtel export``: the typer shells over the energy package.

Mount with ``app.add_typer(energy_app, name="energy")`` and ``app.command("export")(export)``.
Both read InfluxDB's location from luxtel's settings (``-c luxtel.toml``, the environment).
Exit status: 0 done, 1 failure at run time (InfluxDB away or refusing), 2 bad usage (one
sentence on stderr).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from energy.inventory import InventoryError, Luminaire, read_inventory
from energy.output import write_rows
from energy.periods import day_edges, half_hour_edges, month_edges, to_ms, whole
from energy.queries import DAY_MS, QueryError, checked
from energy.report import ALL, GRID_FACTOR_KG_PER_KWH, Axis, By, ReportBuilder
from energy.retention import RetentionError, ensure_retention
from energy.rollup import ceil_hour, floor_hour
from energy.rollup_reader import Sources, feed_report
from energy.rollup_store import Built, delete_range
from energy.rollup_store import build as build_rollups
from energy.settlement import write_settlement
from energy.source import feed
from influx.client import InfluxWriter
from influx.errors import InfluxError
from luxtel.pipeline import energy_target
from luxtel.rollups import retention_config, rollup_config
from luxtel.settings import ConfigError, Settings, load_settings

energy_app = typer.Typer(
    help="The energy auditor's reports.", no_args_is_help=True, add_completion=False
)
_err = Console(stderr=True)
T = TypeVar("T")


@energy_app.callback()
def _energy() -> None:
    """The energy auditor's reports."""


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML configuration file (default ./luxtel.toml)."),
]
FromOption = Annotated[
    str, typer.Option("--from", help="Start: RFC 3339 with offset, or a date (local midnight).")
]
ToOption = Annotated[str, typer.Option("--to", help="End (exclusive), as --from.")]
ZoneOption = Annotated[
    list[str] | None, typer.Option("--zone", help="Only this zone (repeat for several).")
]
TzOption = Annotated[
    str, typer.Option("--tz", help="IANA time zone of the city's days, months and dates.")
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"luxtel: {message}", err=True)
    return typer.Exit(code)


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as error:
        raise _fail(f"configuration error: {error}", 2) from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(f"--tz {name!r} is not an IANA time zone such as Europe/London", 2) from None


def _when(flag: str, text: str, tz: ZoneInfo) -> int:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"--{flag} {text!r} is not an RFC 3339 time or a date", 2) from None
    if len(text) == 10:
        parsed = datetime.combine(parsed.date(), time(0), tzinfo=tz)
    if parsed.tzinfo is None:
        raise _fail(f"--{flag} {text!r} needs a UTC offset, e.g. 2026-03-01T00:00:00Z", 2)
    return to_ms(parsed)


def _period(start: str, end: str, tz: ZoneInfo) -> tuple[int, int]:
    a, b = _when("from", start, tz), _when("to", end, tz)
    if b <= a:
        raise _fail("--to must be after --from", 2)
    return a, b


def _names(kind: str, values: list[str] | None) -> list[str]:
    try:
        return [checked(kind, v) for v in values or []]
    except QueryError as error:
        raise _fail(str(error), 2) from None


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[points]:,} points"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_err,
        transient=True,
    )


def _run(work: Callable[[InfluxWriter], Coroutine[Any, Any, T]], settings: Settings) -> T:
    async def main() -> T:
        async with InfluxWriter(energy_target(settings)) as writer:
            return await work(writer)

    try:
        return asyncio.run(main())
    except InfluxError as error:
        raise _fail(str(error), 1) from None


def _inventory(settings: Settings, path: Path | None, zones: list[str]) -> dict[str, Luminaire]:
    path = path or settings.inventory.path
    if path is None:
        raise _fail("the report needs the inventory: set inventory.path or give --inventory", 2)
    try:
        inventory = read_inventory(path)
    except InventoryError as error:
        raise _fail(str(error), 2) from None
    if zones:
        inventory = {k: v for k, v in inventory.items() if v.zone in zones}
        if not inventory:
            raise _fail(f"no luminaire of zone {', '.join(zones)} in the inventory", 2)
    return inventory


def _axes(
    by: By, start: int, end: int, tz: ZoneInfo, plot: bool, settlement: bool
) -> dict[str, Axis]:
    if by == "day":
        rows = Axis(lambda _l: ALL, *day_edges(start, end, tz), by=ALL)
    elif by == "month":
        rows = Axis(lambda _l: ALL, *month_edges(start, end, tz), by=ALL)
    else:
        group = {"device": "device_id", "circuit": "circuit", "zone": "zone"}[by]
        rows = Axis(lambda lum: str(getattr(lum, group)), *whole(start, end), by=group)
    axes = {"rows": rows}
    if plot:
        axes["zone_day"] = Axis(lambda lum: lum.zone, *day_edges(start, end, tz), by="zone")
        axes["day"] = Axis(lambda _l: ALL, *day_edges(start, end, tz), by=ALL)
    if settlement:
        edges = half_hour_edges(start, end, tz)
        axes["settlement"] = Axis(lambda lum: lum.circuit, *edges, by="circuit")
    return axes


@energy_app.command()
def report(
    start: FromOption,
    end: ToOption,
    by: Annotated[
        By, typer.Option("--by", help="One row per device, circuit, zone, day or month.")
    ] = "device",
    zone: ZoneOption = None,
    fmt: Annotated[
        Literal["table", "csv", "json", "parquet"], typer.Option("--format", help="Output format.")
    ] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw the figure (PNG).")] = None,
    settlement: Annotated[
        Path | None, typer.Option("--settlement", help="Half-hourly per-circuit CSV.")
    ] = None,
    config: ConfigOption = None,
    inventory: Annotated[
        Path | None, typer.Option("--inventory", help="Inventory CSV (default inventory.path).")
    ] = None,
    tz: TzOption = "UTC",
    grid_factor: Annotated[
        float,
        typer.Option(help="kg CO₂ per kWh (default: China's 2022 national grid factor)."),
    ] = GRID_FACTOR_KG_PER_KWH,
    gap_factor: Annotated[
        float | None,
        typer.Option(
            help="A stretch longer than this many report intervals is a gap "
            "(default energy.gap_factor, 1.5)."
        ),
    ] = None,
    source: Annotated[
        Literal["rollups", "raw"],
        typer.Option(
            "--source",
            help="rollups: hourly rollups for whole hours, raw readings for the rest (the "
            "edges, half-hours, hours without complete rollups); raw: raw readings only. "
            "Both give the same figures.",
        ),
    ] = "rollups",
) -> None:
    """Metered kWh, burning hours, baseline, savings, CO₂ and data completeness for a period."""
    settings = _settings(config)
    if gap_factor is None:
        gap_factor = settings.energy.gap_factor
    zones = _names("zone", zone)
    city = _zone(tz)
    a, b = _period(start, end, city)
    if fmt == "parquet" and output is None:
        raise _fail("--format parquet needs --output FILE", 2)
    if not grid_factor >= 0 or not gap_factor > 1:
        raise _fail("--grid-factor must be at least 0 and --gap-factor more than 1", 2)
    lums = _inventory(settings, inventory, zones)
    max_interval = settings.energy.max_interval_h * 3_600_000
    builder = ReportBuilder(
        a,
        b,
        lums,
        _axes(by, a, b, city, plot is not None, settlement is not None),
        gap_factor=gap_factor,
        max_interval_ms=max_interval,
    )
    longest = max(lum.report_interval_s for lum in lums.values()) * 1000
    lookback = int(max(2 * longest * gap_factor, 3_600_000, max_interval))
    window = _window_ms(len(lums), min(lum.report_interval_s for lum in lums.values()))
    rollups = rollup_config(settings)
    if source == "rollups" and gap_factor != rollups.gap_factor:
        _err.print(
            f"note: the rollups were made with gap factor {rollups.gap_factor}: "
            "reading raw readings only"
        )
        source = "raw"

    async def from_rollups(writer: InfluxWriter) -> int:
        with _progress() as bar:
            task = bar.add_task("reading rollups and edges", total=b - a, points=0)
            done = 0

            def advance(ms: int, points: int) -> None:
                nonlocal done
                done += points
                bar.update(task, advance=ms, points=done)

            used = await feed_report(
                writer, builder, rollups, zones=zones, window_ms=window, advance=advance
            )
        raw_h = sum(y - x for x, y in used.raw_ranges) / 3_600_000
        months = (
            f"{used.rollup_months} whole month(s) per luminaire, " if used.rollup_months else ""
        )
        _err.print(
            f"{months}{used.rollup_days} whole days and {used.rollup_hours} whole hours from "
            "rollups "
            f"({used.group_days} days and {used.group_hours} hours per zone and circuit; "
            f"{used.rollup_rows:,} sums), "
            f"{raw_h:g} h from raw readings ({used.readings:,} readings)"
            + _silent_note(used)
            + (
                f"; {used.incomplete_hours} hour(s) lacked a device's rollup and were read raw"
                if used.incomplete_hours
                else ""
            )
        )
        return used.readings

    async def work(writer: InfluxWriter) -> int:
        if source == "rollups":
            return await from_rollups(writer)
        with _progress() as bar:
            task = bar.add_task("reading telemetry", total=b - a + 2 * lookback, points=0)
            done = 0

            def advance(ms: int, points: int) -> None:
                nonlocal done
                done += points
                bar.update(task, advance=ms, points=done)

            return await feed(
                writer,
                builder,
                zones=zones,
                lookback_ms=lookback,
                window_ms=window,
                advance=advance,
            )

    _run(work, settings)
    if source == "raw":
        builder.finish()  # feed_report finishes the raw parts it reads itself
    if builder.unknown:
        some = ", ".join(sorted(builder.unknown)[:5])
        _err.print(
            f"warning: {len(builder.unknown)} device(s) not in the inventory left out: {some}"
        )
    write_rows(builder.iter_rows("rows", grid_factor), by, fmt, output)
    if plot is not None:
        # Imported when used: matplotlib and pyarrow cost every luxtel process ~110 MB of RSS.
        from energy.plot import plot_report

        title = f"Street lighting energy, {start} to {end} ({tz})"
        zone_days, days = builder.rows("zone_day", grid_factor), builder.rows("day", grid_factor)
        plot_report(plot, zone_days, days, title=title, grid_factor=grid_factor)
    if settlement is not None:
        write_settlement(settlement, builder)


@energy_app.command()
def rollup(
    start: FromOption,
    end: ToOption,
    config: ConfigOption = None,
    inventory: Annotated[
        Path | None, typer.Option("--inventory", help="Inventory CSV (default inventory.path).")
    ] = None,
    tz: TzOption = "UTC",
    delete_first: Annotated[
        bool,
        typer.Option(
            "--delete-first",
            help="Delete the range's rollups first: after moving a luminaire to another zone or "
            "circuit in the inventory (its points under the old tags would stay).",
        ),
    ] = False,
) -> None:
    """(Re)build the hourly and daily energy rollups of the whole hours over [--from, --to),
    and the monthly ones of their months whose last day is rolled up.

    Idempotent: a rebuilt hour overwrites its points (same series, same time). `luxtel run`
    keeps recent hours current by itself; use this for history, or after editing the
    inventory. The retention policies are checked first (InfluxDB 1.x)."""
    settings = _settings(config)
    lums = _inventory(settings, inventory, [])
    a, b = _period(start, end, _zone(tz))
    rollups = rollup_config(settings)
    retention = retention_config(settings)

    async def work(writer: InfluxWriter) -> Built:
        if retention is not None:
            try:
                for statement in await ensure_retention(writer, retention):
                    _err.print(f"retention: {statement}")
            except RetentionError as error:
                raise _fail(str(error), 1) from None
        if delete_first:
            try:
                await delete_range(writer, a, b, rollups)
            except RetentionError as error:
                raise _fail(str(error), 1) from None
        with _progress() as bar:
            task = bar.add_task("rolling up", total=ceil_hour(b) - floor_hour(a), points=0)
            done = 0

            def advance(ms: int, rows: int) -> None:
                nonlocal done
                done += rows
                bar.update(task, advance=ms, points=done)

            return await build_rollups(writer, lums, a, b, rollups, advance=advance)

    built = _run(work, settings)
    _err.print(
        f"{built.rows:,} rollup points written ({len(lums)} luminaires × "
        f"{(ceil_hour(b) - floor_hour(a)) // 3_600_000} hours) from {built.readings:,} readings, "
        f"and {built.days:,} daily points ({settings.energy.tz} days)"
    )


def _silent_note(used: Sources) -> str:
    """What the report did at its edges for the luminaires silent around the period."""
    if not used.edge_hours:
        return ""
    named = ", ".join(used.silent[:5]) + (", …" if len(used.silent) > 5 else "")
    return (
        f"; {used.edge_hours} edge hour(s) from rollups ({used.edge_group_sums} group and "
        f"{used.edge_device_sums} luminaire sums) but for {len(used.silent)} "
        f"luminaire(s) silent around the period ({named or 'none'}): "
        f"{used.silent_hours} luminaire-hour(s) of theirs from raw readings"
    )


def _window_ms(devices: int, interval_s: int, budget: int = 500_000) -> int:
    """A query window holding about ``budget`` points: a day for a town, hours for a city."""
    per_ms = devices / (interval_s * 1000)
    return int(min(DAY_MS, max(3_600_000, budget / per_ms)))


def export(
    measurement: Annotated[str, typer.Argument(help="telemetry, status, alerts, …")],
    start: FromOption,
    end: ToOption,
    output: Annotated[Path, typer.Option("--output", "-o", help="Write here.")],
    zone: ZoneOption = None,
    device: Annotated[
        list[str] | None, typer.Option("--device", help="Only this device (repeat for several).")
    ] = None,
    fmt: Annotated[
        Literal["csv", "parquet"], typer.Option("--format", help="csv or parquet.")
    ] = "csv",
    config: ConfigOption = None,
    tz: TzOption = "UTC",
) -> None:
    """Export the raw time series of a measurement to CSV or Parquet, streamed in chunks."""
    settings = _settings(config)
    zones = _names("zone", zone)
    devices = _names("device_id", device)
    _names("measurement", [measurement])
    city = _zone(tz)
    a, b = _period(start, end, city)

    async def work(writer: InfluxWriter) -> int:
        with _progress() as bar:
            task = bar.add_task(f"exporting {measurement}", total=b - a, points=0)
            done = 0

            def advance(ms: int, points: int) -> None:
                nonlocal done
                done += points
                bar.update(task, advance=ms, points=done)

            from energy.export import export_series  # pyarrow: imported when used, as above

            result = await export_series(
                writer,
                measurement,
                a,
                b,
                output,
                fmt,
                zones=zones,
                devices=devices,
                window_ms=3_600_000 * 6,
                advance=advance,
            )
        if result.skipped:
            _err.print(f"warning: keys that are not identifiers left out: {result.skipped}")
        return result.points

    points = _run(work, settings)
    _err.print(f"{points:,} points written to {output}")
