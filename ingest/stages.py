"""The two middle stages: decode messages into points, and gather them into batches.

Each is `async def …(inbox, outbox, …)`, knows nothing of its neighbours, and passes the end
marker `None` on after handing over everything it holds.
"""

import asyncio
import contextlib
from dataclasses import replace

from ingest.decode import Decoded, Limits, decode, decode_into
from ingest.messages import Batch, Inbound
from ingest.metrics import IngestMetrics
from ingest.rate_limit import RateLimiter
from models import Observation
from models.timestamps import epoch_ms


def decode_chunk(
    chunk: list[Inbound],
    limits: Limits,
    metrics: IngestMetrics,
    limiter: RateLimiter | None = None,
    observations: list[Observation] | None = None,
) -> Batch:
    """Decode a chunk of messages into one batch fragment, and the accepted readings into
    `observations` when given. Retained messages replayed by the broker are not written again
    nor dead-lettered (they are still acknowledged); they are observed, marked retained."""
    out = Decoded(observations=[] if observations is None else observations)
    deliveries = []
    received_at = None
    received_ms = 0
    for message in chunk:
        if message.delivery is not None:
            deliveries.append(message.delivery)
        if message.retained:
            if observations is not None:
                replayed = decode(message.topic, message.payload, message.received_at, limits)
                observations.extend(replace(o, retained=True) for o in replayed.observations)
            metrics.retained_skipped.inc()
            continue
        if message.received_at is not received_at:  # a chunk shares one, as a rule
            received_at = message.received_at
            received_ms = epoch_ms(received_at)
        decode_into(out, message.topic, message.payload, received_at, received_ms, limits, limiter)
    if out.unknown_fields:
        metrics.unknown_fields.inc(out.unknown_fields)
    return Batch(out.points, out.dead_letters, deliveries)


async def decode_stage(
    inbox: "asyncio.Queue[list[Inbound] | None]",
    outbox: "asyncio.Queue[Batch | None]",
    limits: Limits,
    metrics: IngestMetrics,
    limiter: RateLimiter | None = None,
    observers: "asyncio.Queue[list[Observation]] | None" = None,
) -> None:
    """Messages in, batch fragments out; accepted readings to `observers` (the rules) when
    given. The rules never hold ingest back: when their queue is full, the observations are
    counted as dropped (`luxtel_observations_dropped_total`) instead of waited for."""
    received_depth = metrics.queue_depth.labels("received")
    while (chunk := await inbox.get()) is not None:
        received_depth.set(inbox.qsize())
        seen: list[Observation] | None = [] if observers is not None else None
        await outbox.put(decode_chunk(chunk, limits, metrics, limiter, seen))
        if observers is not None and seen:
            try:
                observers.put_nowait(seen)
            except asyncio.QueueFull:
                metrics.observations_dropped.inc(len(seen))
        # Queue.get/put return at once when they need not wait: without this turn, a backlog
        # keeps this loop busy and the sink's writes (and their timeouts) starve behind it.
        # With nothing more waiting, the next get() lets the others run anyway.
        if not inbox.empty():
            await asyncio.sleep(0)
    await outbox.put(None)


async def batch_stage(
    inbox: "asyncio.Queue[Batch | None]",
    outbox: "asyncio.Queue[Batch | None]",
    batch_size: int,
    flush_interval_s: float,
    metrics: IngestMetrics,
) -> None:
    """Fragments in, batches out: a batch leaves when it holds `batch_size` points or when its
    first fragment has waited `flush_interval_s`, whichever comes first. Dead letters count
    towards `batch_size` too, so a flood of rejected messages (each record at most
    `deadletter.payload_kept_bytes` of payload) leaves in batches of bounded size rather than
    piling up for a whole `flush_interval_s`.

    The deadline is kept by a timer that puts an empty fragment in the inbox when it is due
    (a wake-up that adds nothing), so waiting for the next fragment is a plain `get()`: a
    getter task and `asyncio.wait` with a timeout for every fragment cost ~30 µs each here,
    paid per chunk when messages trickle in. When the inbox is full the tick is not needed:
    the next fragment comes at once and the deadline is checked then."""
    loop = asyncio.get_running_loop()
    decoded_depth = metrics.queue_depth.labels("decoded")
    batches_depth = metrics.queue_depth.labels("batches")
    pending = Batch()
    deadline: float | None = None
    timer: asyncio.TimerHandle | None = None

    def tick() -> None:
        with contextlib.suppress(asyncio.QueueFull):
            inbox.put_nowait(Batch())

    try:
        while (fragment := await inbox.get()) is not None:
            decoded_depth.set(inbox.qsize())
            if fragment.points or fragment.deliveries or fragment.dead_letters:
                pending.points.extend(fragment.points)
                pending.dead_letters.extend(fragment.dead_letters)
                pending.deliveries.extend(fragment.deliveries)
                if deadline is None:
                    deadline = loop.time() + flush_interval_s
                    timer = loop.call_at(deadline, tick)
            if deadline is not None and (
                len(pending.points) + len(pending.dead_letters) >= batch_size
                or loop.time() >= deadline
            ):
                if timer is not None:
                    timer.cancel()
                await outbox.put(pending)
                batches_depth.set(outbox.qsize())
                pending, deadline, timer = Batch(), None, None
        if pending.points or pending.deliveries or pending.dead_letters:
            await outbox.put(pending)
        await outbox.put(None)
    finally:
        if timer is not None:
            timer.cancel()
