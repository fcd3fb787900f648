"""An InfluxDB 1.x server of our own, on loopback ports, and tiny HTTP helpers for tests.

The helpers are synchronous (urllib) on purpose: tests and ``luxtel up`` call them between
steps, not on the ingest path.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import ProxyHandler, Request, build_opener

from luxtel.local_servers.ports import free_port
from luxtel.local_servers.process import ServerError, ServerProcess, ServerStartError

__all__ = ["InfluxDBError", "InfluxDBServer", "create_database", "query", "write_points"]

_PROBE_TIMEOUT = 1.0
_REQUEST_TIMEOUT = 30.0
_OPENER = build_opener(ProxyHandler({}))
"""Ignores http_proxy and the like: our servers are on loopback, never behind a proxy."""


class InfluxDBError(ServerError):
    """InfluxDB refused a request; ``status`` is the HTTP status (200 for a failed statement)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"InfluxDB answered {status}: {message}")
        self.status = status
        self.message = message


class InfluxDBServer(ServerProcess):
    """``/usr/bin/influxd -config DATA_DIR/influxdb.conf``, HTTP API on ``host:port``.

    Meta, data and WAL directories are all inside ``data_dir``. Ready once ``GET /ping`` answers
    204. With ``auth_enabled``, the admin user is created on the first start (InfluxDB 1.x allows
    that one unauthenticated statement while no user exists); without ``admin_password`` a random
    one is generated and kept in ``DATA_DIR/admin-password`` for later servers on that directory.
    """

    name: ClassVar[str] = "influxd"
    binary: ClassVar[Path] = Path("/usr/bin/influxd")
    package: ClassVar[str] = "influxdb"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        auth_enabled: bool = False,
        admin_user: str = "admin",
        admin_password: str | None = None,
    ) -> None:
        super().__init__(data_dir, "influxd.log")
        self.host = host
        self.auth_enabled = auth_enabled
        self.admin_user = admin_user
        self._admin_password = admin_password
        self.conf_path = self.data_dir / "influxdb.conf"
        self._auto_port = port is None
        self._port = free_port(host) if port is None else port
        self._rpc_port = free_port(host)

    @property
    def port(self) -> int:
        return self._port

    @property
    def rpc_port(self) -> int:
        """The backup/restore RPC port: chosen once, kept across restarts of this server."""
        return self._rpc_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin_password(self) -> str | None:
        """The admin's password when auth is enabled (generated on first use if not given)."""
        if self.auth_enabled and self._admin_password is None:
            self._admin_password = self._stored_or_new_password()
        return self._admin_password

    @property
    def admin_auth(self) -> tuple[str, str] | None:
        """``(user, password)`` for the helpers below, or None when auth is disabled."""
        password = self.admin_password
        if not self.auth_enabled or password is None:
            return None
        return (self.admin_user, password)

    def config_text(self) -> str:
        """The configuration file's text (InfluxDB 1.6 format), every option commented."""
        d = self.data_dir

        def path(name: str) -> str:
            return json.dumps(str(d / name))

        auth = "true" if self.auth_enabled else "false"
        return f"""\
# Written by luxtel's local_servers.InfluxDBServer; rewritten on every start.

# Never phone home. Upstream InfluxDB 1.x reads reporting-disabled; Debian's build renamed it
# to reporting-enabled. Each build ignores the other's key.
reporting-disabled = true
reporting-enabled = false

# The backup/restore RPC service, on a loopback port of its own (default 8088, shared with the
# machine's own InfluxDB).
bind-address = "{self.host}:{self.rpc_port}"

[meta]
  # Users, databases and retention policies.
  dir = {path("meta")}

[data]
  # The TSM shards.
  dir = {path("data")}
  # The write-ahead log: every acknowledged write is here before /write answers 204.
  wal-dir = {path("wal")}

[monitor]
  # Do not record InfluxDB's own statistics in an _internal database.
  store-enabled = false

[subscriber]
  # No subscriptions (they would forward our writes elsewhere).
  enabled = false

[http]
  # The HTTP API.
  enabled = true
  bind-address = "{self.host}:{self.port}"
  # Require a user and password for every request.
  auth-enabled = {auth}
  # No access log: one line per write request is noise in the log tail.
  log-enabled = false
  # No Unix socket (its default path is the machine's /var/run/influxdb.sock).
  unix-socket-enabled = false

[ifql]
  # The IFQL (early Flux) service stays off; it would listen on all interfaces.
  enabled = false

[logging]
  # No ASCII-art logo in the log.
  suppress-logo = true

[[graphite]]
  # No Graphite listener.
  enabled = false

[[collectd]]
  # No collectd listener.
  enabled = false

[[opentsdb]]
  # No OpenTSDB listener.
  enabled = false

[[udp]]
  # No UDP line-protocol listener.
  enabled = false
"""

    def _write_config(self) -> None:
        self.conf_path.write_text(self.config_text())

    def _command(self) -> list[str]:
        return [str(self.binary), "-config", str(self.conf_path)]

    def _child_env(self) -> dict[str, str]:
        """Our environment without INFLUXDB_* variables, which would override the file."""
        return {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}

    def _is_ready(self) -> bool:
        with _OPENER.open(f"{self.url}/ping", timeout=_PROBE_TIMEOUT) as response:
            status: int = response.status
            return status == 204

    def _after_ready(self) -> None:
        if self.auth_enabled:
            self._ensure_admin()

    def _ensure_admin(self) -> None:
        """Create the admin user unless it exists; fail clearly if its password is wrong."""
        auth = self.admin_auth
        if auth is None:
            return
        try:
            query(self.url, "SHOW USERS", auth=auth)
        except InfluxDBError as exc:
            if "create admin user first" not in exc.message:
                raise ServerStartError(
                    f"{self.url} already has users, and {self.admin_user!r} cannot log in "
                    f"with the password given: {exc.message}"
                ) from exc
            user, password = auth
            query(
                self.url,
                f"CREATE USER {quote_ident(user)} WITH PASSWORD {_quote_string(password)} "
                "WITH ALL PRIVILEGES",
            )

    def _stored_or_new_password(self) -> str:
        stored = self.data_dir / "admin-password"
        if stored.exists():
            return stored.read_text().strip()
        password = secrets.token_urlsafe(18)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        stored.touch(mode=0o600)
        stored.write_text(password + "\n")
        return password

    def _choose_new_ports(self) -> bool:
        if self._auto_port:
            self._port = free_port(self.host)
        self._rpc_port = free_port(self.host)
        return True


def query(
    url: str,
    q: str,
    db: str | None = None,
    auth: tuple[str, str] | None = None,
    *,
    epoch: str | None = None,
) -> dict[str, Any]:
    """Run InfluxQL ``q`` (POST /query) and return the parsed JSON answer.

    ``epoch`` ("ms", "s", …) asks for integer timestamps instead of RFC 3339 strings.
    Raises InfluxDBError if the request or any statement failed.
    """
    params = {"q": q}
    if db is not None:
        params["db"] = db
    if epoch is not None:
        params["epoch"] = epoch
    body = _request(url, "/query", urlencode(params).encode(), auth)
    answer: dict[str, Any] = json.loads(body)
    errors = [r["error"] for r in answer.get("results", []) if "error" in r]
    if errors:
        raise InfluxDBError(200, "; ".join(errors))
    return answer


def create_database(url: str, name: str, auth: tuple[str, str] | None = None) -> None:
    """``CREATE DATABASE name`` (a no-op if it exists)."""
    query(url, f"CREATE DATABASE {quote_ident(name)}", auth=auth)


def write_points(
    url: str,
    db: str,
    lines: str | Iterable[str],
    precision: str = "ms",
    auth: tuple[str, str] | None = None,
) -> None:
    """POST line protocol to ``/write``; raises InfluxDBError unless InfluxDB answers 204."""
    text = lines if isinstance(lines, str) else "\n".join(lines)
    path = "/write?" + urlencode({"db": db, "precision": precision})
    _request(url, path, text.encode(), auth)


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _request(url: str, path: str, body: bytes, auth: tuple[str, str] | None) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url!r}")
    request = Request(url.rstrip("/") + path, data=body, method="POST")  # noqa: S310
    if path.startswith("/query"):
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with _OPENER.open(request, timeout=_REQUEST_TIMEOUT) as response:
            data: bytes = response.read()
            return data
    except HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace").strip()
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("error", detail)
        raise InfluxDBError(exc.code, detail) from None
