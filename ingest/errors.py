"""luxtel's ingest errors, converted from library errors at the boundary that meets them.

IngestError
├── InfluxError
│   ├── InfluxUnavailableError       retry, then spool (connection refused, timeout, 5xx, 429)
│   ├── InfluxRejectedError          the batch's content: split it, dead-letter the culprits
│   └── FatalInfluxError             retrying cannot help: stop with a clear sentence
│       ├── InfluxAuthError          401/403
│       └── InfluxDatabaseMissingError
└── MqttError
    └── MqttConnectError             refused by the broker (bad credentials, not authorised)
"""


class IngestError(Exception):
    """Anything the ingest path raises on purpose."""


class InfluxError(IngestError):
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


class MqttError(IngestError):
    """The broker connection failed."""


class MqttConnectError(MqttError):
    """The broker refused the connection for a reason retrying will not fix."""
