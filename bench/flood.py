"""A flood of bad payloads from one device while its neighbours publish (issue 13, case 2).

    python bench/flood.py [--messages 20000] [--size 102400] [--neighbours 50] [--rate 100]
                          [--deadletter-max-mib N] [--segment-mib N] [--hang-influx-s S]
                          [--keep]

On a Mosquitto and an InfluxDB of our own, `luxtel run` (its own process, every setting at its
default but those given here) takes `--messages` payloads of `--size` bytes of binary garbage
from one device (`lighting/z0/flooder/telemetry`, QoS 1, as fast as the broker acknowledges
them), while `--neighbours` luminaires publish valid readings at `--rate` readings/s in all
from another client, until the flood is over and a few seconds more.

Printed: the flood's throughput (messages/s and MiB/s until luxtel has dead-lettered every
message, `luxtel_rejected_total` on its /metrics), luxtel's peak RSS (VmHWM of its process), the
dead letter's disk use (its peak over the run, sampled every 0.2 s, and at the end), what
rotation discarded, the MQTT copies dropped, and the neighbours' readings: published, landed in
InfluxDB, and their publish-to-queryable latency (p50/p99/max; a reading is counted landed at
the first poll, every 0.2 s, at which InfluxDB holds as many readings as had been published up
to it: readings of one publisher land in order).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.ingest import luxtel_metrics as metrics  # noqa: E402
from servers import InfluxDBServer, MosquittoServer, create_database, query  # noqa: E402

POLL_S = 0.2


def publisher(url: str, name: str) -> paho.Client:
    host, port = url.removeprefix("mqtt://").split(":")
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"{name}-{uuid.uuid4().hex[:6]}",
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect(host, int(port), keepalive=60)
    client.loop_start()
    return client


def rejected(samples: dict[str, float]) -> float:
    return sum(v for k, v in samples.items() if k.startswith("luxtel_rejected_total{"))


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def dead_letter_bytes(state: Path) -> int:
    total = 0
    for path in state.glob("deadletter.jsonl*"):
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


def count(url: str, database: str) -> int:
    answer = query(url, "SELECT COUNT(power_w) FROM telemetry", db=database)
    series = answer["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=100 * 1024)
    parser.add_argument("--neighbours", type=int, default=50)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--deadletter-max-mib", type=float, default=None)
    parser.add_argument("--segment-mib", type=float, default=None)
    parser.add_argument(
        "--hang-influx-s",
        type=float,
        default=0.0,
        help="stop InfluxDB (SIGSTOP) as the flood starts, for this long: a hung database "
        "holds the neighbours' batches, so the flood piles up in luxtel's queues",
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="luxtel-flood-"))
    broker = MosquittoServer(work / "mosquitto").start()
    influx = InfluxDBServer(work / "influxdb").start()
    create_database(influx.url, "flood")
    state = work / "state"
    config = work / "luxtel.toml"
    deadletter = ""
    if args.deadletter_max_mib is not None:
        deadletter += f"max_bytes = {int(args.deadletter_max_mib * 1024 * 1024)}\n"
    if args.segment_mib is not None:
        deadletter += f"segment_bytes = {int(args.segment_mib * 1024 * 1024)}\n"
    config.write_text(
        f'state_dir = "{state}"\n'
        f'[mqtt]\nurl = "{broker.url}"\nclient_id = "luxtel-flood"\n'
        f'[influx]\nurl = "{influx.url}"\ndatabase = "flood"\n'
        "[metrics]\nport = 0\n"
        '[log]\nformat = "json"\n' + (f"[deadletter]\n{deadletter}" if deadletter else "")
    )
    log = work / "luxtel.log"
    luxtel = subprocess.Popen(
        [sys.executable, "-m", "luxtel", "run", "-c", str(config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        port = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ("mqtt_connected" in log.read_text() and port):
            for line in log.read_text().splitlines():
                if '"metrics_serving"' in line:
                    port = int(json.loads(line)["url"].rsplit(":", 1)[1].split("/")[0])
            time.sleep(0.1)
        if not port or luxtel.poll() is not None:
            raise SystemExit(f"luxtel did not start:\n{log.read_text()[-3000:]}")

        stop = threading.Event()
        publish_times: list[float] = []
        disk_peak = 0
        polls: list[tuple[float, int]] = []

        def neighbours() -> None:
            client = publisher(broker.url, "neighbours")
            base_ms = int(time.time() * 1000) - 3_600_000
            i = 0
            start = time.monotonic()
            while not stop.is_set():
                wait = start + i / args.rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                body = {
                    "ts": (base_ms + i) / 1000,
                    "lamp_on": True,
                    "power_w": 40.0,
                    "energy_wh": 1000.0 + i,
                    "seq": i,
                }
                device = f"lum-{i % args.neighbours}"
                info = client.publish(f"lighting/z1/{device}/telemetry", json.dumps(body), qos=1)
                publish_times.append(time.monotonic())
                i += 1
                if i % 100 == 0:
                    info.wait_for_publish(30)
            client.disconnect()
            client.loop_stop()

        def sample() -> None:
            nonlocal disk_peak
            while not stop.is_set():
                disk_peak = max(disk_peak, dead_letter_bytes(state))
                with contextlib.suppress(Exception):
                    polls.append((time.monotonic(), count(influx.url, "flood")))
                time.sleep(POLL_S)

        helpers = [threading.Thread(target=neighbours), threading.Thread(target=sample)]
        for helper in helpers:
            helper.start()
        time.sleep(2)  # the neighbours alone first

        garbage = os.urandom(args.size)
        flooder = publisher(broker.url, "flooder")
        if args.hang_influx_s and influx.pid is not None:
            os.kill(influx.pid, signal.SIGSTOP)
            threading.Timer(args.hang_influx_s, os.kill, (influx.pid, signal.SIGCONT)).start()
        started = time.monotonic()
        window = []
        for n in range(args.messages):
            payload = n.to_bytes(8, "big") + garbage[8:]
            window.append(flooder.publish("lighting/z0/flooder/telemetry", payload, qos=1))
            if len(window) >= 200:
                for info in window:
                    info.wait_for_publish(120)
                window = []
        for info in window:
            info.wait_for_publish(120)
        published_s = time.monotonic() - started
        while rejected(metrics(port)) < args.messages:
            if luxtel.poll() is not None:
                raise SystemExit(f"luxtel ended:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        flood_s = time.monotonic() - started
        flooder.disconnect()
        flooder.loop_stop()
        time.sleep(5)  # the neighbours after the flood
        stop.set()
        for helper in helpers:
            helper.join(60)
        sent = len(publish_times)
        deadline = time.monotonic() + 60
        while count(influx.url, "flood") < sent and time.monotonic() < deadline:
            time.sleep(POLL_S)
            polls.append((time.monotonic(), count(influx.url, "flood")))
        samples = metrics(port)
        rss = peak_rss_mib(luxtel.pid)
        disk_end = dead_letter_bytes(state)
        disk_peak = max(disk_peak, disk_end)
        landed = count(influx.url, "flood")
        latencies = []
        cursor = 0
        for k, published_at in enumerate(publish_times):
            while cursor < len(polls) and polls[cursor][1] <= k:
                cursor += 1
            if cursor < len(polls):
                latencies.append(polls[cursor][0] - published_at)
        latencies.sort()

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0

        mib = 1024 * 1024
        discarded = samples.get("luxtel_deadletter_discarded_records_total", 0)
        discarded_bytes = samples.get("luxtel_deadletter_discarded_bytes_total", 0)
        slowest = latencies[-1] if latencies else 0
        cap = samples.get("luxtel_deadletter_bytes", 0)
        print(f"flood: {args.messages} messages of {args.size} bytes from one device")
        print(
            f"  published in {published_s:.1f} s; all dead-lettered after {flood_s:.1f} s: "
            f"{args.messages / flood_s:,.0f} messages/s, "
            f"{args.messages * args.size / mib / flood_s:,.1f} MiB/s"
        )
        print(f"  luxtel peak RSS (VmHWM): {rss:,.1f} MiB")
        print(
            f"  dead letter on disk: peak {disk_peak / mib:,.1f} MiB, end {disk_end / mib:,.1f} "
            f"MiB (luxtel_deadletter_bytes {cap / mib:,.1f} MiB); "
            f"rotation discarded {discarded:,.0f} records, {discarded_bytes / mib:,.1f} MiB"
        )
        print(
            "  MQTT copies dropped: "
            f"{samples.get('luxtel_mqtt_output_dropped_total', 0):,.0f} of {args.messages}"
        )
        print(
            f"neighbours: {sent} readings published at {args.rate:g}/s, {landed} landed; "
            f"latency p50 {pct(0.5):.2f} s, p99 {pct(0.99):.2f} s, max {slowest:.2f} s"
        )
    finally:
        luxtel.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            luxtel.wait(60)
        broker.stop()
        influx.stop()
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
