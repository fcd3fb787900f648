"""The benchmark's publisher: contract-valid readings at QoS 1, each acknowledged by the broker.

Run by `bench/ingest.py` as a process of its own (so it competes with the contender for the CPU
as a real fleet's broker traffic would not, but never for the contender's GIL)::

    python bench/publish.py --url mqtt://127.0.0.1:1883 --readings 100000 --times FILE

Every reading has its own `ts` (`ts_base_ms + i` milliseconds, RFC 3339), so once everything is
written, `SELECT COUNT(power_w) FROM telemetry` equals the number published exactly: a lost
reading makes it smaller, and a duplicate cannot make it larger (same series and time).

Payloads are all built before connecting. Publishing keeps at most `--window` messages
unacknowledged; each message's publish wall time (`time.time()`, the moment it is handed to the
client with room in the window, so it goes out at once) is written to `--times` as float64s in
publish order, and a JSON summary is printed on stdout.

With `--inventory FILE` it writes the same fleet as the contract's inventory CSV instead (for
luxtel's rules engine) and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import json
import random
import resource
import select
import socket
import sys
import time
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

DEVICES_PER_ZONE = 100
DEVICES_PER_CIRCUIT = 25
RATED_W = (30.0, 50.0, 75.0, 100.0, 150.0)
LIT_SHARE = 0.97
"""Luminaires lit through the run; the others stay dark (their readings: lamp off, standby draw)."""
FLEET_LATITUDE = 45.0
INVENTORY_REPORT_INTERVAL_S = 7200
"""The readings' ts lie in the hour before the run (bench/ingest.py), one to two hours back: with
the usual 900 s, the rules' deadman (3 intervals of silence) would see every device silent at
its first tick, an artefact of the benchmark rather than work a fleet causes."""


@dataclass
class Luminaire:
    """What one simulated controller knows between readings."""

    device_id: str
    zone: str
    rated_w: float
    energy_wh: float
    lit: bool
    """Lit all night, or dark for the whole run (switched off, or a failed lamp): a lamp that
    went on and off at random between readings would have luxtel's rules report it cycling."""
    seq: int = 0
    last_ts_ms: int | None = None


def fleet(devices: int, rng: random.Random) -> list[Luminaire]:
    """`devices` luminaires, `DEVICES_PER_ZONE` to a zone."""
    return [
        Luminaire(
            device_id=f"lum-{i:06d}",
            zone=f"zone-{i // DEVICES_PER_ZONE:03d}",
            rated_w=rng.choice(RATED_W),
            energy_wh=round(rng.uniform(50_000, 900_000), 1),
            lit=rng.random() < LIT_SHARE,
        )
        for i in range(devices)
    ]


@functools.lru_cache(maxsize=4)
def _rfc3339_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")


def rfc3339_ms(ts_ms: int) -> str:
    """`2025-11-23T12:13:20.042Z`: UTC, millisecond digits."""
    return f"{_rfc3339_second(ts_ms // 1000)}{ts_ms % 1000:03d}Z"


def fleet_longitude(ts_ms: int) -> float:
    """Where local solar time is midnight at `ts_ms`: the readings say lamps are lit (night), so
    the rules see them at night, whenever the benchmark runs."""
    utc_hours = ts_ms / 3_600_000 % 24
    return round((-15.0 * utc_hours + 180.0) % 360.0 - 180.0, 4)


def write_inventory(
    path: Path,
    lums: list[Luminaire],
    ts_ms: int,
    report_interval_s: int = INVENTORY_REPORT_INTERVAL_S,
) -> None:
    """The fleet as the contract's inventory CSV: a circuit per `DEVICES_PER_CIRCUIT` of a zone,
    each zone a little further east, all at solar midnight around `ts_ms`."""
    from models.inventory import INVENTORY_COLUMNS  # here: publishing needs none of luxtel

    lon = fleet_longitude(ts_ms)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(INVENTORY_COLUMNS)
        for i, lum in enumerate(lums):
            zone_no, rank = divmod(i, DEVICES_PER_ZONE)
            writer.writerow(
                (
                    lum.device_id,
                    lum.zone,
                    f"{lum.zone}-c{rank // DEVICES_PER_CIRCUIT}",
                    f"{FLEET_LATITUDE + rank * 1e-4:.6f}",
                    f"{lon + zone_no * 1e-3:.6f}",
                    f"{lum.rated_w:g}",
                    f"{lum.rated_w * 2.5:g}",  # the sodium lamp it replaced
                    report_interval_s,
                    "bench-led",
                    "2024-01-01",
                )
            )


def reading(lum: Luminaire, ts_ms: int, rng: random.Random, *, with_device: bool) -> dict[str, Any]:
    """One realistic reading of `lum` at `ts_ms` (lit and dimmed, as at night, unless it is one
    of the few dark ones)."""
    lamp_on = lum.lit
    dim = rng.choice((100, 100, 80, 70, 50)) if lamp_on else 0
    voltage = round(rng.gauss(231.0, 2.5), 1)
    if lamp_on:
        power = round(lum.rated_w * dim / 100 * rng.uniform(0.95, 1.03), 2)
        power_factor = round(rng.uniform(0.90, 0.99), 3)
    else:
        power = round(rng.uniform(0.3, 0.6), 2)  # the driver's standby draw
        power_factor = round(rng.uniform(0.30, 0.50), 3)
    if lum.last_ts_ms is not None:  # the energy its power drew since its previous reading
        lum.energy_wh = round(lum.energy_wh + power * (ts_ms - lum.last_ts_ms) / 3_600_000, 3)
    lum.last_ts_ms = ts_ms
    lum.seq += 1
    body: dict[str, Any] = {
        "ts": rfc3339_ms(ts_ms),
        "seq": lum.seq,
        "lamp_on": lamp_on,
        "power_w": power,
        "energy_wh": lum.energy_wh,
        "voltage_v": voltage,
        "current_a": round(power / (voltage * power_factor), 4),
        "power_factor": power_factor,
        "dim_pct": dim,
        "driver_temp_c": round(rng.uniform(28.0, 58.0), 1),
        "lux": round(rng.uniform(0.0, 12.0), 1),
    }
    if with_device:
        body = {"device_id": lum.device_id, **body}
    return body


def dumps(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def build_messages(
    *,
    root: str,
    readings: int,
    devices: int,
    mode: str,
    batch_size: int,
    ts_base_ms: int,
    seed: int,
) -> list[tuple[str, bytes]]:
    """The whole run's messages, in publish order. Reading `i` has `ts = ts_base_ms + i`."""
    rng = random.Random(seed)
    lums = fleet(devices, rng)
    messages: list[tuple[str, bytes]] = []
    if mode == "telemetry":
        for i in range(readings):
            lum = lums[i % devices]
            body = reading(lum, ts_base_ms + i, rng, with_device=True)
            messages.append((f"{root}/{lum.zone}/{lum.device_id}/telemetry", dumps(body)))
        return messages
    # Gateways: one per zone, each relaying its own zone's luminaires in turn.
    zones: dict[str, list[Luminaire]] = {}
    for lum in lums:
        zones.setdefault(lum.zone, []).append(lum)
    zone_names = sorted(zones)
    cursor = dict.fromkeys(zone_names, 0)
    i = 0
    m = 0
    while i < readings:
        zone = zone_names[m % len(zone_names)]
        members = zones[zone]
        elements = []
        for _ in range(min(batch_size, readings - i)):
            lum = members[cursor[zone] % len(members)]
            cursor[zone] += 1
            elements.append(reading(lum, ts_base_ms + i, rng, with_device=True))
            i += 1
        gateway = f"gw-{zone.removeprefix('zone-')}"
        messages.append((f"{root}/{zone}/{gateway}/batch", dumps(elements)))
        m += 1
    return messages


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length integer."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """A QoS 1 PUBLISH (MQTT 3.1.1 §3.3)."""
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + packet_id.to_bytes(2, "big") + payload
    return b"\x32" + remaining_length(len(body)) + body


def connect_packet(client_id: str, keepalive_s: int) -> bytes:
    """CONNECT, MQTT 3.1.1, clean session (§3.1)."""
    cid = client_id.encode()
    body = (
        b"\x00\x04MQTT\x04\x02" + keepalive_s.to_bytes(2, "big") + len(cid).to_bytes(2, "big") + cid
    )
    return b"\x10" + remaining_length(len(body)) + body


class Publisher:
    """A QoS 1 publisher on a plain socket, with a window of unacknowledged messages.

    MQTT 3.1.1 on the wire, a few dozen lines: paho-mqtt publishes ~8 500 messages/s on this
    kind of machine while taking a whole core (packet objects, callbacks, a socket pair per
    publish), so it, not the broker or the ingester, would set the pace and take the CPU the
    contender needs. Packets are built before the clock starts; PUBACKs must come back in publish
    order (§4.6), and each is checked against its packet id.
    """

    KEEPALIVE_S = 60

    def __init__(self, url: str, client_id: str, window: int) -> None:
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        if not 1 <= window <= 65535:
            fail("--window must be between 1 and 65535 (one packet id each)")
        self.window = window
        self.client_id = client_id
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inbox = bytearray()
        self.acked = 0
        self.acked_at = 0.0
        self.last_sent = time.monotonic()

    def connect(self) -> None:
        self._send(connect_packet(self.client_id, self.KEEPALIVE_S))
        while (packet := self._parse()) is None:
            self._receive()
        kind, body = packet
        if kind != 0x20 or len(body) != 2:
            fail(f"expected a CONNACK, got packet type {kind:#x}")
        if body[1] != 0:
            fail(f"the broker refused the connection (CONNACK return code {body[1]})")

    def run(
        self, messages: list[tuple[str, bytes]], interval_s: float, timeout_s: float
    ) -> array[float]:
        """Publish everything (one message per `interval_s` when > 0); the publish times."""
        total = len(messages)
        packets = [
            publish_packet(topic, payload, k % 65535 + 1)
            for k, (topic, payload) in enumerate(messages)
        ]
        times = array("d", bytes(8 * total))
        start = time.monotonic()
        deadline = start + timeout_s
        sent = 0
        while self.acked < total:
            now = time.monotonic()
            if now > deadline:
                fail(f"the broker acknowledged {self.acked} of {total} in {timeout_s:g} s")
            limit = min(total, self.acked + self.window)
            if interval_s > 0:
                limit = min(limit, int((now - start) / interval_s) + 1)  # those due by now
            if limit > sent:
                stamp = time.time()
                for k in range(sent, limit):
                    times[k] = stamp
                self._send(b"".join(packets[sent:limit]))
                sent = limit
            wait = 1.0
            if interval_s > 0 and sent < total and sent - self.acked < self.window:
                wait = start + sent * interval_s - time.monotonic()  # until the next is due
            self._read_acks(max(0.0, min(wait, deadline - time.monotonic())))
            if time.monotonic() - self.last_sent > self.KEEPALIVE_S / 2:
                self._send(b"\xc0\x00")  # PINGREQ
        self.acked_at = time.time()
        return times

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send(b"\xe0\x00")  # DISCONNECT
        self.sock.close()

    def _send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.last_sent = time.monotonic()

    def _read_acks(self, timeout: float) -> None:
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if not readable:
            return
        self._receive()
        while (packet := self._parse()) is not None:
            kind, body = packet
            if kind == 0x40:  # PUBACK
                expected = self.acked % 65535 + 1
                got = int.from_bytes(body[:2], "big")
                if got != expected:
                    fail(f"PUBACK for packet id {got} where {expected} was next: out of order")
                self.acked += 1
            elif kind != 0xD0:  # PINGRESP
                fail(f"unexpected packet type {kind:#x} from the broker")

    def _receive(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            fail(f"the broker closed the connection after {self.acked} acknowledgements")
        self.inbox += chunk

    def _parse(self) -> tuple[int, bytes] | None:
        """The next whole packet in the inbox, taken out: (type-and-flags byte, body)."""
        inbox = self.inbox
        length = 0
        shift = 0
        i = 1
        while True:
            if i >= len(inbox):
                return None
            digit = inbox[i]
            length |= (digit & 0x7F) << shift
            shift += 7
            i += 1
            if not digit & 0x80:
                break
        if len(inbox) < i + length:
            return None
        kind, body = inbox[0], bytes(inbox[i : i + length])
        del inbox[: i + length]
        return kind, body


def fail(message: str) -> NoReturn:
    print(f"publish.py: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="mqtt://host:port")
    parser.add_argument("--root", default="lighting", help="topic root")
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--mode", choices=("telemetry", "batch"), default="telemetry")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0.0, help="readings/s; 0: all at once")
    parser.add_argument("--ts-base-ms", type=int, help="ts of reading 0, epoch ms")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=int, default=1000, help="unacknowledged messages")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for everything")
    parser.add_argument("--client-id", default="bench-publisher")
    parser.add_argument("--times", type=Path, help="publish times out (float64)")
    parser.add_argument(
        "--inventory",
        type=Path,
        metavar="FILE",
        help="write the fleet as an inventory CSV (luxtel's rules need one) and exit",
    )
    parser.add_argument(
        "--report-interval-s",
        type=int,
        default=INVENTORY_REPORT_INTERVAL_S,
        help="the inventory's report interval (with --inventory)",
    )
    args = parser.parse_args(argv)
    if args.ts_base_ms is None:
        parser.error("--ts-base-ms is required")
    if args.inventory is not None:
        write_inventory(
            args.inventory,
            fleet(args.devices, random.Random(args.seed)),
            args.ts_base_ms,
            args.report_interval_s,
        )
        return
    if args.url is None or args.times is None:
        parser.error("--url and --times are required to publish")

    messages = build_messages(
        root=args.root,
        readings=args.readings,
        devices=args.devices,
        mode=args.mode,
        batch_size=args.batch_size,
        ts_base_ms=args.ts_base_ms,
        seed=args.seed,
    )
    per_message = 1 if args.mode == "telemetry" else args.batch_size
    interval_s = per_message / args.rate if args.rate > 0 else 0.0
    publisher = Publisher(args.url, args.client_id, args.window)
    try:
        publisher.connect()
        times = publisher.run(messages, interval_s, args.timeout)
    finally:
        publisher.close()
    with args.times.open("wb") as out:
        times.tofile(out)
    summary = {
        "messages": len(messages),
        "readings": args.readings,
        "payload_bytes": sum(len(p) for _, p in messages),
        "first_publish": times[0],
        "last_publish": times[-1],
        "all_acked": publisher.acked_at,
        "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
