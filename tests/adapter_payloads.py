"""Real-shaped payloads of each source, built from one contract reading: ChirpStack v4 and The
Things Stack v3 uplinks as their documentation shows them (deploy/sources/*.json), a SenML pack
with base values, and a vendor's JSON with kWh and ×10 temperatures."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parent.parent / "deploy" / "sources"


def iso(ts_ms: int) -> str:
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return copy.deepcopy(loaded)


def chirpstack(device: str, zone: str, ts_ms: int, values: dict[str, Any]) -> bytes:
    body = _sample("chirpstack-up.json")
    body["time"] = iso(ts_ms).replace("Z", "+00:00")
    body["deviceInfo"]["deviceName"] = device
    body["deviceInfo"]["tags"]["zone"] = zone
    body.pop("fCnt")
    if "seq" in values:
        body["fCnt"] = values["seq"]
    body["object"] = {k: v for k, v in values.items() if k != "seq"}
    return json.dumps(body).encode()


def tts(device: str, ts_ms: int, values: dict[str, Any]) -> bytes:
    body = _sample("tts-up.json")
    body["end_device_ids"]["device_id"] = device
    body["uplink_message"]["received_at"] = iso(ts_ms)
    body["uplink_message"].pop("f_cnt")
    if "seq" in values:  # The Things Stack leaves out a zero f_cnt, as every zero field
        body["uplink_message"]["f_cnt"] = values["seq"]
    body["uplink_message"]["decoded_payload"] = {k: v for k, v in values.items() if k != "seq"}
    return json.dumps(body).encode()


def senml(device: str, ts_ms: int, values: dict[str, Any]) -> bytes:
    """A pack with base name, base time, base unit and base value; energy in kWh."""
    records: list[dict[str, Any]] = [
        {
            "bn": f"urn:dev:mac:{device}/",
            "bt": ts_ms / 1000,
            "bu": "W",
            "bver": 10,
            "n": "3305/0/5800",
            "v": values["power_w"],
        },
        {"n": "3311/0/5850", "vb": values["lamp_on"]},
        {"n": "3305/0/5805", "u": "kWh", "v": values["energy_wh"] / 1000},
    ]
    if "dim_pct" in values:
        records.append({"n": "3311/0/5851", "u": "%", "v": values["dim_pct"]})
    if "driver_temp_c" in values:
        records.append({"n": "3303/0/5700", "u": "Cel", "v": values["driver_temp_c"]})
    if "voltage_v" in values:  # last: a base value applies to every record after it
        records.append({"bv": 200, "n": "3316/0/5700", "u": "V", "v": values["voltage_v"] - 200})
    return json.dumps(records).encode()


def vendor(ts_ms: int, values: dict[str, Any], faults: int = 0) -> bytes:
    """kWh, temperature and voltage ×10 as integers, time in epoch ms, a status word."""
    data: dict[str, Any] = {
        "pwr": values["power_w"],
        "kwh": values["energy_wh"] / 1000,
        "st": (1 if values["lamp_on"] else 0) | faults,
    }
    if "driver_temp_c" in values:
        data["tmp"] = round(values["driver_temp_c"] * 10)
    if "voltage_v" in values:
        data["v"] = round(values["voltage_v"] * 10)
    if "dim_pct" in values:
        data["dim"] = values["dim_pct"]
    return json.dumps({"t": ts_ms, "d": data}).encode()


def json_reading(ts_ms: int, values: dict[str, Any]) -> bytes:
    """The same reading in the contract's form."""
    return json.dumps({"ts": ts_ms / 1000, **values}).encode()


def sources_toml(prefix: str) -> str:
    """The example sources file, its topics moved under `prefix` (one test's own topics)."""
    text = (SAMPLES / "sources.example.toml").read_text()
    for topic in (
        "application/+/device/+/event/up",
        "v3/+/devices/+/up",
        "lwm2m/+/senml",
        "vendor/+/+/data",
    ):
        text = text.replace(f'topic = "{topic}"', f'topic = "{prefix}/{topic}"')
    return text.replace('device_id = "topic:2"', 'device_id = "topic:3"').replace(
        'device_id = "topic:3"\nzone = "topic:2"', 'device_id = "topic:4"\nzone = "topic:3"'
    )
