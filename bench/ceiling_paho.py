"""The ceiling: a bare paho-mqtt 2.x subscriber that only counts messages (no parsing, no DB).

What the Python MQTT client alone can take on this machine: any ingester built on it, luxtel
included, is at most this fast. Subscribes `{root}/#` at QoS 1 with a clean session (paho
acknowledges each message on receipt) and keeps every message's receive time (`time.time()`).
Once `--messages` have arrived, or on SIGTERM/SIGINT, it writes those times to `--times`
(float64s, arrival order; written to a temporary name, then renamed) and, on a signal, exits::

    python bench/ceiling_paho.py --url mqtt://127.0.0.1:1883 --messages 100000 --times FILE
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from array import array
from pathlib import Path
from types import FrameType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="mqtt://host:port")
    parser.add_argument("--root", default="lighting", help="subscribes {root}/#")
    parser.add_argument("--client-id", default="bench-ceiling")
    parser.add_argument("--messages", type=int, required=True, help="write the times after these")
    parser.add_argument("--times", type=Path, required=True, help="receive times out (float64)")
    args = parser.parse_args()

    expected: int = args.messages
    times: array[float] = array("d")
    written = False

    def write_times() -> None:
        nonlocal written
        if written:
            return
        written = True
        partial = args.times.with_name(args.times.name + ".part")
        with partial.open("wb") as out:
            times.tofile(out)
        os.replace(partial, args.times)

    def on_connect(client: paho.Client, _u: object, _f: object, code: Any, _p: object) -> None:
        if not code.is_failure:
            client.subscribe(f"{args.root}/#", qos=1)

    def on_message(_c: paho.Client, _u: object, _message: paho.MQTTMessage) -> None:
        times.append(time.time())
        if len(times) == expected:
            write_times()

    host, port = args.url.removeprefix("mqtt://").rsplit(":", 1)
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=args.client_id,
        protocol=MQTTProtocolVersion.MQTTv311,
        clean_session=True,
    )
    client.on_connect = on_connect
    client.on_message = on_message

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        client.disconnect()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    client.connect(host, int(port), keepalive=60)
    client.loop_forever()
    write_times()


if __name__ == "__main__":
    main()
