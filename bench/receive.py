"""The MQTT receive path alone: luxtel's asyncio client against a bare paho-mqtt 2.x subscriber.

One Mosquitto of our own (`servers.MosquittoServer`, in a temporary directory). Every contender
gets a persistent session subscribed to `{root}/#` at QoS 1 first; then `--messages` QoS 1
messages (telemetry-sized JSON) are published once, so each session holds the same backlog
while its client is away. Each contender then runs in a process of its own, connects, receives
the whole backlog and acknowledges every message right after receipt:

- `paho`: paho-mqtt 2.x, `loop_forever`, acknowledging each message itself on receipt (its
  fastest mode, the "~53k msgs/s" of issue 7); `paho-manual`: the same with `manual_ack=True`
  and `client.ack(mid)` in `on_message`, as luxtel's source used it;
- `connection`: `mqtt.connection.MqttConnection`, `puback(packet_id)` per message;
- `source`: luxtel's whole `MqttSource` (Inbound records, `AckTracker`, the outbox queue) with
  a consumer that acknowledges each chunk through `source.ack` — what the pipeline pays;
- `source-before` (with `--source-before FILE`): the same consumer on another `mqtt_source.py`,
  e.g. the paho-based one from before this client (`git show c82306d:ingest/mqtt_source.py`).

Printed per contender: messages received, seconds from connect to the last message, messages/s,
the process's CPU time (user+system, `getrusage`) per message over that span, and the ratio to
paho. Not a test: nothing is asserted about speed::

    python bench/receive.py [--messages 200000] [--protocol 5|3.1.1] [--only paho,source]
        [--source-before /tmp/mqtt_source_paho.py]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ingest import mqtt_source  # noqa: E402
from ingest.metrics import IngestMetrics  # noqa: E402
from mqtt.codec import V5, V311, Publish  # noqa: E402
from mqtt.connection import ConnectOptions, MqttConnection, OutgoingQueue  # noqa: E402
from servers import MosquittoServer  # noqa: E402

CONTENDERS = ("paho", "paho-manual", "connection", "source", "source-before")
PAYLOAD = (
    b'{"ts":"2026-11-24T02:00:00.000Z","power_w":74.2,"voltage_v":230.1,"current_a":0.323,'
    b'"energy_wh":123456.7,"dim_level":80,"lux":12.5,"temp_c":31.5,"status":"on","seq":%06d}'
)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- the contenders (each in its own process) ----------------------------------------------


def run_paho(
    host: str, port: int, client_id: str, root: str, messages: int, v5: bool, manual: bool
) -> Any:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    received = 0
    last = 0.0
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if v5 else False,
        manual_ack=manual,
    )

    def on_message(c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        nonlocal received, last
        received += 1
        if manual:
            c.ack(message.mid, message.qos)
        if received >= messages:
            last = time.perf_counter()
            c.disconnect()

    client.on_message = on_message
    start, cpu = time.perf_counter(), cpu_s()
    if v5:
        client.connect(host, port, keepalive=60, clean_start=False)
    else:
        client.connect(host, port, keepalive=60)
    client.loop_forever()
    return received, last - start, cpu_s() - cpu


async def run_connection(
    host: str, port: int, client_id: str, root: str, messages: int, v5: bool
) -> Any:
    done = asyncio.Event()
    received = 0
    last = 0.0

    def on_publishes(packets: list[Publish]) -> None:
        nonlocal received, last
        puback = connection.puback
        for packet in packets:
            puback(packet.packet_id)
        received += len(packets)
        if received >= messages:
            last = time.perf_counter()
            done.set()

    options = ConnectOptions(
        host, port, client_id, version=V5 if v5 else V311, session_expiry_s=3600
    )
    connection = MqttConnection(options, on_publishes, lambda _c: done.set())
    start, cpu = time.perf_counter(), cpu_s()
    await connection.open()
    await done.wait()
    spent = cpu_s() - cpu
    await connection.disconnect(5)
    return received, last - start, spent


async def run_source(
    host: str, port: int, client_id: str, root: str, messages: int, v5: bool, module: Any
) -> Any:
    outbox: asyncio.Queue[Any] = asyncio.Queue(64)
    target = module.MqttTarget(
        host, port, root, client_id=client_id, protocol="5" if v5 else "3.1.1",
        session_expiry_s=3600,
    )  # fmt: skip
    source = module.MqttSource(target, outbox, IngestMetrics())
    start, cpu = time.perf_counter(), cpu_s()
    task = asyncio.create_task(source.run())
    received = 0
    while received < messages:
        chunk = await outbox.get()
        received += len(chunk)
        source.ack([inbound.delivery for inbound in chunk])
    last = time.perf_counter()
    spent = cpu_s() - cpu
    await source.stop()
    await source.close()
    await task
    return received, last - start, spent


# ---- set-up and the table -------------------------------------------------------------------


async def prepare(broker: MosquittoServer, root: str, ids: list[str], messages: int) -> float:
    """Sessions for every contender, then the backlog; returns the publish rate (msgs/s)."""
    for client_id in ids:
        options = ConnectOptions(broker.host, broker.port, client_id, session_expiry_s=3600)
        connection = MqttConnection(options, lambda _p: None, lambda _c: None)
        await connection.open()
        await connection.subscribe(f"{root}/#", 1)
        await connection.disconnect(5)
    outgoing = OutgoingQueue(messages)
    options = ConnectOptions(broker.host, broker.port, f"{root}-publisher")
    publisher = MqttConnection(options, lambda _p: None, lambda _c: None, outgoing)
    await publisher.open()
    start = time.perf_counter()
    for i in range(messages):
        outgoing.add(
            f"{root}/zone-{i // 100 % 100:03d}/lum-{i % 10000:06d}/telemetry", PAYLOAD % i, 1
        )
    while len(outgoing):  # noqa: ASYNC110  (the queue has no "empty" event)
        await asyncio.sleep(0.02)
    rate = messages / (time.perf_counter() - start)
    await publisher.disconnect(5)
    return rate


def contender_main(args: argparse.Namespace) -> None:
    v5 = args.protocol == "5"
    call = (args.host, args.port, args.client_id, args.root, args.messages, v5)
    if args.contender.startswith("paho"):
        result = run_paho(*call, manual=args.contender == "paho-manual")
    elif args.contender == "connection":
        result = asyncio.run(run_connection(*call))
    else:
        module: Any = mqtt_source
        if args.contender == "source-before":
            spec = importlib.util.spec_from_file_location("source_before", args.source_before)
            assert spec is not None
            assert spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        result = asyncio.run(run_source(*call, module))
    received, seconds, cpu = result
    print(json.dumps({"received": received, "seconds": seconds, "cpu_s": cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    parser.add_argument("--only", default="paho,paho-manual,connection,source")
    parser.add_argument(
        "--source-before",
        type=Path,
        help="an older ingest/mqtt_source.py to measure as 'source-before', e.g. the paho one: "
        "git show c82306d:ingest/mqtt_source.py > /tmp/mqtt_source_paho.py",
    )
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client-id", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        contender_main(args)
        return
    contenders = [name for name in args.only.split(",") if name]
    if args.source_before is not None and "source-before" not in contenders:
        contenders.append("source-before")
    root = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp, MosquittoServer(Path(tmp) / "mqtt") as broker:
        ids = {name: f"{root}-{name}" for name in contenders}
        rate = asyncio.run(prepare(broker, root, list(ids.values()), args.messages))
        print(f"backlog: {args.messages} QoS 1 messages per session, published at {rate:,.0f}/s")
        results: dict[str, dict[str, float]] = {}
        for name in contenders:
            done = subprocess.run(
                [
                    sys.executable, __file__, "--contender", name, "--host", broker.host,
                    "--port", str(broker.port), "--client-id", ids[name], "--root", root,
                    "--messages", str(args.messages), "--protocol", args.protocol,
                    *(["--source-before", str(args.source_before)] if args.source_before else []),
                ],
                capture_output=True, text=True, check=True, timeout=600,
            )  # fmt: skip
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    print_table(results, args.protocol)


def print_table(results: dict[str, dict[str, float]], protocol: str) -> None:
    base = results.get("paho")
    print(f"\nMQTT {protocol}, QoS 1, ack after receipt, backlog held in a persistent session")
    header = f"{'contender':<11} {'received':>9} {'seconds':>8} {'msgs/s':>9} {'CPU µs/msg':>11}"
    print(header + f" {'× paho msgs/s':>14} {'÷ paho CPU':>11}")
    for name, result in results.items():
        received = result["received"]
        rate = received / result["seconds"]
        cpu_us = result["cpu_s"] / received * 1e6
        line = (
            f"{name:<11} {received:>9.0f} {result['seconds']:>8.2f} {rate:>9,.0f} {cpu_us:>11.2f}"
        )
        if base is not None:
            base_rate = base["received"] / base["seconds"]
            base_cpu = base["cpu_s"] / base["received"] * 1e6
            line += f" {rate / base_rate:>14.2f} {base_cpu / cpu_us:>11.2f}"
        print(line)


if __name__ == "__main__":
    main()
