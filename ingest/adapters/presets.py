"""The LoRaWAN network servers' uplinks as mappings: their documented JSON, as defaults.

ChirpStack v4 publishes each decoded uplink on `application/{application_id}/device/{dev_eui}/
event/up` (its MQTT integration, JSON marshaler): `deduplicationId`, `time` (when the network
server received it), `deviceInfo` (`tenantId`, `applicationId`, `deviceName`, `devEui`, `tags`,
…), `fCnt`, `fPort`, `object` (what the device profile's codec decoded), `rxInfo`, `txInfo`.

The Things Stack v3 publishes on `v3/{application_id}@{tenant_id}/devices/{device_id}/up`:
`end_device_ids` (`device_id`, `dev_eui`, `application_ids`), `received_at`, and
`uplink_message` (`f_port`, `f_cnt`, `decoded_payload` from its payload formatter, `rx_metadata`,
`received_at` — when the network server received it).

Both carry the luminaire's values as its codec or formatter named them; the defaults expect the
contract's names (`power_w`, `energy_wh`, …) there, and a source overrides any field (`fields.
power_w = { path = "$.object.pwr", unit = "kW" }`), the device id, the zone and the time.
Neither payload says where a luminaire stands: the zone is a ChirpStack device tag (`zone`), or
the inventory's for The Things Stack (its uplinks carry no tags).
"""

from typing import Any, Final

from ingest.adapters.config import SourceConfig
from models.reading import FIELD_TYPES

_CONTRACT: Final = tuple(name for name in FIELD_TYPES if name != "seq")


def _fields(prefix: str, seq: str) -> dict[str, str]:
    return {"seq": seq, **{name: f"{prefix}.{name}" for name in _CONTRACT}}


PRESETS: Final[dict[str, dict[str, Any]]] = {
    "chirpstack": {
        "device_id": "$.deviceInfo.deviceName",
        "zone": "$.deviceInfo.tags.zone",
        "ts": "$.time",
        "fields": _fields("$.object", "$.fCnt"),
    },
    "thethingsstack": {
        "device_id": "$.end_device_ids.device_id",
        "zone": "inventory",
        "ts": "$.uplink_message.received_at",
        "fields": _fields("$.uplink_message.decoded_payload", "$.uplink_message.f_cnt"),
    },
}

TOPICS: Final = {
    "chirpstack": "application/+/device/+/event/up",
    "thethingsstack": "v3/+/devices/+/up",
}
"""Each network server's uplink topic filter (for the documentation and the simulator)."""


def with_preset(source: SourceConfig) -> SourceConfig:
    """`source` with its adapter's defaults filled in where it declares nothing (its own
    fields replace the defaults of the same name, one by one)."""
    preset = PRESETS.get(source.adapter)
    if preset is None:
        return source
    update: dict[str, Any] = {
        key: preset[key] for key in ("device_id", "zone", "ts") if getattr(source, key) is None
    }
    update["fields"] = {**preset["fields"], **source.fields}
    return source.model_copy(update=update)
