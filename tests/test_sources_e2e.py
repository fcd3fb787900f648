"""Sources beyond the contract, end to end on the real Mosquitto and InfluxDB: each adapter's
real-shaped payloads land as the same points, with the same types, as the same readings sent
in the contract's form; what does not map is dead-lettered with a specific reason."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from luxtel.settings import InventorySettings, SourcesSettings
from servers import InfluxDBServer, MosquittoServer
from tests import adapter_payloads as forms
from tests.support import Publisher, RunningPipeline, count, make_settings, rows, wait_until

BASE_MS = int(time.time() * 1000) - 3_600_000

INVENTORY_HEADER = (
    "device_id,zone,circuit,lat,lon,rated_power_w,baseline_power_w,report_interval_s,model,"
    "installed_on,dev_eui\n"
)


def _values(i: int) -> dict[str, Any]:
    """A reading whose values survive every form's conversions exactly."""
    return {
        "seq": i,
        "lamp_on": i % 3 != 0,
        "power_w": 40.5 + i,
        "energy_wh": 120000.0 + 250 * i,
        "voltage_v": 230.5,
        "dim_pct": 60 + i,
        "driver_temp_c": 41.5,
    }


def _contract(ts_ms: int, values: dict[str, Any], form: str) -> dict[str, Any]:
    out = {"ts": ts_ms / 1000, **values}
    if form in ("senml", "vendor"):
        out.pop("seq")  # neither form carries a message counter
    return out


def _setup(
    tmp_path: Path, mosquitto: MosquittoServer, influxdb: InfluxDBServer, db: str, topic_root: str
) -> tuple[Any, str]:
    prefix = topic_root.split("/")[0]
    sources = tmp_path / "sources.toml"
    sources.write_text(forms.sources_toml(prefix))
    inventory = tmp_path / "inventory.csv"
    devices = [f"a-{form}-{n}" for form in ("cs", "tts", "senml", "vendor") for n in range(3)]
    inventory.write_text(
        INVENTORY_HEADER
        + "".join(f"{d},north,n-1,52.3,4.9,60,150,900,X,2024-01-01,\n" for d in devices)
    )
    settings = make_settings(tmp_path, mosquitto.url, influxdb.url, db, topic_root)
    settings = settings.model_copy(
        update={
            "sources": SourcesSettings(path=sources),
            "inventory": InventorySettings(path=inventory),
        }
    )
    return settings, prefix


def test_each_adapter_lands_the_same_points_as_the_contract_reading(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    settings, prefix = _setup(tmp_path, mosquitto, influxdb, influx_db, topic_root)
    messages: list[tuple[str, bytes]] = []
    pairs: list[tuple[str, str]] = []  # (adapter device, contract device) that must match
    for n in range(3):
        for form in ("cs", "tts", "senml", "vendor"):
            ts_ms = BASE_MS + 1000 * n + {"cs": 1, "tts": 2, "senml": 3, "vendor": 4}[form]
            values = _values(n)
            device = f"a-{form}-{n}"
            if form == "cs":
                topic = f"{prefix}/application/app-1/device/01010101010101{n:02d}/event/up"
                payload = forms.chirpstack(device, "north", ts_ms, values)
            elif form == "tts":
                topic = f"{prefix}/v3/street@city/devices/{device}/up"
                payload = forms.tts(device, ts_ms, values)
            elif form == "senml":
                topic = f"{prefix}/lwm2m/{device}/senml"
                payload = forms.senml(device, ts_ms, values)
            else:
                topic = f"{prefix}/vendor/north/{device}/data"
                payload = forms.vendor(ts_ms, values)
            messages.append((topic, payload))
            contract = f"c-{form}-{n}"
            messages.append(
                (
                    f"{topic_root}/north/{contract}/telemetry",
                    json.dumps(_contract(ts_ms, values, form)).encode(),
                )
            )
            pairs.append((device, contract))
    with RunningPipeline(settings):
        publisher = Publisher(mosquitto.url)
        publisher.publish(messages)
        publisher.close()
        wait_until(
            lambda: count(influxdb.url, influx_db, "telemetry") >= len(messages),
            what="every reading in InfluxDB",
        )
    assert count(influxdb.url, influx_db, "telemetry") == len(messages)
    assert not (tmp_path / "deadletter.jsonl").exists()
    got = {r["device_id"]: r for r in rows(influxdb.url, influx_db, "SELECT * FROM telemetry")}
    for device, contract in pairs:
        mine = {k: v for k, v in got[device].items() if k != "device_id"}
        theirs = {k: v for k, v in got[contract].items() if k != "device_id"}
        assert mine == theirs, device
    fields = rows(influxdb.url, influx_db, "SHOW FIELD KEYS FROM telemetry")
    assert {f["fieldKey"]: f["fieldType"] for f in fields} == {
        "seq": "integer",
        "dim_pct": "integer",
        "lamp_on": "boolean",
        "power_w": "float",
        "energy_wh": "float",
        "voltage_v": "float",
        "driver_temp_c": "float",
    }
    status = rows(influxdb.url, influx_db, "SELECT * FROM status")
    assert {r["device_id"] for r in status} == {f"a-vendor-{n}" for n in range(3)}


def test_what_does_not_map_is_dead_lettered_with_its_reason_and_payload(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    settings, prefix = _setup(tmp_path, mosquitto, influxdb, influx_db, topic_root)
    values = _values(1)
    no_power = dict(values)
    del no_power["power_w"]
    bad_unit = json.loads(forms.senml("a-senml-0", BASE_MS, values))
    bad_unit[2]["u"] = "kW"  # energy in a unit of power
    string_power = json.loads(forms.vendor(BASE_MS, values))
    string_power["d"]["pwr"] = "42.5"
    bad = [
        (
            f"{prefix}/application/a/device/0101/event/up",
            forms.chirpstack("a-cs-0", "north", BASE_MS, no_power),
            "unmapped_field",
            "power_w: path $.object.power_w not found",
        ),
        (
            f"{prefix}/v3/street@city/devices/stranger/up",
            forms.tts("stranger", BASE_MS, values),
            "unknown_device",
            "'stranger' is not in",
        ),
        (
            f"{prefix}/lwm2m/a-senml-0/senml",
            json.dumps(bad_unit).encode(),
            "unit_mismatch",
            "unit 'kW' cannot be converted to Wh",
        ),
        (f"{prefix}/lwm2m/a-senml-1/senml", b'{"n": "3305/0/5800"}', "senml_invalid", "JSON array"),
        (
            f"{prefix}/vendor/north/a-vendor-0/data",
            json.dumps(string_power).encode(),
            "wrong_type",
            "power_w",
        ),
        (f"{prefix}/vendor/north/a-vendor-1/data", b"{not json", "payload_not_json", ""),
    ]
    good = (f"{prefix}/vendor/north/a-vendor-2/data", forms.vendor(BASE_MS, values))
    with RunningPipeline(settings) as running:
        publisher = Publisher(mosquitto.url)
        publisher.publish([(topic, payload) for topic, payload, _, _ in bad] + [good])
        publisher.close()
        deadletter = tmp_path / "deadletter.jsonl"
        wait_until(
            lambda: deadletter.exists() and len(deadletter.read_text().splitlines()) >= len(bad),
            what="the dead letters",
        )
        wait_until(lambda: count(influxdb.url, influx_db, "telemetry") >= 1, what="the good one")
        assert running.alive
    records = [json.loads(line) for line in deadletter.read_text().splitlines()]
    assert len(records) == len(bad)
    by_topic = {r["topic"]: r for r in records}
    for topic, payload, reason, detail in bad:
        record = by_topic[topic]
        assert record["reason"] == reason, record
        assert detail in record["detail"], record
        # The original payload: whole, or (beyond the dead letter's payload_kept_bytes) its
        # head with its length and hash.
        assert payload.decode().startswith(record["payload"])
        if record["payload"] != payload.decode():
            assert record["payload_bytes"] == len(payload)
            assert record["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert count(influxdb.url, influx_db, "telemetry") == 1


def test_an_instance_with_zones_takes_its_sources_too(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    """A zoned instance acknowledges, unprocessed, what its root brings of other zones; the
    sources' topics are outside the root and are its own."""
    settings, prefix = _setup(tmp_path, mosquitto, influxdb, influx_db, topic_root)
    settings = settings.model_copy(
        update={"mqtt": settings.mqtt.model_copy(update={"zones": ("north",)})}
    )
    values = _values(2)
    messages = [
        (f"{prefix}/vendor/north/a-vendor-1/data", forms.vendor(BASE_MS, values)),
        (f"{prefix}/lwm2m/a-senml-1/senml", forms.senml("a-senml-1", BASE_MS + 1, values)),
        (
            f"{topic_root}/north/c-1/telemetry",
            json.dumps(_contract(BASE_MS, values, "cs")).encode(),
        ),
    ]
    with RunningPipeline(settings):
        publisher = Publisher(mosquitto.url)
        publisher.publish(messages)
        publisher.close()
        wait_until(
            lambda: count(influxdb.url, influx_db, "telemetry") >= len(messages),
            what="the sources' readings and the zone's",
        )
    assert not (tmp_path / "deadletter.jsonl").exists()
