"""Sources beyond the contract: LoRaWAN network servers (ChirpStack v4, The Things Stack v3),
SenML packs (RFC 8428) and declared vendor mappings, each reshaped into contract readings.

    config.py     the sources file's types and loader (`[[sources]]`, file:line errors)
    paths.py      the JSON-path subset (`$.a.b[0].c`, bounded depth)
    units.py      unit conversions into the contract's units
    directory.py  zones and EUIs from the luminaire inventory
    mapping.py    a declared mapping, compiled (`mapping`; the network servers through presets)
    presets.py    ChirpStack's and The Things Stack's uplinks as default mappings
    senml.py      SenML resolution and IPSO names
    router.py     topic → adapter, and the hand-over to the contract's decoder
"""

from ingest.adapters.config import SourceConfig, SourcesError, load_sources, parse_sources
from ingest.adapters.directory import DeviceDirectory
from ingest.adapters.router import SourceRouter

__all__ = [
    "DeviceDirectory",
    "SourceConfig",
    "SourceRouter",
    "SourcesError",
    "load_sources",
    "parse_sources",
]
