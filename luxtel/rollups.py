"""The energy rollups' part of `luxtel run` and of `luxtel energy`: their configuration from the
settings (only the application reads `Settings`; `energy` takes its own small configs)."""

from __future__ import annotations

import time

import structlog

from energy.counters import MS_PER_H
from energy.inventory import InventoryError, Luminaire, read_inventory
from energy.retention import RetentionConfig
from energy.rollup_store import RollupConfig
from energy.tally import RollupTally
from energy.upkeep import DirtyHours, Upkeep, UpkeepConfig
from influx.client import InfluxWriter
from luxtel.settings import Settings

log = structlog.get_logger("luxtel")


def rollup_config(settings: Settings) -> RollupConfig:
    return RollupConfig(
        retention_policy=settings.influx.rollup_retention_policy,
        gap_factor=settings.energy.gap_factor,
        max_interval_ms=settings.energy.max_interval_h * MS_PER_H,
        tz=settings.energy.tz,
    )


def retention_config(settings: Settings) -> RetentionConfig | None:
    influx = settings.influx
    if not influx.manage_retention:
        return None
    return RetentionConfig(
        raw_days=influx.raw_retention_days,
        raw_policy=influx.retention_policy,
        rollup_policy=influx.rollup_retention_policy,
        rollup_days=influx.rollup_retention_days,
    )


def rollup_upkeep(settings: Settings, writer: InfluxWriter) -> Upkeep | None:
    """The upkeep task of `luxtel run`, or None (off, or no inventory: logged)."""
    energy = settings.energy
    if not energy.rollups:
        return None
    if settings.inventory.path is None:
        log.info("rollups_off", reason="no inventory.path: the rollups need each luminaire's row")
        return None
    try:
        inventory = read_inventory(settings.inventory.path)
    except InventoryError as error:
        log.warning("rollups_off", reason=str(error))
        return None
    longest_gap_s = max((lum.report_interval_s for lum in inventory.values()), default=0) * (
        energy.gap_factor
    )
    config = UpkeepConfig(
        every_s=energy.rollup_every_s,
        settle_s=max(energy.settle_s, longest_gap_s),
        recent_hours=energy.recent_hours,
        rollups=rollup_config(settings),
        retention=retention_config(settings),
        kept_max_bytes=energy.close_kept_max_bytes,
    )
    return Upkeep(
        writer,
        inventory,
        settings.state_dir / "rollups.json",
        config,
        DirtyHours(energy.dirty_max_bytes),
        tally=rollup_tally(settings, inventory, config.rollups),
    )


def rollup_tally(
    settings: Settings, inventory: dict[str, Luminaire], config: RollupConfig
) -> RollupTally | None:
    """The tally of the open hours (wall clock now: luxtel's start), or None when it would take
    more than ``energy.tally_max_bytes`` (logged: every hour is then read back)."""
    started_ms = int(time.time() * 1000)
    try:
        return RollupTally(
            inventory,
            gap_factor=config.gap_factor,
            max_interval_ms=config.max_interval_ms,
            started_ms=started_ms,
            closed_ms=-(1 << 62),  # the upkeep closes its hours when it loads its watermark
            max_bytes=settings.energy.tally_max_bytes,
        )
    except MemoryError as error:
        log.warning("rollup_tally_off", reason=str(error), action="reading every hour back")
        return None
