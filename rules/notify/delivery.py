"""Delivering the outbox's due items to their integrations, concurrently.

Items owed to different places (each Apprise URL of a receiver, a receiver's Alertmanager,
InfluxDB's `alerts` points) are sent at the same time, so one slow mail server delays no other
receiver of the same notification; the items of one place go one after another, in outbox
order, so a resolved notice never overtakes its firing one. Each send is bounded by
`timeout_s` (an Apprise send runs in a thread that cannot be stopped: past the timeout it is
abandoned and the item retried; a late success then repeats the message, at least once).

What an outcome means — sent, retry later, or refused for good — is the caller's to record
(`on_outcome`), as each send ends rather than when all have.
"""

import asyncio
from collections.abc import Callable, Sequence

from rules.language.errors import NotifyError
from rules.notify.receivers import Integration
from rules.runtime.store import OutboxItem

RECEIVER_TIMEOUT_S = 30.0
"""The longest one send may take (monotonic time) before it counts as a retryable failure."""

Outcome = Callable[[OutboxItem, bool, NotifyError | None], None]
"""Called with an item, whether to retry it, and the error (None: delivered)."""


async def deliver(
    items: Sequence[OutboxItem],
    integration: Callable[[OutboxItem], Integration],
    on_outcome: Outcome,
    timeout_s: float = RECEIVER_TIMEOUT_S,
) -> None:
    """Send `items`: each place's in order, the places concurrently."""
    places: dict[tuple[str, str, int], list[OutboxItem]] = {}
    for item in items:
        entry = item.entry
        places.setdefault((entry.kind, entry.receiver, entry.index), []).append(item)

    async def send_in_order(queue: list[OutboxItem]) -> None:
        for item in queue:
            retry, error = await _notify(integration(item), item.body, timeout_s)
            on_outcome(item, retry, error)

    async with asyncio.TaskGroup() as group:
        for (kind, receiver, index), queue in places.items():
            group.create_task(send_in_order(queue), name=f"deliver-{kind}-{receiver}#{index}")


async def _notify(
    target: Integration, body: bytes, timeout_s: float
) -> tuple[bool, NotifyError | None]:
    try:
        async with asyncio.timeout(timeout_s):
            return await target.notify(body)
    except TimeoutError:
        return True, NotifyError(f"no answer within {timeout_s:g} s", retryable=True)
