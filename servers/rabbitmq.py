"""A RabbitMQ node of our own with its MQTT plugin, on loopback ports, for the interop tests.

The Debian package's `rabbitmq-server` is started as a process of ours, never the machine's
service: its own node name, its own Erlang port mapper (epmd, started beside it on a port of
its own, in the same process group, so it ends with the node), its own distribution port, its
database, logs and Erlang cookie (`HOME`) in the data directory. `rabbitmq_mqtt` is enabled by
the `enabled_plugins` file; the MQTT and AMQP listeners are on free loopback ports. Anonymous MQTT
clients connect as the default user, allowed from anywhere (`loopback_users = none`).

Startup takes 5-15 s (an Erlang VM booting ~100 applications): tests share one node per session.
RabbitMQ's MQTT plugin (3.10) speaks MQTT 3.1.1 only, maps '.' in topics to '/' (and back), and
sends a subscriber at most `mqtt.prefetch` (default 10) unacknowledged messages.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import ClassVar

from luxtel.local_servers.mosquitto import connect_probe
from luxtel.local_servers.ports import free_port
from luxtel.local_servers.process import ServerProcess

__all__ = ["RabbitMQServer"]

EPMD = Path("/usr/bin/epmd")


class RabbitMQServer(ServerProcess):
    """``rabbitmq-server`` as node ``luxtel-test-<port>@localhost``, data in ``data_dir``.

    Ready once the MQTT listener answers a CONNECT with a CONNACK (the plugin starts last).
    `prefetch` is the plugin's `mqtt.prefetch`: unacknowledged messages per subscriber.
    """

    name: ClassVar[str] = "rabbitmq"
    binary: ClassVar[Path] = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    package: ClassVar[str] = "rabbitmq-server"

    def __init__(
        self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1", prefetch: int = 10
    ) -> None:
        super().__init__(data_dir, "rabbitmq.log")
        self.host = host
        self.prefetch = prefetch
        self._auto_port = port is None
        self._port = free_port(host) if port is None else port
        self._choose_other_ports()

    def _choose_other_ports(self) -> None:
        self.amqp_port = free_port(self.host)
        self.dist_port = free_port(self.host)
        self.epmd_port = free_port(self.host)

    @property
    def port(self) -> int:
        """The MQTT listener's port."""
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def node_name(self) -> str:
        return f"luxtel-test-{self.port}@localhost"

    def config_text(self) -> str:
        return f"""\
# Written by luxtel's servers.RabbitMQServer; rewritten on every start.
# AMQP on loopback only (nothing uses it but RabbitMQ itself needs a listener).
listeners.tcp.1 = {self.host}:{self.amqp_port}
# The MQTT plugin's listener, on loopback only.
mqtt.listeners.tcp.1 = {self.host}:{self.port}
# Anonymous MQTT clients log in as the default user (guest)...
mqtt.allow_anonymous = true
# ... which may then connect from any address, not only from localhost.
loopback_users = none
# Unacknowledged messages the plugin sends one subscriber (the plugin's default is 10).
mqtt.prefetch = {self.prefetch}
# Log to stdout, which goes to rabbitmq.log in the data directory (so failures show its tail).
log.file = false
log.console = true
log.console.level = info
"""

    def _write_config(self) -> None:
        (self.data_dir / "home").mkdir(exist_ok=True)
        (self.data_dir / "rabbitmq.conf").write_text(self.config_text())
        (self.data_dir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")

    def _child_env(self) -> dict[str, str]:
        data = self.data_dir
        return {
            **os.environ,
            "HOME": str(data / "home"),  # the Erlang cookie is made here
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_CONFIG_FILE": str(data / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(data / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(data / "mnesia"),
            "RABBITMQ_LOG_BASE": str(data / "log"),
            "RABBITMQ_PID_FILE": str(data / "rabbitmq.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(data / "rabbitmq-env.conf"),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def _command(self) -> list[str]:
        # epmd in the foreground beside the node, in its process group: stop() ends both.
        script = f'{EPMD} -port {self.epmd_port} & exec "{self.binary}"'
        return ["/bin/sh", "-c", script]

    def _is_ready(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
            return connect_probe(sock, "luxtel-ready-probe")

    def _choose_new_ports(self) -> bool:
        if not self._auto_port:
            return False
        self._port = free_port(self.host)
        self._choose_other_ports()
        return True
