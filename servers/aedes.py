"""An aedes broker (Node.js, npm) of our own, on a loopback port, for the interop tests.

aedes speaks MQTT 3.1.1 only and keeps sessions in memory (they last as long as the process).
It is the broker that forwards a QoS 2 publication at QoS 2 even to a QoS 1 subscription,
which luxtel must accept (issue 13). `scripts/setup` installs it into `servers/aedes/node_modules`
(`npm ci`, at the versions of `servers/aedes/package-lock.json`).
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import ClassVar

from luxtel.local_servers.mosquitto import connect_probe
from luxtel.local_servers.ports import free_port
from luxtel.local_servers.process import ServerProcess, ServerStartError

__all__ = ["AedesServer"]

PACKAGE_DIR = Path(__file__).resolve().parent / "aedes"
"""`broker.js`, its package.json and lock file, and node_modules once installed."""


class AedesServer(ServerProcess):
    """``node servers/aedes/broker.js HOST PORT``; ready once it answers a CONNECT."""

    name: ClassVar[str] = "aedes"
    binary: ClassVar[Path] = Path(shutil.which("node") or "/usr/bin/node")
    package: ClassVar[str] = "nodejs"

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(data_dir, "aedes.log")
        self.host = host
        self._auto_port = port is None
        self._port = free_port(host) if port is None else port

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _write_config(self) -> None:
        if not (PACKAGE_DIR / "node_modules" / "aedes").is_dir():
            raise ServerStartError(
                f"aedes is not installed in {PACKAGE_DIR / 'node_modules'}: run scripts/setup "
                f"(npm ci --prefix {PACKAGE_DIR})"
            )

    def _command(self) -> list[str]:
        return [str(self.binary), str(PACKAGE_DIR / "broker.js"), self.host, str(self.port)]

    def _is_ready(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
            return connect_probe(sock, "luxtel-ready-probe")

    def _choose_new_ports(self) -> bool:
        if not self._auto_port:
            return False
        self._port = free_port(self.host)
        return True
