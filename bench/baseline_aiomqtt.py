"""The baseline: the straightforward ingester a user would write instead of running luxtel.

aiomqtt 2.x subscriber (QoS 1, clean session) → `Reading.model_validate_json` (luxtel's own
models, so validation is the same) → an f-string line of line protocol → a batch that leaves at
5000 lines or every 0.5 s → aiohttp `POST /write`. Straightforward, not tuned, and it does less
than luxtel: paho acknowledges each message as it arrives (a crash loses what is buffered), a
bad message is printed and dropped (no dead letter), a failed write is printed and the batch
dropped (no retry, no spool), and nothing holds the broker back when it falls behind (aiomqtt's
queue grows without bound). Kept in bench/ as the reference `bench/ingest.py` measures against::

    python bench/baseline_aiomqtt.py --mqtt-url mqtt://127.0.0.1:1883 \\
        --influx-url http://127.0.0.1:8086 --database lighting

Runs until SIGTERM or SIGINT, then writes what it holds and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import aiohttp
import aiomqtt
from pydantic import TypeAdapter, ValidationError

from models import BatchReading, Reading

BATCH_READINGS = TypeAdapter(list[BatchReading])


def to_line(reading: Reading, device_id: str, zone: str) -> str:
    fields = [
        f"lamp_on={'true' if reading.lamp_on else 'false'}",
        f"power_w={reading.power_w}",
        f"energy_wh={reading.energy_wh}",
    ]
    if reading.seq is not None:
        fields.append(f"seq={reading.seq}i")
    if reading.voltage_v is not None:
        fields.append(f"voltage_v={reading.voltage_v}")
    if reading.current_a is not None:
        fields.append(f"current_a={reading.current_a}")
    if reading.power_factor is not None:
        fields.append(f"power_factor={reading.power_factor}")
    if reading.dim_pct is not None:
        fields.append(f"dim_pct={reading.dim_pct}i")
    if reading.driver_temp_c is not None:
        fields.append(f"driver_temp_c={reading.driver_temp_c}")
    if reading.lux is not None:
        fields.append(f"lux={reading.lux}")
    line = f"telemetry,device_id={device_id},zone={zone} {','.join(fields)}"
    if reading.ts is not None:
        line += f" {round(reading.ts.timestamp() * 1000)}"
    return line


class Ingester:
    def __init__(self, session: aiohttp.ClientSession, database: str, batch_size: int) -> None:
        self.session = session
        self.params = {"db": database, "precision": "ms"}
        self.batch_size = batch_size
        self.lines: list[str] = []
        self.lock = asyncio.Lock()

    def handle(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 4:
            return
        _root, zone, sender, kind = parts
        try:
            if kind == "telemetry":
                reading = Reading.model_validate_json(payload)
                self.lines.append(to_line(reading, reading.device_id or sender, zone))
            elif kind == "batch":
                for element in BATCH_READINGS.validate_json(payload):
                    self.lines.append(to_line(element, element.device_id, zone))
        except ValidationError as error:
            print(f"dropped a bad message on {topic}: {error}", file=sys.stderr)

    async def flush(self) -> None:
        async with self.lock:
            if not self.lines:
                return
            body, self.lines = "\n".join(self.lines), []
            try:
                async with self.session.post("/write", params=self.params, data=body) as reply:
                    if reply.status != 204:
                        print(f"write failed: {reply.status} {await reply.text()}", file=sys.stderr)
            except aiohttp.ClientError as error:
                print(f"write failed: {error}", file=sys.stderr)

    async def flush_every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.flush()


async def run(args: argparse.Namespace) -> None:
    host, port = args.mqtt_url.removeprefix("mqtt://").rsplit(":", 1)
    async with aiohttp.ClientSession(base_url=args.influx_url) as session:
        ingester = Ingester(session, args.database, args.batch_size)
        flusher = asyncio.create_task(ingester.flush_every(args.flush_interval))
        try:
            async with aiomqtt.Client(
                host,
                int(port),
                identifier=args.client_id,
                clean_session=not args.persistent,
                timeout=args.mqtt_timeout,
            ) as client:
                await client.subscribe(f"{args.topic_root}/#", qos=1)
                async for message in client.messages:
                    payload = message.payload
                    if not isinstance(payload, bytes):
                        continue
                    ingester.handle(message.topic.value, payload)
                    if len(ingester.lines) >= ingester.batch_size:
                        await ingester.flush()
        finally:
            flusher.cancel()
            await ingester.flush()


async def main_async(args: argparse.Namespace) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await run(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mqtt-url", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--influx-url", default="http://127.0.0.1:8086")
    parser.add_argument("--database", default="lighting")
    parser.add_argument("--topic-root", default="lighting")
    parser.add_argument("--client-id", default="baseline-aiomqtt")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--flush-interval", type=float, default=0.5)
    parser.add_argument(
        "--mqtt-timeout",
        type=float,
        default=10.0,
        help="seconds aiomqtt waits for an answer (its default, 10, is too short for a SUBACK "
        "queued behind a backlog)",
    )
    parser.add_argument(
        "--persistent",
        action="store_true",
        help="a persistent session (bench/backlog.py), instead of a clean one",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
