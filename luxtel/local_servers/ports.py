"""Free loopback ports for servers started by tests and ``luxtel up``."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago.

    The kernel picks it (bind to port 0); the socket is closed before returning, so another
    process may take the port before our server binds it. The servers handle that rare race by
    choosing again when a port they picked themselves turns out to be in use.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
