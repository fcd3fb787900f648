"""Receivers: Apprise URLs (e-mail, Slack, Teams, Telegram, ntfy, JSON webhooks…) and the
Prometheus Alertmanager API, each an `Integration` (Alertmanager's `notify.Integration`): one
`notify(body)` that answers `(retry, error)`. Library errors become NotifyError here, marked
retryable or not: a 4xx other than 408, 425 and 429 from Alertmanager or from a service behind
an Apprise URL (its status read from what Apprise logged of the send: `rules.notify.apprise_log`),
or
a URL Apprise does not know, is not worth trying again.

Each URL of a receiver is its own outbox item, so a mail server that is down does not make a
Slack channel that took the message receive it twice.
"""

import asyncio
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Protocol

import aiohttp
import apprise
import orjson

from rules.evaluation.alerts import Alert
from rules.language.errors import NotifyError
from rules.notify.apprise_log import refused_for_good, warnings_of
from rules.notify.config import ReceiverSpec
from rules.notify.dispatch import Notification
from rules.runtime.store import OutboxEntry

APPRISE_THREADS = 16
"""Apprise sends at once (each blocks a thread of its own pool, not the event loop's default
executor): so a few slow mail servers hold up neither the other receivers nor anything else."""
_APPRISE_POOL = ThreadPoolExecutor(APPRISE_THREADS, thread_name_prefix="luxtel-apprise")

AM_ENDS_AFTER = timedelta(hours=8)
"""A firing alert sent to Alertmanager ends then unless sent again (a repeat refreshes it):
should luxtel vanish, Alertmanager does not show its alerts firing for ever."""


def apprise_body(note: Notification) -> bytes:
    kind = "failure" if note.firing else "success"
    return orjson.dumps({"title": note.title, "body": note.body, "type": kind})


async def send_apprise(url: str, body: bytes) -> None:
    """Deliver one notification to one Apprise URL."""
    message: dict[str, str] = orjson.loads(body)

    def call() -> None:
        sender = apprise.Apprise()
        if not sender.add(url):
            raise NotifyError(
                "not a valid Apprise URL (see the receiver's apprise list)", retryable=False
            )
        result = sender.notify(
            body=message["body"] or message["title"],
            title=message["title"],
            notify_type=message.get("type", "info"),
        )
        if result:
            return
        warnings = warnings_of(result)
        why = " ".join(warnings)[:300]
        raise NotifyError(
            "the service did not take the notification" + (f": {why}" if why else ""),
            retryable=not refused_for_good(warnings),
        )

    await asyncio.get_running_loop().run_in_executor(_APPRISE_POOL, call)


def alertmanager_alert(alert: Alert, at: datetime) -> dict[str, Any]:
    """An alert in Alertmanager's API v2 form."""
    out: dict[str, Any] = {
        "labels": alert.label_set(),
        "annotations": {"summary": alert.summary, "value": f"{alert.value:g}"},
        "startsAt": (alert.fired_at or alert.active_at).isoformat(),
        "generatorURL": f"luxtel://alerts/{alert.id}",
    }
    if alert.resolved_at is not None:
        out["endsAt"] = alert.resolved_at.isoformat()
    else:
        out["endsAt"] = (at + AM_ENDS_AFTER).isoformat()
    return out


def alertmanager_body(note: Notification) -> bytes:
    alerts = [alertmanager_alert(a, note.at) for a in (*note.firing, *note.resolved)]
    return orjson.dumps(alerts)


async def send_alertmanager(session: aiohttp.ClientSession, base_url: str, body: bytes) -> None:
    """POST the alerts to `{base_url}/api/v2/alerts`."""
    url = base_url.rstrip("/") + "/api/v2/alerts"
    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            text = await response.text(errors="replace")
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise NotifyError(
            f"Alertmanager at {base_url} unreachable: {error}", retryable=True
        ) from None
    if status < 300:
        return
    retryable = status in (408, 425, 429) or status >= 500
    raise NotifyError(
        f"Alertmanager at {base_url} answered {status}: {text[:300]}", retryable=retryable
    )


class Integration(Protocol):
    """One place a notification goes to (Alertmanager's `notify.Integration`)."""

    async def notify(self, body: bytes) -> tuple[bool, NotifyError | None]:
        """Deliver `body`; `(False, None)` when taken, else whether to retry and why not."""
        ...


async def _outcome(send: Awaitable[None]) -> tuple[bool, NotifyError | None]:
    try:
        await send
    except NotifyError as error:
        return error.retryable, error
    return False, None


class AppriseIntegration:
    """One Apprise URL of a receiver."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def notify(self, body: bytes) -> tuple[bool, NotifyError | None]:
        return await _outcome(send_apprise(self.url, body))


class AlertmanagerIntegration:
    """A receiver's Alertmanager (`POST /api/v2/alerts`)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def notify(self, body: bytes) -> tuple[bool, NotifyError | None]:
        return await _outcome(send_alertmanager(self.session, self.base_url, body))


class Unreachable:
    """An entry whose receiver (or URL) is not configured now: retried, as the configuration
    may bring it back, unless `retry` says otherwise."""

    def __init__(self, reason: str, *, retry: bool = True) -> None:
        self.reason = reason
        self.retry = retry

    async def notify(self, body: bytes) -> tuple[bool, NotifyError | None]:
        return self.retry, NotifyError(self.reason, retryable=self.retry)


def integration_for(
    entry: OutboxEntry, receivers: dict[str, ReceiverSpec], session: aiohttp.ClientSession
) -> Integration:
    """The integration a notification entry goes to (InfluxDB entries are the engine's)."""
    receiver = receivers.get(entry.receiver)
    if receiver is None:
        return Unreachable(f"receiver {entry.receiver!r} is no longer configured")
    if entry.kind == "apprise":
        if entry.index >= len(receiver.apprise):
            return Unreachable(f"receiver {entry.receiver!r} has no URL #{entry.index}")
        return AppriseIntegration(receiver.apprise[entry.index])
    if entry.kind == "alertmanager":
        if not receiver.alertmanager:
            return Unreachable(f"receiver {entry.receiver!r} has no Alertmanager now")
        return AlertmanagerIntegration(session, receiver.alertmanager)
    return Unreachable(f"unknown outbox kind {entry.kind!r}", retry=False)


def notification_entries(note: Notification, receiver: ReceiverSpec) -> list[OutboxEntry]:
    """What one notification owes to its receiver: an entry per Apprise URL, one for its
    Alertmanager."""
    entries: list[OutboxEntry] = []
    if receiver.apprise:
        body = apprise_body(note)
        entries += [
            OutboxEntry("apprise", note.receiver, index, body)
            for index in range(len(receiver.apprise))
        ]
    if receiver.alertmanager:
        entries.append(OutboxEntry("alertmanager", note.receiver, 0, alertmanager_body(note)))
    return entries
