"""The decode and batch stages, without servers: sizes, timing, the end marker, retained."""

import asyncio
from datetime import UTC, datetime, timedelta

from ingest.decode import Limits, Point
from ingest.messages import Batch, Inbound
from ingest.metrics import IngestMetrics
from ingest.stages import batch_stage, decode_chunk, decode_stage
from models import Observation, Reading
from models.timestamps import epoch_ms, from_epoch_ms
from mqtt.acks import Delivery

LIMITS = Limits(topic_root="lighting")
READING = b'{"lamp_on": true, "power_w": 10, "energy_wh": 5, "ts": 1795400000}'
PLAIN = b'{"lamp_on": true, "power_w": 10, "energy_wh": 5}'


def fragment(n: int, start: int = 0) -> Batch:
    return Batch(
        points=[Point(f"m v={i}i", "t") for i in range(start, start + n)],
        deliveries=[Delivery(1, i) for i in range(start, start + n)],
    )


async def collect(inbox: "asyncio.Queue[Batch | None]") -> list[Batch]:
    out: list[Batch] = []
    while (batch := await inbox.get()) is not None:
        out.append(batch)
    return out


def run_batcher(
    fragments: list[Batch | None],
    size: int,
    interval: float,
    gap_s: float = 0.0,
    idle_s: float = 0.0,
) -> list[Batch]:
    async def main() -> list[Batch]:
        inbox: asyncio.Queue[Batch | None] = asyncio.Queue()
        outbox: asyncio.Queue[Batch | None] = asyncio.Queue()
        stage = asyncio.create_task(
            batch_stage(inbox, outbox, size, interval, IngestMetrics(), idle_s)
        )
        for item in fragments:
            await inbox.put(item)
            await asyncio.sleep(gap_s)
        result = await collect(outbox)
        await stage
        return result

    return asyncio.run(main())


def test_batches_leave_when_full_and_the_rest_at_the_end() -> None:
    batches = run_batcher([fragment(3, 0), fragment(3, 3), fragment(3, 6), None], 5, 60)
    assert [len(b) for b in batches] == [6, 3]
    assert [d.position for b in batches for d in b.deliveries] == list(range(9))


def test_batches_leave_when_their_time_is_up() -> None:
    batches = run_batcher([fragment(1, 0), fragment(1, 1), None], 1000, 0.05, gap_s=0.2)
    assert [len(b) for b in batches] == [1, 1]


def test_a_batch_leaves_on_time_with_nothing_after_it() -> None:
    """Its deadline alone sends it: no later fragment, no end marker needed."""

    async def main() -> Batch | None:
        inbox: asyncio.Queue[Batch | None] = asyncio.Queue(4)
        outbox: asyncio.Queue[Batch | None] = asyncio.Queue()
        stage = asyncio.create_task(batch_stage(inbox, outbox, 1000, 0.05, IngestMetrics()))
        await inbox.put(fragment(2))
        try:
            return await asyncio.wait_for(outbox.get(), timeout=5)
        finally:
            stage.cancel()

    sent = asyncio.run(main())
    assert sent is not None
    assert len(sent) == 2


def test_a_batch_leaves_once_nothing_more_arrives() -> None:
    """The broker's window of unacknowledged messages is in the batch: nothing more comes
    until it is written, so it is written without waiting for its 60 s."""

    async def main() -> Batch | None:
        inbox: asyncio.Queue[Batch | None] = asyncio.Queue(4)
        outbox: asyncio.Queue[Batch | None] = asyncio.Queue()
        stage = asyncio.create_task(batch_stage(inbox, outbox, 1000, 60, IngestMetrics(), 0.05))
        await inbox.put(fragment(10))
        try:
            return await asyncio.wait_for(outbox.get(), timeout=10)
        finally:
            stage.cancel()

    sent = asyncio.run(main())
    assert sent is not None
    assert len(sent) == 10


def test_fragments_closer_than_the_idle_time_stay_in_one_batch() -> None:
    fragments: list[Batch | None] = [fragment(2, 2 * i) for i in range(20)]
    batches = run_batcher([*fragments, None], 1000, 60, gap_s=0.001, idle_s=2.0)
    assert [len(b) for b in batches] == [40]


def test_acks_without_points_still_travel() -> None:
    only_acks = Batch(deliveries=[Delivery(1, 0)])
    batches = run_batcher([only_acks, None], 10, 0.01, gap_s=0.05)
    assert [b.deliveries for b in batches] == [[Delivery(1, 0)]]


def test_retained_messages_are_written_when_they_carry_ts_and_counted_when_not() -> None:
    """A retain flag does not prove luxtel has seen the message (amqtt flags a persistent
    session's queued messages so): what carries its own `ts` is written, the same point as
    before; what has none is acknowledged, counted, not written again; bad input is rejected."""
    now = datetime.now(UTC)
    chunk = [
        Inbound("lighting/z/d1/telemetry", READING, True, now, Delivery(1, 0)),
        Inbound("lighting/z/d2/telemetry", READING, False, now, Delivery(1, 1)),
        Inbound("lighting/z/d3/telemetry", b"junk", True, now, None),
        Inbound("lighting/z/d4/telemetry", PLAIN, True, now, Delivery(1, 2)),
        Inbound("lighting/z/d5/status", b'{"online": true}', True, now, Delivery(1, 3)),
    ]
    metrics = IngestMetrics()
    result = decode_chunk(chunk, LIMITS, metrics)
    assert [p.line.split(",")[1] for p in result.points] == ["device_id=d1", "device_id=d2"]
    assert result.points[0].line.endswith(" 1795400000000")
    assert result.deliveries == [Delivery(1, i) for i in range(4)]
    assert [d.topic for d in result.dead_letters] == ["lighting/z/d3/telemetry"]
    assert metrics.retained_skipped._value.get() == 2


def test_accepted_readings_are_observed_and_retained_ones_marked() -> None:
    now = datetime.now(UTC)
    limits = Limits(topic_root="lighting", observe=True)
    chunk = [
        Inbound("lighting/z/d1/telemetry", READING, False, now, Delivery(1, 0)),
        Inbound("lighting/z/d2/status", b'{"online": false}', True, now, Delivery(1, 1)),
        Inbound("lighting/z/d3/telemetry", b"junk", True, now, Delivery(1, 2)),
        Inbound(
            "lighting/z/gw/batch",
            b'[{"device_id": "d4", "lamp_on": false, "power_w": 0, "energy_wh": 1}]',
            False,
            now,
            None,
        ),
    ]
    seen: list[Observation] = []
    result = decode_chunk(chunk, limits, IngestMetrics(), observations=seen)
    assert [(o.device_id, o.retained) for o in seen] == [("d1", False), ("d2", True), ("d4", False)]
    assert isinstance(seen[0].reading, Reading)
    assert seen[0].reading.power_w == 10.0
    assert seen[1].status is not None
    assert seen[1].status.online is False
    assert seen[2].at == from_epoch_ms(epoch_ms(now)), "the time it is stored at (ms)"
    assert result.points[-1].line.endswith(f" {epoch_ms(now)}")
    assert [d.topic for d in result.dead_letters] == ["lighting/z/d3/telemetry"]
    assert len(result.points) == 2


def test_readings_without_ts_stay_unique_per_device_across_chunks() -> None:
    """Two socket reads within one ms, and a clock stepped back between two more: a device's
    stamps keep increasing (the chunks share the limits' memory)."""
    now = datetime(2026, 11, 24, 12, 0, 0, 500, tzinfo=UTC)
    base = epoch_ms(now)
    limits = Limits(topic_root="lighting")
    times = [now, now.replace(microsecond=900), now.replace(microsecond=1000)]
    times.append(times[-1] - timedelta(seconds=2))  # NTP steps the clock back
    stamps = []
    for received_at in times:
        chunk = [Inbound("lighting/z/d1/telemetry", PLAIN, False, received_at, None)] * 2
        stamps += [
            int(p.line.rpartition(" ")[2])
            for p in decode_chunk(chunk, limits, IngestMetrics()).points
        ]
    assert stamps == [base, base + 1, base + 2, base + 3, base + 4, base + 5, base + 6, base + 7]


def test_observations_travel_with_their_batch_to_the_sink() -> None:
    """With the rules on, the decoder puts each chunk's observations in its fragment and the
    batcher keeps them with the batch (in order), even a retained QoS 0 message's, which has
    neither a point nor a delivery; with the rules off there are none."""
    now = datetime.now(UTC)

    def run(limits: Limits) -> list[Batch]:
        async def main() -> list[Batch]:
            received: asyncio.Queue[list[Inbound] | None] = asyncio.Queue()
            decoded: asyncio.Queue[Batch | None] = asyncio.Queue()
            batches: asyncio.Queue[Batch | None] = asyncio.Queue()
            metrics = IngestMetrics()
            stages = [
                asyncio.create_task(decode_stage(received, decoded, limits, metrics)),
                asyncio.create_task(batch_stage(decoded, batches, 1000, 60, metrics)),
            ]
            await received.put(
                [Inbound("lighting/z/d1/telemetry", READING, False, now, Delivery(1, 0))]
            )
            await received.put(
                [Inbound("lighting/z/d2/status", b'{"online": true}', True, now, None)]
            )
            await received.put(None)
            result = await collect(batches)
            await asyncio.gather(*stages)
            return result

        return asyncio.run(main())

    (batch,) = run(Limits(topic_root="lighting", observe=True))
    assert [(o.device_id, o.retained) for o in batch.observations] == [("d1", False), ("d2", True)]
    assert len(batch.points) == 1
    (batch,) = run(LIMITS)
    assert batch.observations == []
