"""The InfluxDB client's errors, converted from aiohttp's and InfluxDB's at the one boundary
that meets them (`influx.client`). Callers decide what each means for them: the ingest sink
retries and spools, the energy reports stop with a sentence.

InfluxError
├── InfluxUnavailableError       retry, then spool (connection refused, timeout, 5xx, 429)
├── InfluxRejectedError          the batch's content: split it, dead-letter the culprits
└── FatalInfluxError             retrying cannot help: stop with a clear sentence
    ├── InfluxAuthError          401/403
    └── InfluxDatabaseMissingError
"""


class InfluxError(Exception):
    """InfluxDB did not take a request."""


class InfluxUnavailableError(InfluxError):
    """InfluxDB cannot be reached or is overloaded: worth retrying later."""


class InfluxRejectedError(InfluxError):
    """InfluxDB refused the request's content (4xx): retrying the same batch will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"InfluxDB rejected the write ({status}): {message}")
        self.status = status
        self.message = message


class FatalInfluxError(InfluxError):
    """A problem only an operator can fix; luxtel stops rather than spool forever."""


class InfluxAuthError(FatalInfluxError):
    """Wrong or missing credentials, or no write permission."""


class InfluxDatabaseMissingError(FatalInfluxError):
    """The database (or the bucket's v1 mapping) does not exist."""
