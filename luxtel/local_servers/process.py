"""A server run as our own child process: start, wait until ready, stop, kill, log tail.

Exceptions::

    ServerError              a server we manage failed
    ├── ServerStartError     it exited or was not ready in time (the message holds its log tail)
    └── InfluxDBError        an HTTP request to InfluxDB was refused (servers.influxdb)

Each child runs in a session (and process group) of its own: a Ctrl-C in the terminal does not
reach it before we stop it in order, and a SIGKILL of the group leaves nothing behind. Every child
still running when the interpreter exits is stopped by an ``atexit`` handler.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import os
import shlex
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

__all__ = [
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "ServerError",
    "ServerProcess",
    "ServerStartError",
]

DEFAULT_START_TIMEOUT = 30.0
"""Seconds a server gets to become ready; generous because CI machines are small and shared."""

DEFAULT_STOP_TIMEOUT = 30.0
"""Seconds a server gets to exit after SIGTERM before it is killed."""

_POLL_INTERVAL = 0.05
_PORT_ATTEMPTS = 3
_TAIL_BYTES = 256 * 1024


class ServerError(RuntimeError):
    """A server we manage failed."""


class ServerStartError(ServerError):
    """A server exited, or was not ready in time, while starting."""


_live: set[ServerProcess] = set()


@atexit.register
def _stop_all_at_exit() -> None:
    """Stop every child still running, so none outlives the interpreter."""
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop(timeout=5.0)


class ServerProcess(abc.ABC):
    """One server run as a child process, with its configuration and log in ``data_dir``.

    Subclasses write their configuration, give the command line, and say when the server is
    ready. ``start()`` then ``stop()`` may be repeated: the configuration is written again with
    the same ports, so a restarted server finds its data where it left it.
    """

    name: ClassVar[str]
    """Short name used in messages, e.g. ``mosquitto``."""
    binary: ClassVar[Path]
    """The executable this class runs."""
    package: ClassVar[str]
    """The Debian package that installs ``binary``, named in the error when it is missing."""

    def __init__(self, data_dir: Path, log_name: str) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.log_path = self.data_dir / log_name
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_once = False

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """Where clients reach the server."""

    @abc.abstractmethod
    def _write_config(self) -> None:
        """Write the server's configuration file into ``data_dir``."""

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """The command line that runs the server."""

    @abc.abstractmethod
    def _is_ready(self) -> bool:
        """Probe the server once, quickly; an ``OSError`` counts as not ready yet."""

    def _after_ready(self) -> None:  # noqa: B027 (an optional hook)
        """Called once the server is ready, before ``start()`` returns."""

    def _choose_new_ports(self) -> bool:
        """Pick new ports after an "address in use" failure; False if the ports were given."""
        return False

    def _child_env(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def pid(self) -> int | None:
        """The process id of the child started last (None before the first start)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the child started last is still alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> Self:
        """Start the server and wait until it is ready; raise ServerStartError otherwise."""
        if self.running:
            raise ServerError(f"{self!r} is already running")
        if not self.binary.exists():
            raise ServerStartError(
                f"{self.name} is not installed: {self.binary} does not exist. Run the project "
                f"setup, which installs the Debian package {self.package!r} "
                f"(apt-get install {self.package})."
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                self._start_once(timeout)
            except ServerStartError:
                in_use = "address already in use" in self._log_since(log_offset).lower()
                if (
                    in_use
                    and attempt < _PORT_ATTEMPTS
                    and not self._started_once
                    and self._choose_new_ports()
                ):
                    continue
                raise
            break
        self._started_once = True
        return self

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int | None:
        """Send SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; return the exit status.

        SIGTERM lets the server save its state (Mosquitto writes its persistence file). Stopping
        a server that is not running only reaps it.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait()
        _live.discard(self)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the server's process group and reap it, as a crash or power cut would."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal(signal.SIGKILL)
            proc.wait()
        _live.discard(self)

    def restart(self, timeout: float = DEFAULT_START_TIMEOUT) -> Self:
        """Stop (cleanly) and start again on the same ports and data directory."""
        self.stop()
        return self.start(timeout)

    def log_tail(self, n: int = 50) -> str:
        """The last ``n`` lines of the server's log (all of its runs, each headed by a marker)."""
        if not self.log_path.exists():
            return ""
        size = self.log_path.stat().st_size
        text = self._log_since(max(0, size - _TAIL_BYTES))
        return "\n".join(text.splitlines()[-n:])

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid} running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.url} {state}>"

    def _start_once(self, timeout: float) -> None:
        self._write_config()
        command = self._command()
        with self.log_path.open("ab") as log:
            stamp = datetime.now().astimezone().isoformat(timespec="seconds")
            log.write(f"--- luxtel {stamp}: starting {shlex.join(command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=self._child_env(),
                start_new_session=True,
            )
        _live.add(self)
        try:
            self._wait_until_ready(self._proc, timeout)
            self._after_ready()
        except BaseException:
            self.kill()  # also when interrupted: never leave a half-started server behind
            raise

    def _wait_until_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = proc.poll()
            if status is not None:
                raise ServerStartError(self._failure(f"exited with status {status} while starting"))
            with contextlib.suppress(OSError):
                if self._is_ready():
                    return
            if time.monotonic() >= deadline:
                raise ServerStartError(self._failure(f"was not ready after {timeout:g} s"))
            time.sleep(_POLL_INTERVAL)

    def _signal(self, sig: signal.Signals) -> None:
        """Signal the child's process group (its pid: it leads a session of its own)."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")

    def _failure(self, what: str) -> str:
        return (
            f"{self.name} at {self.url} {what}. Last lines of {self.log_path}:\n{self.log_tail(30)}"
        )
