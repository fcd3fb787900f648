"""The local stack of `luxtel up`: a Mosquitto and an InfluxDB of luxtel's own, as child
processes with their data under the state directory, so a second `luxtel up` continues where the
first stopped. The default ports are used when free, others when they are taken."""

import json
import socket
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from luxtel.local_servers import InfluxDBServer, MosquittoServer, free_port

DEFAULT_MQTT_PORT = 1883
DEFAULT_INFLUX_PORT = 8086


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(preferred: int) -> int:
    return preferred if port_is_free(preferred) else free_port()


@dataclass
class LocalStack:
    """Starts what is not configured elsewhere; `mqtt_url` / `influx_url` given means use it."""

    directory: Path
    mqtt_url: str | None = None
    influx_url: str | None = None
    pids: list[int] = field(default_factory=list)
    _stack: ExitStack = field(default_factory=ExitStack)

    def __enter__(self) -> "LocalStack":
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            if self.mqtt_url is None:
                broker = MosquittoServer(
                    self.directory / "mosquitto", port=choose_port(DEFAULT_MQTT_PORT)
                )
                self._stack.enter_context(broker)
                self.mqtt_url = broker.url
                self.pids.append(broker.pid or 0)
            if self.influx_url is None:
                influx = InfluxDBServer(
                    self.directory / "influxdb", port=choose_port(DEFAULT_INFLUX_PORT)
                )
                self._stack.enter_context(influx)
                self.influx_url = influx.url
                self.pids.append(influx.pid or 0)
        except BaseException:
            self._stack.close()
            raise
        (self.directory / "stack.json").write_text(
            json.dumps(
                {"mqtt_url": self.mqtt_url, "influx_url": self.influx_url, "pids": self.pids}
            )
        )
        return self

    def __exit__(self, *_: object) -> None:
        self._stack.close()
