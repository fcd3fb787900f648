"""InfluxDB over its v1-compatible HTTP API (`POST /write`, `/query`, `/ping`).

InfluxDB 1.x serves this API natively; 2.x and 3.x serve it for compatibility (token auth), so
this one client reaches every generation. Errors are mapped once, here, to what the caller must
do about them: wait and retry, split the batch, or stop.
"""

import base64
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from influx.errors import (
    InfluxAuthError,
    InfluxDatabaseMissingError,
    InfluxRejectedError,
    InfluxUnavailableError,
)


@dataclass(frozen=True, slots=True)
class InfluxTarget:
    """Where and as whom to write. Secrets are plain strings here, unwrapped at the last
    moment by the composition root; `__repr__` hides them."""

    url: str
    database: str
    retention_policy: str | None = None
    token: str | None = None
    username: str | None = None
    password: str | None = None
    timeout_s: float = 10.0

    def __repr__(self) -> str:
        return f"InfluxTarget(url={self.url!r}, database={self.database!r})"


def _quote_identifier(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxWriter:
    """One HTTP session to one InfluxDB; enter it with `async with`."""

    def __init__(self, target: InfluxTarget) -> None:
        self.target = target
        self._session: aiohttp.ClientSession | None = None
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if target.token is not None:
            headers["Authorization"] = f"Token {target.token}"
        elif target.username is not None:
            pair = f"{target.username}:{target.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        self._headers = headers
        self._params = {"db": target.database, "precision": "ms"}
        if target.retention_policy:
            self._params["rp"] = target.retention_policy

    async def __aenter__(self) -> "InfluxWriter":
        self._session = aiohttp.ClientSession(
            base_url=self.target.url.rstrip("/") + "/",
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self.target.timeout_s),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("InfluxWriter used outside `async with`")
        return self._session

    async def write(self, lines: list[str]) -> None:
        """Write points, or raise the error that says what to do next."""
        await self.write_body("\n".join(lines).encode())

    async def write_body(self, body: bytes) -> None:
        """Write points already joined into one line-protocol body (UTF-8, lines separated by
        newlines), as `write` does."""
        await self._request("POST", "write", params=self._params, data=body, what="write")

    async def ping(self) -> bool:
        """Whether InfluxDB answers at all."""
        try:
            async with self.session.get("ping") as response:
                return response.status in (200, 204)
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def create_database(self) -> None:
        """`CREATE DATABASE` (InfluxDB 1.x; idempotent there). On 2.x/3.x the bucket or
        database and its v1 mapping must be made by the operator beforehand."""
        statement = f"CREATE DATABASE {_quote_identifier(self.target.database)}"
        await self._request("POST", "query", params={"q": statement}, data=None, what="query")

    async def query(self, statement: str) -> dict[str, Any]:
        """Run InfluxQL against the database and return the decoded JSON answer."""
        params = {"db": self.target.database, "q": statement, "epoch": "ms"}
        return await self._request("GET", "query", params=params, data=None, what="query")

    async def _request(
        self, method: str, path: str, *, params: dict[str, str], data: bytes | None, what: str
    ) -> dict[str, Any]:
        try:
            async with self.session.request(method, path, params=params, data=data) as response:
                text = await response.text(errors="replace")
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            reason = str(error) or type(error).__name__
            raise InfluxUnavailableError(
                f"InfluxDB at {self.target.url} unreachable: {reason}"
            ) from None
        if status < 300:
            if not text:
                return {}
            answer: dict[str, Any] = orjson.loads(text)
            _raise_statement_errors(answer, self.target.url)
            return answer
        message = _error_message(text)
        if status in (401, 403):
            raise InfluxAuthError(
                f"InfluxDB at {self.target.url} refused the credentials ({status}): {message}"
            )
        if status == 404 and "database not found" in message:
            raise InfluxDatabaseMissingError(
                f"InfluxDB database {self.target.database!r} does not exist: {message}"
            )
        if status == 429 or status >= 500:
            raise InfluxUnavailableError(
                f"InfluxDB at {self.target.url} answered {status} to a {what}: {message}"
            )
        raise InfluxRejectedError(status, message)


def _error_message(text: str) -> str:
    try:
        answer = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text.strip()[:500]
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return str(answer["error"])[:500]
    return text.strip()[:500]


def _raise_statement_errors(answer: dict[str, Any], url: str) -> None:
    for result in answer.get("results", []):
        if isinstance(result, dict) and "error" in result:
            raise InfluxRejectedError(400, f"InfluxDB at {url}: {result['error']}")
