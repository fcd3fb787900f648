"""Build every dashboard and write them to `deploy/grafana/dashboards/*.json`, reproducibly.

The same inventory (or none) always gives byte-identical files: keys sorted, panel ids and
positions assigned by the code, no timestamps. The committed files are built without an
inventory (zone and device level; `tests/test_dashboards_build.py` keeps them in sync); a city
builds its own with `luxtel dashboards build --inventory inventory.csv`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.city import city_dashboard
from dashboards.energy import energy_dashboard
from dashboards.health import health_dashboard
from dashboards.inventory import Inventory
from dashboards.luminaire import luminaire_dashboard
from dashboards.zone import zone_dashboard

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards"

BUILDERS: dict[str, Callable[[Inventory], builder.Dashboard]] = {
    "city-overview.json": city_dashboard,
    "zone-circuit.json": zone_dashboard,
    "luminaire.json": luminaire_dashboard,
    "energy.json": energy_dashboard,
    "luxtel-health.json": lambda _inventory: health_dashboard(),
}


def build_dashboards(inventory: Inventory | None = None) -> dict[str, dict[str, Any]]:
    """File name → the dashboard's JSON model, as plain data."""
    used = inventory or Inventory()
    out: dict[str, dict[str, Any]] = {}
    for name, build in BUILDERS.items():
        text = json.dumps(build(used).build(), cls=JSONEncoder)
        out[name] = json.loads(text)
    return out


def render(model: dict[str, Any]) -> str:
    """A dashboard as the committed file's text."""
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_dashboards(out_dir: Path = DEFAULT_OUT, inventory: Inventory | None = None) -> list[Path]:
    """Write each dashboard to `out_dir`; returns the paths written (only files that changed are
    rewritten, so an unchanged build leaves modification times alone)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, model in build_dashboards(inventory).items():
        path = out_dir / name
        text = render(model)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
