"""The decoder alone, for each source form: the contract's telemetry against the same readings
as ChirpStack v4 and The Things Stack v3 uplinks, SenML packs and a vendor's JSON.

    python bench/adapters.py [--readings 50000] [--devices 1000]

The readings are `bench/publish.py`'s (realistic values, one per message), each then wrapped as
each form would carry it: the uplinks in the envelopes of deploy/sources/*.json (rxInfo,
txInfo, rx_metadata, … — what a network server really sends, ~1.5 KB), SenML with base name and
time and IPSO names, the vendor form with kWh, ×10 integers and a status word. They are decoded
as `luxtel run` decodes them (`decode_into`, chunks of 500 with one receive time, the example
sources file and the fleet's inventory; the contract's messages also without a sources file,
for what the router costs the contract path). Prints CPU µs per reading, readings/s, per-message
p50/p99, and each form's ratio to the contract path; every message must become its reading (no
dead letter: zero loss); the lines equal to the contract's (without the fields a form does not
carry) are counted — the vendor form's kWh may differ from the Wh it came from in the last
digit. "vendor + fault flags" also writes a `status` point (faults from the status word) per
message, through the contract's pydantic status path.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

import orjson  # noqa: E402

from ingest.adapters import DeviceDirectory, SourceRouter, parse_sources  # noqa: E402
from ingest.decode import Decoded, Limits, decode_into  # noqa: E402
from models.timestamps import epoch_ms  # noqa: E402
from simulator.formats import SENML_RESOURCES  # noqa: E402

SAMPLES = ROOT / "deploy" / "sources"
CHUNK = 500


def _publisher() -> Any:
    spec = importlib.util.spec_from_file_location("bench_publish", BENCH / "publish.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("device_id", "ts", "seq")}


def chirpstack(zone: str, device: str, body: dict[str, Any], template: Any) -> tuple[str, bytes]:
    up = copy.deepcopy(template)
    up["time"] = body["ts"].replace("Z", "+00:00")
    up["deviceInfo"]["deviceName"] = device
    up["deviceInfo"]["tags"]["zone"] = zone
    up["fCnt"] = body["seq"]
    up["object"] = _fields(body)
    return f"application/app/device/{up['deviceInfo']['devEui']}/event/up", orjson.dumps(up)


def tts(zone: str, device: str, body: dict[str, Any], template: Any) -> tuple[str, bytes]:
    up = copy.deepcopy(template)
    up["end_device_ids"]["device_id"] = device
    up["uplink_message"]["received_at"] = body["ts"]
    up["uplink_message"]["f_cnt"] = body["seq"]
    up["uplink_message"]["decoded_payload"] = _fields(body)
    return f"v3/street-lighting@city/devices/{device}/up", orjson.dumps(up)


def senml(zone: str, device: str, body: dict[str, Any], template: Any) -> tuple[str, bytes]:
    ts_ms = epoch_ms(datetime.fromisoformat(body["ts"].replace("Z", "+00:00")))
    pack: list[dict[str, Any]] = [
        {
            "bn": f"urn:dev:ops:{device}/",
            "bt": ts_ms / 1000,
            "n": "3311/0/5850",
            "vb": body["lamp_on"],
        }
    ]
    pack += [{"n": n, "u": u, "v": body[f]} for f, n, u in SENML_RESOURCES if f in body]
    return f"lwm2m/{device}/senml", orjson.dumps(pack)


def vendor(zone: str, device: str, body: dict[str, Any], template: Any) -> tuple[str, bytes]:
    ts_ms = epoch_ms(datetime.fromisoformat(body["ts"].replace("Z", "+00:00")))
    data = {
        "pwr": body["power_w"],
        "kwh": body["energy_wh"] / 1000,
        "tmp": round(body["driver_temp_c"] * 10),
        "v": round(body["voltage_v"] * 10),
        "dim": body["dim_pct"],
        "st": 1 if body["lamp_on"] else 0,
    }
    return f"vendor/{zone}/{device}/data", orjson.dumps({"t": ts_ms, "d": data})


FORMS: dict[str, Callable[[str, str, dict[str, Any], Any], tuple[str, bytes]]] = {
    "chirpstack": chirpstack,
    "thethingsstack": tts,
    "senml": senml,
    "vendor mapping": vendor,
    "vendor + fault flags": vendor,
}
TEMPLATES = {"chirpstack": "chirpstack-up.json", "thethingsstack": "tts-up.json"}


def run(messages: list[tuple[str, bytes]], limits: Limits) -> tuple[dict[str, float], list[str]]:
    now = datetime.now(UTC)
    now_ms = epoch_ms(now)
    warm = Decoded()
    for topic, payload in messages[:1000]:
        decode_into(warm, topic, payload, now, now_ms, limits)
    timings: list[int] = []
    lines: list[str] = []
    dead = 0
    gc.collect()
    clock = time.perf_counter_ns
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    for first in range(0, len(messages), CHUNK):
        out = Decoded()
        for topic, payload in messages[first : first + CHUNK]:
            start = clock()
            decode_into(out, topic, payload, now, now_ms, limits)
            timings.append(clock() - start)
        lines += [p.line for p in out.points if p.line.startswith("telemetry")]
        dead += len(out.dead_letters)
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    timings.sort()
    loads = orjson.loads
    parse_start = time.process_time()
    for _, payload in messages:
        loads(payload)
    parse = time.process_time() - parse_start
    size = sum(len(p) for _, p in messages) / len(messages)
    return {
        "readings/s": len(messages) / wall,
        "cpu_us": cpu / len(messages) * 1e6,
        "p50_us": timings[len(timings) // 2] / 1000,
        "p99_us": timings[int(0.99 * len(timings))] / 1000,
        "bytes": size,
        "dead": dead,
        "parse_us": parse / len(messages) * 1e6,
    }, lines


VENDOR_FIELDS = ("lamp_on", "power_w", "energy_wh", "voltage_v", "dim_pct", "driver_temp_c")


def _only(line: str, drop: tuple[str, ...] = (), keep: tuple[str, ...] = ()) -> str:
    """The line with the fields a form does not carry left out."""
    head, fields, ts = line.split(" ")
    kept = [
        f
        for f in fields.split(",")
        if not f.startswith(drop) and (not keep or f.split("=")[0] in keep)
    ]
    return f"{head} {','.join(kept)} {ts}"


NO_FAULTS = (
    'faults.lamp_failure = { path = "$.d.st", bit = 3 }\n'
    'faults.driver_overtemp = { path = "$.d.st", bit = 4 }\n'
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    publish = _publisher()
    contract = publish.build_messages(
        root="lighting",
        readings=args.readings,
        devices=args.devices,
        mode="telemetry",
        batch_size=1,
        ts_base_ms=int(time.time() * 1000) - 3_600_000,
        seed=1,
    )
    zones = {}
    for topic, _ in contract:
        _, zone, device, _ = topic.split("/")
        zones[device] = zone
    text = (SAMPLES / "sources.example.toml").read_text()
    directory = DeviceDirectory(zones=zones)
    with_faults = SourceRouter(parse_sources(text), "lighting", directory)
    router = SourceRouter(parse_sources(text.replace(NO_FAULTS, "")), "lighting", directory)
    limits = Limits(topic_root="lighting", sources=router)
    results = {}
    base, base_lines = run(contract, limits)
    results["luxtel contract"] = base
    table = Table(title=f"decode per form, {args.readings:,} readings, one per message")
    for header in (
        "form",
        "bytes/msg",
        "readings/s",
        "CPU µs/reading",
        "p50 µs",
        "p99 µs",
        "÷ contract CPU",
        "orjson.loads alone µs",
        "dead letters",
        "lines = contract's",
    ):
        table.add_column(header, justify="right")
    table.add_row(
        "luxtel contract",
        f"{base['bytes']:,.0f}",
        f"{base['readings/s']:,.0f}",
        f"{base['cpu_us']:.2f}",
        f"{base['p50_us']:.2f}",
        f"{base['p99_us']:.2f}",
        "×1.00",
        f"{base['parse_us']:.2f}",
        str(int(base["dead"])),
        "—",
    )
    bare, _ = run(contract, Limits(topic_root="lighting"))
    table.add_row(
        "contract, no sources file",
        f"{bare['bytes']:,.0f}",
        f"{bare['readings/s']:,.0f}",
        f"{bare['cpu_us']:.2f}",
        f"{bare['p50_us']:.2f}",
        f"{bare['p99_us']:.2f}",
        f"×{bare['cpu_us'] / base['cpu_us']:.2f}",
        f"{bare['parse_us']:.2f}",
        str(int(bare["dead"])),
        "—",
    )
    for name, build in FORMS.items():
        template = (
            json.loads((SAMPLES / TEMPLATES[name]).read_text()) if name in TEMPLATES else None
        )
        messages = []
        for topic, payload in contract:
            _, zone, device, _ = topic.split("/")
            messages.append(build(zone, device, json.loads(payload), template))
        if "fault" in name:
            figures, lines = run(messages, Limits(topic_root="lighting", sources=with_faults))
        else:
            figures, lines = run(messages, limits)
        if name in TEMPLATES:
            expected = base_lines
        elif name == "senml":
            expected = [_only(x, drop=("seq=",)) for x in base_lines]
        else:
            expected = [_only(x, keep=VENDOR_FIELDS) for x in base_lines]
        same = sum(a == b for a, b in zip(lines, expected, strict=False))
        table.add_row(
            name,
            f"{figures['bytes']:,.0f}",
            f"{figures['readings/s']:,.0f}",
            f"{figures['cpu_us']:.2f}",
            f"{figures['p50_us']:.2f}",
            f"{figures['p99_us']:.2f}",
            f"×{figures['cpu_us'] / base['cpu_us']:.2f}",
            f"{figures['parse_us']:.2f}",
            str(int(figures["dead"])),
            f"{same:,}/{len(lines):,}",
        )
        if figures["dead"] or len(lines) != args.readings:
            Console().print(table)
            raise SystemExit(f"{name}: {len(lines)} readings of {args.readings}: loss")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
