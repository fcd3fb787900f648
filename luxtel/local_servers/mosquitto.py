"""A Mosquitto broker of our own, on a loopback port, with its state in its data directory."""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path
from typing import ClassVar

from luxtel.local_servers.ports import free_port
from luxtel.local_servers.process import ServerProcess

__all__ = ["MosquittoServer", "connect_probe"]

_PROBE_TIMEOUT = 1.0
_CONNACK = 0x20
_DISCONNECT = b"\xe0\x00"


class MosquittoServer(ServerProcess):
    """``/usr/sbin/mosquitto -c DATA_DIR/mosquitto.conf``, listening on ``host:port``.

    Ready once it answers an MQTT CONNECT with a CONNACK (whatever the return code, so a broker
    that ``extra_conf`` makes require a password counts as ready). Persistent sessions and the
    QoS 1 messages queued for them are saved on SIGTERM and every second or two, and reloaded
    on start.
    """

    name: ClassVar[str] = "mosquitto"
    binary: ClassVar[Path] = Path("/usr/sbin/mosquitto")
    package: ClassVar[str] = "mosquitto"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        extra_conf: str = "",
    ) -> None:
        super().__init__(data_dir, "mosquitto.log")
        self.host = host
        self.extra_conf = extra_conf
        self.conf_path = self.data_dir / "mosquitto.conf"
        self._auto_port = port is None
        self._port = free_port(host) if port is None else port

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def config_text(self) -> str:
        """The configuration file's text, every option commented."""
        text = f"""\
# Written by luxtel's servers.MosquittoServer; rewritten on every start.

# Run as whoever started us. Mosquitto started as root otherwise switches to the user
# "mosquitto", which cannot write to this data directory; as any other user this is a no-op.
user {_user_name()}

# Authentication and access settings apply to all listeners alike.
per_listener_settings false

# The one plain MQTT listener, on loopback only.
listener {self.port} {self.host}

# Clients need no username (extra_conf below may tighten this).
allow_anonymous true

# Keep sessions, subscriptions and queued messages in mosquitto.db here, across restarts.
persistence true
persistence_location {self.data_dir}

# Save that database every second or two (the default is 30 minutes), not only on SIGTERM:
# a test that SIGKILLs the broker loses at most the last two seconds of queued messages.
# Saving rewrites the whole file (via a .new file and a rename), cheap for test-sized queues.
autosave_interval 1

# Queue up to a million QoS 1/2 messages per offline or slow persistent client. The default,
# 1000, silently drops everything after that for an ingester that is down or behind.
max_queued_messages 1000000

# No byte limit on that queue (0 = unlimited, the default, stated so nobody adds one).
max_queued_bytes 0

# No limit on QoS 1/2 messages sent to a client and not yet acknowledged (0 = no maximum;
# the default is 20, and values above 65535 are rejected). Our ingester acknowledges a message
# only after it is written to InfluxDB, so many thousands are legitimately unacknowledged at
# once. MQTT v5 clients are still limited by the receive-maximum they send in CONNECT.
max_inflight_messages 0

# Forget a persistent session whose client has not reconnected for 14 days.
persistent_client_expiration 14d

# Log to the file that also receives the broker's stdout and stderr.
log_dest file {self.log_path}

# What to log: everything but debug, subscribe and unsubscribe messages.
log_type error
log_type warning
log_type notice
log_type information

# Log every client connection and disconnection, with its client id.
connection_messages true

# Readable log timestamps.
log_timestamp_format %Y-%m-%dT%H:%M:%S

# Send small packets at once rather than waiting to fill a segment (Nagle's algorithm).
set_tcp_nodelay true
"""
        if self.extra_conf:
            text += f"\n# extra_conf given by the caller:\n{self.extra_conf.rstrip()}\n"
        return text

    def _write_config(self) -> None:
        self.conf_path.write_text(self.config_text())

    def _command(self) -> list[str]:
        return [str(self.binary), "-c", str(self.conf_path)]

    def _is_ready(self) -> bool:
        probe_host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        with socket.create_connection((probe_host, self.port), timeout=_PROBE_TIMEOUT) as sock:
            return connect_probe(sock, "luxtel-ready-probe")

    def _choose_new_ports(self) -> bool:
        if not self._auto_port:
            return False
        self._port = free_port(self.host)
        return True


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry cannot be root, so the option is ignored
        return "mosquitto"


def connect_probe(sock: socket.socket, client_id: str) -> bool:
    """Whether an MQTT broker on `sock` answers a 3.1.1 CONNECT (clean session, so it leaves
    nothing behind) with a CONNACK, whatever its return code; then DISCONNECT."""
    sock.sendall(_connect_packet(f"{client_id}-{os.getpid()}"))
    reply = b""
    while len(reply) < 4:
        chunk = sock.recv(4 - len(reply))
        if not chunk:
            return False
        reply += chunk
    if reply[0] != _CONNACK:
        return False
    sock.sendall(_DISCONNECT)
    return True


def _connect_packet(client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT packet with a clean session, so the probe leaves nothing behind."""
    cid = client_id.encode()
    variable_header = b"\x00\x04MQTT" + bytes([4, 0x02]) + (60).to_bytes(2, "big")
    payload = len(cid).to_bytes(2, "big") + cid
    remaining = len(variable_header) + len(payload)
    if remaining > 127:
        raise ValueError(f"client id too long for the probe: {client_id!r}")
    return bytes([0x10, remaining]) + variable_header + payload
