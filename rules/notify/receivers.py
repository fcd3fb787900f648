"""Receivers: Apprise URLs (e-mail, Slack, Teams, Telegram, ntfy, JSON webhooks…) and the
Prometheus Alertmanager API. Library errors become NotifyError here, marked retryable or not.

Each URL of a receiver is its own outbox item, so a mail server that is down does not make a
Slack channel that took the message receive it twice.
"""

import asyncio
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import apprise
import orjson

from rules.evaluation.alerts import Alert
from rules.language.errors import NotifyError
from rules.notify.dispatch import Notification

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
        if not sender.notify(
            body=message["body"] or message["title"],
            title=message["title"],
            notify_type=message.get("type", "info"),
        ):
            raise NotifyError("the service did not take the notification", retryable=True)

    await asyncio.to_thread(call)


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
    retryable = status == 429 or status >= 500
    raise NotifyError(
        f"Alertmanager at {base_url} answered {status}: {text[:300]}", retryable=retryable
    )
