"""The Things Stack bridged into the city's broker, as deploy/sources/mosquitto-tts-bridge.conf
does it, on real brokers: a Mosquitto stands in for The Things Stack's MQTT server (uplinks at
QoS 0, MQTT 3.1.1), the city's Mosquitto bridges them in, luxtel takes them as a source — and,
with `queue_qos0_messages`, what arrives while luxtel is down waits for its persistent session."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from luxtel.settings import InventorySettings, SourcesSettings
from servers import InfluxDBServer, MosquittoServer
from tests import adapter_payloads as forms
from tests.conftest import ServerFactory
from tests.support import Publisher, RunningPipeline, count, make_settings, wait_until

BRIDGE = Path(__file__).resolve().parent.parent / "deploy" / "sources" / "mosquitto-tts-bridge.conf"
BASE_MS = int(time.time() * 1000) - 3_600_000


def _bridge_conf(tts: MosquittoServer) -> str:
    """The shipped bridge, pointed at the stand-in (plain TCP, no credentials)."""
    kept = []
    for line in BRIDGE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key = line.split()[0]
        if key in ("bridge_capath", "remote_username", "remote_password"):
            continue
        if key == "address":
            line = f"address {tts.host}:{tts.port}"
        kept.append(line)
    return "queue_qos0_messages true\n" + "\n".join(kept) + "\n"


def _wait_for_bridge(tts: MosquittoServer, city: MosquittoServer) -> None:
    """Until a probe published on the stand-in reaches the city's broker."""
    got = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:6]}")
    client.on_message = lambda *_: got.set()
    client.connect(city.host, city.port)
    client.subscribe("v3/street-lighting@city/devices/probe/up", qos=0)
    client.loop_start()
    probe = Publisher(tts.url)
    try:
        deadline = time.monotonic() + 30
        while not got.is_set() and time.monotonic() < deadline:
            probe.publish([("v3/street-lighting@city/devices/probe/up", b"{}")], qos=0)
            got.wait(0.3)
        assert got.is_set(), "the bridge did not connect"
    finally:
        probe.close()
        client.loop_stop()
        client.disconnect()


def test_uplinks_bridged_at_qos_0_land_and_wait_for_luxtel_while_it_is_down(
    tmp_path: Path,
    mosquitto_factory: ServerFactory[MosquittoServer],
    influxdb: InfluxDBServer,
    influx_db: str,
) -> None:
    tts = mosquitto_factory()
    city = mosquitto_factory(extra_conf=_bridge_conf(tts))
    _wait_for_bridge(tts, city)
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[sources]]\nname = "tts"\nadapter = "thethingsstack"\ntopic = "v3/+/devices/+/up"\n'
    )
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(
        "device_id,zone,circuit,lat,lon,rated_power_w,baseline_power_w,report_interval_s,model,"
        "installed_on\n"
        + "".join(f"lum-{n},north,n-1,52.3,4.9,60,150,900,X,2024-01-01\n" for n in range(20))
    )
    settings = make_settings(tmp_path, city.url, influxdb.url, influx_db, "lighting")
    settings = settings.model_copy(
        update={
            "sources": SourcesSettings(path=sources),
            "inventory": InventorySettings(path=inventory),
        }
    )

    def uplinks(first: int, last: int) -> list[tuple[str, bytes]]:
        values: dict[str, Any] = {"lamp_on": True, "power_w": 40.5, "energy_wh": 1000.0}
        return [
            (
                f"v3/street-lighting@city/devices/lum-{n % 20}/up",
                forms.tts(f"lum-{n % 20}", BASE_MS + n, {**values, "seq": n}),
            )
            for n in range(first, last)
        ]

    device = Publisher(tts.url)
    try:
        with RunningPipeline(settings):
            device.publish(uplinks(0, 50), qos=0)
            wait_until(lambda: count(influxdb.url, influx_db, "telemetry") >= 50, what="uplinks")
        # luxtel is down: the stand-in sends at QoS 0, never queues; the city's broker does.
        device.publish(uplinks(50, 100), qos=0)
        time.sleep(1.0)
        assert count(influxdb.url, influx_db, "telemetry") == 50
        with RunningPipeline(settings):
            wait_until(
                lambda: count(influxdb.url, influx_db, "telemetry") >= 100,
                what="the uplinks that arrived while luxtel was down",
            )
    finally:
        device.close()
    assert count(influxdb.url, influx_db, "telemetry") == 100
    assert not (tmp_path / "deadletter.jsonl").exists()


def test_a_source_on_its_own_broker_connection_at_qos_0(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    mosquitto_factory: ServerFactory[MosquittoServer],
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    """luxtel subscribed directly to the stand-in (MQTT 3.1.1, QoS 0), beside the city's broker:
    both land; stopping drains both."""
    tts = mosquitto_factory()
    secret = tmp_path / "tts.key"
    secret.write_text("NNSXS.not-a-real-key\n")
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[sources]]\nname = "tts"\nadapter = "thethingsstack"\ntopic = "v3/+/devices/+/up"\n'
        f'broker = {{ url = "{tts.url}", username = "street-lighting@city", '
        f'password_file = "{secret}" }}\n'
    )
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(
        "device_id,zone,circuit,lat,lon,rated_power_w,baseline_power_w,report_interval_s,model,"
        "installed_on\n"
        + "".join(f"lum-{n},north,n-1,52.3,4.9,60,150,900,X,2024-01-01\n" for n in range(20))
    )
    settings = make_settings(tmp_path, mosquitto.url, influxdb.url, influx_db, topic_root)
    settings = settings.model_copy(
        update={
            "sources": SourcesSettings(path=sources),
            "inventory": InventorySettings(path=inventory),
        }
    )
    values: dict[str, Any] = {"lamp_on": True, "power_w": 40.5, "energy_wh": 1000.0}
    uplinks = [
        (
            f"v3/street-lighting@city/devices/lum-{n % 20}/up",
            forms.tts(f"lum-{n % 20}", BASE_MS + n, {**values, "seq": n}),
        )
        for n in range(60)
    ]
    contract = [
        (f"{topic_root}/north/c-{n}/telemetry", forms.json_reading(BASE_MS + n, values))
        for n in range(10)
    ]
    with RunningPipeline(settings):  # connected and subscribed to both brokers
        device = Publisher(tts.url)
        device.publish(uplinks, qos=0)
        device.close()
        city = Publisher(mosquitto.url)
        city.publish(contract)
        city.close()
        wait_until(
            lambda: count(influxdb.url, influx_db, "telemetry") >= len(uplinks) + len(contract),
            what="the uplinks and the contract readings",
        )
    assert count(influxdb.url, influx_db, "telemetry") == len(uplinks) + len(contract)
    assert not (tmp_path / "deadletter.jsonl").exists()
