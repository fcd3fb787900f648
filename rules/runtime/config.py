"""What the rules process needs to know, as one small value: the application builds it from its
settings (`luxtel.pipeline.rules_config`), so the rules never read the application's `Settings`
and can be run, tested and reused without it. Picklable: `spawn` hands it to the child."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """The rules engine's files, state and timing, and how its process logs (no defaults here:
    the settings hold them, documented)."""

    rules_path: Path
    notify_path: Path | None
    inventory_path: Path | None
    state_dir: Path
    """Where the rules' SQLite state lives (the application's `state_dir`)."""
    zones: tuple[str, ...]
    """The zones this instance takes (`mqtt.zones`); empty: all."""
    tick_s: float
    state_interval_s: float
    outbox_max_bytes: int
    """The outbox's bound (`rules.runtime.store.OutboxBound`)."""
    outbox_keep_s: float
    gather_max_bytes: int
    """The journal bytes gathered into one evaluation cycle at most (`RulesEngine`)."""
    log_level: Literal["debug", "info", "warning", "error"]
    log_format: Literal["console", "json"]
