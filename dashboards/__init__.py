"""luxtel's Grafana dashboards as code (grafana-foundation-sdk), built into
`deploy/grafana/dashboards/*.json` and pushed to a running Grafana.

    from dashboards import build_dashboards, write_dashboards, read_inventory
    write_dashboards(inventory=read_inventory(Path("inventory.csv")))

The command line is `luxtel.commands.dashboards.dashboards_app` (`luxtel dashboards build|push`).
"""

from dashboards.build import build_dashboards, render, write_dashboards
from dashboards.inventory import Inventory, InventoryError, read_inventory
from dashboards.push import DatasourceTargets, PushError, push_dashboards

__all__ = [
    "DatasourceTargets",
    "Inventory",
    "InventoryError",
    "PushError",
    "build_dashboards",
    "push_dashboards",
    "read_inventory",
    "render",
    "write_dashboards",
]
