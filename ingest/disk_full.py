"""A full disk is back-pressure, not a crash.

When the spool or the dead letter cannot be written because the filesystem is full (ENOSPC) or
the user's quota is spent (EDQUOT), the batch is held and retried with backoff: its messages are
not acknowledged, the queues behind it fill, the MQTT source stops reading and the broker keeps
the rest in the session. `DiskFull` says so once in the log and on /metrics
(`luxtel_disk_full{what=…}` is 1 while it lasts), and once more when space has returned.

On stop (SIGTERM) luxtel drains what it holds; a batch held by a full disk cannot be drained, so
`give_up()` makes the next failed try raise `DiskFullError` instead of waiting for space: luxtel
then exits (status 1, one sentence) without acknowledging that batch, and the broker redelivers
its messages to the next run. Nothing is lost either way.
"""

import errno
import time
from collections.abc import Callable

import structlog
from prometheus_client import Gauge

log = structlog.get_logger("luxtel.disk")

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

LOG_INTERVAL_S = 60.0
"""`disk_full` is logged at most this often per `what` (monotonic clock)."""

RETRY_MIN_S = 0.1
RETRY_MAX_S = 5.0
"""Backoff between attempts to write to a full disk: a failed write costs nothing, and space
freed by an operator is used within seconds."""


class DiskFullError(Exception):
    """Stopping, with a batch that a full disk holds: it stays unacknowledged."""


def is_disk_full(error: OSError) -> bool:
    """True when `error` means the filesystem (or the quota) has no room left."""
    return error.errno in DISK_FULL_ERRNOS


class DiskFull:
    """Whether writing `what` (spool, deadletter) is held back by a full disk.

    Near the edge a small write may fit between two that do not, so the state can flap: the
    gauge follows every change, but `disk_full` is logged at most once per `LOG_INTERVAL_S`
    (with how many times it recurred unlogged meanwhile), and `disk_space_returned` only after a
    `disk_full` that was logged. The interval is measured on the monotonic clock, never the
    wall clock."""

    def __init__(
        self, what: str, gauge: Gauge, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.what = what
        self.active = False
        self.giving_up = False
        self._gauge = gauge.labels(what)
        self._gauge.set(0)
        self._clock = clock
        self._logged_at: float | None = None
        self._announced = False
        self._unlogged = 0

    def give_up(self) -> None:
        """luxtel is stopping: from now on a write that finds no space raises."""
        self.giving_up = True

    def hit(self, error: OSError, path: object) -> None:
        """A write failed for lack of space: say so (see the class docstring). Stopping, raise
        `DiskFullError` rather than wait."""
        if self.giving_up:
            raise DiskFullError(
                f"stopped with messages unacknowledged: no space left to write the {self.what} "
                f"under {path} ({error.strerror or error}); the broker redelivers them to the "
                "next run"
            ) from error
        if self.active:
            return
        self.active = True
        self._gauge.set(1)
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < LOG_INTERVAL_S:
            self._unlogged += 1
            return
        log.error(
            "disk_full",
            what=self.what,
            path=str(path),
            error=error.strerror or str(error),
            action="holding the batch and its acknowledgements; retrying until space returns",
            recurred_unlogged=self._unlogged,
        )
        self._logged_at = now
        self._announced = True
        self._unlogged = 0

    def cleared(self) -> None:
        """A write succeeded: if it had been held back, say that it goes on."""
        if not self.active:
            return
        self.active = False
        self._gauge.set(0)
        if self._announced:
            self._announced = False
            log.info("disk_space_returned", what=self.what, action="resuming")
