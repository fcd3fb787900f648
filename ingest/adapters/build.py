"""The router of a sources file and an inventory, as `luxtel run` and `luxtel sources check`
build it, and the connections of the sources that name their own broker."""

from pathlib import Path
from urllib.parse import urlsplit

from ingest.adapters.config import SourcesError, load_sources
from ingest.adapters.directory import DeviceDirectory
from ingest.adapters.router import SourceRouter
from ingest.mqtt_source import MqttTarget
from models.inventory import InventoryError

__all__ = ["SourcesError", "own_broker_targets", "source_router"]


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


def own_broker_targets(router: SourceRouter, topic_root: str) -> list[MqttTarget]:
    """The connection of each source that names its own broker: subscribed to its topic
    filter only, at QoS 0. Raises SourcesError when a password file cannot be read."""
    targets = []
    for source in router.own_brokers:
        broker = source.broker
        assert broker is not None
        parts = urlsplit(broker.url)
        tls = parts.scheme == "mqtts"
        password = None
        if broker.password_file is not None:
            try:
                password = broker.password_file.read_text().strip()
            except OSError as error:
                raise SourcesError(
                    f"source {source.name!r}: cannot read broker.password_file "
                    f"{str(broker.password_file)!r}: {error.strerror}"
                ) from None
        targets.append(
            MqttTarget(
                host=parts.hostname or "",
                port=parts.port or (8883 if tls else 1883),
                topic_root=topic_root,
                client_id=broker.client_id or f"luxtel-{source.name}",
                qos=0,
                protocol=broker.protocol,
                tls=tls,
                ca_file=broker.ca_file,
                username=broker.username,
                password=password,
                source_filters=(source.topic,),
                contract=False,
            )
        )
    return targets
