"""The router of a sources file and an inventory, as `luxtel run` and `luxtel sources check`
build it."""

from pathlib import Path

from energy.inventory import InventoryError
from ingest.adapters.config import SourcesError, load_sources
from ingest.adapters.directory import DeviceDirectory
from ingest.adapters.router import SourceRouter

__all__ = ["SourcesError", "source_router"]


def source_router(sources: Path, inventory: Path | None, topic_root: str) -> SourceRouter:
    """Raises SourcesError with one sentence (file:line for the sources file, file and line
    for the inventory)."""
    configs = load_sources(sources)
    directory = None
    if inventory is not None:
        try:
            directory = DeviceDirectory.load(inventory)
        except InventoryError as error:
            raise SourcesError(str(error)) from None
    return SourceRouter(configs, topic_root, directory)
