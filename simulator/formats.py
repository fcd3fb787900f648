"""A reading in each form a city's controllers send it (`luxtel simulate --format`): the contract's
`telemetry`, a ChirpStack v4 uplink event, a The Things Stack v3 uplink, a SenML pack (IPSO
names, base name and time). The topics are those of `deploy/sources/sources.example.toml`, so
luxtel with that sources file (and the fleet's inventory, for the zones) takes every form."""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson

from simulator.readings import Reading, reading_dict, telemetry_payload, topic

FORMATS: Final = ("luxtel", "chirpstack", "tts", "senml")
APPLICATION_ID: Final = "17c82e96-be03-4f38-aef3-f83d48582d97"
TTS_APPLICATION: Final = "street-lighting@city"


def dev_eui(device_id: str) -> str:
    """A stable 16-hex-digit EUI for a simulated device."""
    return hashlib.blake2b(device_id.encode(), digest_size=8).hexdigest()


def _values(r: Reading) -> dict[str, Any]:
    values = reading_dict(r)
    for key in ("device_id", "ts", "seq"):
        values.pop(key)
    return values


def chirpstack(r: Reading, zone: str) -> tuple[str, bytes]:
    eui = dev_eui(r.device_id)
    body = {
        "deduplicationId": hashlib.md5(f"{r.device_id}/{r.seq}".encode()).hexdigest(),  # noqa: S324
        "time": reading_dict(r)["ts"],
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            "tenantName": "city",
            "applicationId": APPLICATION_ID,
            "applicationName": "street-lighting",
            "deviceName": r.device_id,
            "devEui": eui,
            "tags": {"zone": zone},
        },
        "devAddr": eui[-8:],
        "dr": 5,
        "fCnt": r.seq,
        "fPort": 2,
        "object": _values(r),
        "rxInfo": [{"gatewayId": "0016c001f153a14c", "rssi": -96, "snr": 7.5}],
    }
    return f"application/{APPLICATION_ID}/device/{eui}/event/up", orjson.dumps(body)


def tts(r: Reading) -> tuple[str, bytes]:
    when = reading_dict(r)["ts"]
    body = {
        "end_device_ids": {
            "device_id": r.device_id,
            "application_ids": {"application_id": TTS_APPLICATION.split("@")[0]},
            "dev_eui": dev_eui(r.device_id).upper(),
        },
        "received_at": when,
        "uplink_message": {
            "f_port": 2,
            "f_cnt": r.seq,
            "decoded_payload": _values(r),
            "rx_metadata": [{"gateway_ids": {"gateway_id": "gtw-1"}, "rssi": -98, "snr": 6.2}],
            "received_at": when,
        },
    }
    return f"v3/{TTS_APPLICATION}/devices/{r.device_id}/up", orjson.dumps(body)


SENML_RESOURCES: Final = (
    ("power_w", "3305/0/5800", "W"),
    ("energy_wh", "3305/0/5805", "Wh"),
    ("power_factor", "3305/0/5820", "/"),
    ("dim_pct", "3311/0/5851", "%"),
    ("voltage_v", "3316/0/5700", "V"),
    ("current_a", "3317/0/5700", "A"),
    ("driver_temp_c", "3303/0/5700", "Cel"),
    ("lux", "3301/0/5700", "lx"),
)
"""Each contract field as SenML sends it: (field, IPSO object/instance/resource, SenML unit)."""


def senml(r: Reading) -> tuple[str, bytes]:
    values = _values(r)
    pack: list[dict[str, Any]] = [
        {
            "bn": f"urn:dev:ops:{r.device_id}/",
            "bt": r.t_ms / 1000,
            "n": "3311/0/5850",
            "vb": values["lamp_on"],
        }
    ]
    for field, name, unit in SENML_RESOURCES:
        if values.get(field) is not None:
            pack.append({"n": name, "u": unit, "v": values[field]})
    return f"lwm2m/{r.device_id}/senml", orjson.dumps(pack)


def telemetry_message(form: str, root: str, zone: str, r: Reading) -> tuple[str, bytes]:
    """The topic and payload of one reading in `form` (one of FORMATS)."""
    if form == "chirpstack":
        return chirpstack(r, zone)
    if form == "tts":
        return tts(r)
    if form == "senml":
        return senml(r)
    return topic(root, zone, r.device_id, "telemetry"), telemetry_payload(r)
