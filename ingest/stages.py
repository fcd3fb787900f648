"""The two middle stages: decode messages into points, and gather them into batches.

Each is `async def …(inbox, outbox, …)`, knows nothing of its neighbours, and passes the end
marker `None` on after handing over everything it holds.
"""

import asyncio
import contextlib

from ingest.decode import Decoded, Limits, decode_into
from ingest.messages import Batch, Inbound
from ingest.metrics import IngestMetrics
from ingest.rate_limit import RateLimiter
from models import Handed, Observation
from models.timestamps import epoch_ms


def decode_chunk(
    chunk: list[Inbound],
    limits: Limits,
    metrics: IngestMetrics,
    limiter: RateLimiter | None = None,
    observations: list[Observation] | None = None,
    handed: list[Handed] | None = None,
) -> Batch:
    """Decode a chunk of messages into one batch fragment, and the accepted readings into
    `observations` when given (`handed`, with `limits.hand_over`). A message the broker
    flagged retained is decoded like any other (a broker may wrongly flag queued messages so:
    amqtt), except that its readings and statuses without `ts` are not written again, only
    observed (marked retained) and counted (`luxtel_retained_skipped_total`); those with `ts`
    are written, the same point again."""
    out = Decoded(
        observations=[] if observations is None else observations,
        handed=[] if handed is None else handed,
    )
    deliveries = []
    received_at = None
    received_ms = 0
    for message in chunk:
        if message.delivery is not None:
            deliveries.append(message.delivery)
        if message.received_at is not received_at:  # a chunk shares one, as a rule
            received_at = message.received_at
            received_ms = epoch_ms(received_at)
        decode_into(
            out,
            message.topic,
            message.payload,
            received_at,
            received_ms,
            limits,
            limiter,
            retained=message.retained,
        )
    if out.unknown_fields:
        metrics.unknown_fields.inc(out.unknown_fields)
    if out.retained_skipped:
        metrics.retained_skipped.inc(out.retained_skipped)
    return Batch(out.points, out.dead_letters, deliveries)


async def decode_stage(
    inbox: "asyncio.Queue[list[Inbound] | None]",
    outbox: "asyncio.Queue[Batch | None]",
    limits: Limits,
    metrics: IngestMetrics,
    limiter: RateLimiter | None = None,
) -> None:
    """Messages in, batch fragments out; with `limits.observe` (the rules are on) each fragment
    carries its accepted readings and statuses, which the sink journals for the rules with the
    batch, before acknowledging it."""
    received_depth = metrics.queue_depth.labels("received")
    while (chunk := await inbox.get()) is not None:
        received_depth.set(inbox.qsize())
        seen: list[Observation] | None = [] if limits.observe else None
        handed: list[Handed] | None = [] if limits.hand_over else None
        fragment = decode_chunk(chunk, limits, metrics, limiter, seen, handed)
        if seen:
            fragment.observations = seen
        if handed:
            fragment.handed = handed
        await outbox.put(fragment)
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
    idle_flush_s: float = 0.0,
) -> None:
    """Fragments in, batches out: a batch leaves when it holds `batch_size` points or when its
    first fragment has waited `flush_interval_s`, whichever comes first — or, with
    `idle_flush_s` > 0, as soon as no fragment has come for `idle_flush_s` and none waits.
    Dead letters count towards `batch_size` too, so a flood of rejected messages (each record
    at most `deadletter.payload_kept_bytes` of payload) leaves in batches of bounded size rather
    than piling up for a whole `flush_interval_s`.

    Why the idle flush: acknowledgements leave with the batch, and a broker sends only so many
    unacknowledged messages (RabbitMQ's `mqtt.prefetch`, 10 by default; an MQTT 5 receive
    maximum; Mosquitto's max_inflight_messages under 3.1.1). Once that window is in a batch,
    nothing more arrives until the batch is written: without it, ingest ran at one window per
    `flush_interval_s` (10 readings/s on RabbitMQ). A stream at full speed never pauses that
    long, so its batches stay as large as before. Both times are on the event loop's
    monotonic clock.

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
    last_in = 0.0
    idle_timer: asyncio.TimerHandle | None = None
    idle = False

    def tick() -> None:
        with contextlib.suppress(asyncio.QueueFull):
            inbox.put_nowait(Batch())

    def idle_check() -> None:
        # One timer, moved on lazily: a fragment only notes its time (no timer per fragment).
        nonlocal idle_timer, idle
        quiet_from = last_in + idle_flush_s
        if loop.time() < quiet_from or not inbox.empty():
            idle_timer = loop.call_at(max(quiet_from, loop.time() + idle_flush_s), idle_check)
            return
        idle_timer = None
        idle = True
        tick()

    try:
        while (fragment := await inbox.get()) is not None:
            decoded_depth.set(inbox.qsize())
            if (
                fragment.points
                or fragment.deliveries
                or fragment.dead_letters
                or fragment.observations
                or fragment.handed
            ):
                pending.points.extend(fragment.points)
                pending.dead_letters.extend(fragment.dead_letters)
                pending.deliveries.extend(fragment.deliveries)
                pending.observations.extend(fragment.observations)
                pending.handed.extend(fragment.handed)
                if deadline is None:
                    deadline = loop.time() + flush_interval_s
                    timer = loop.call_at(deadline, tick)
                if idle_flush_s > 0:
                    last_in = loop.time()
                    if idle_timer is None:
                        idle_timer = loop.call_at(last_in + idle_flush_s, idle_check)
            if deadline is not None and (
                len(pending.points) + len(pending.dead_letters) >= batch_size
                or loop.time() >= deadline
                or idle
            ):
                if timer is not None:
                    timer.cancel()
                if idle_timer is not None:
                    idle_timer.cancel()
                await outbox.put(pending)
                batches_depth.set(outbox.qsize())
                pending, deadline, timer = Batch(), None, None
                idle_timer, idle = None, False
        if (
            pending.points
            or pending.deliveries
            or pending.dead_letters
            or pending.observations
            or pending.handed
        ):
            await outbox.put(pending)
        await outbox.put(None)
    finally:
        if timer is not None:
            timer.cancel()
        if idle_timer is not None:
            idle_timer.cancel()
