"""The journal between ingest and the rules (`rules.runtime.journal`, `.journal_writer`,
`.journal_reader`), on a real directory: records read back exactly as appended, in order and
once, across segments, restarts and any read sizes; a torn last record is cut off; a corrupt
segment is set aside; consumed segments are deleted; a full journal makes `append` wait until
the rules commit further; the lag is measured."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from models import Observation
from rules.runtime import worker
from rules.runtime.channel import Kind, encode_held, encode_position, frame
from rules.runtime.journal import START, Body, Chunk, Position, segment_name, segment_paths
from rules.runtime.journal_reader import JournalReader
from rules.runtime.journal_writer import JournalWriter, Told
from rules.runtime.store import Store
from tests.rules_fixtures import reading


def chunk(n: int, first: int = 0) -> list[Observation]:
    return [reading(f"d{first + i}", float(i), power_w=float(first + i)) for i in range(n)]


def append_all(journal: JournalWriter, chunks: list[list[Observation]]) -> None:
    async def main() -> None:
        for observations in chunks:
            await journal.append(observations)

    asyncio.run(main())


def read_all(directory: Path, position: Position, until: int, budget: int = 8 << 20) -> list[Chunk]:
    reader = JournalReader(directory, position)
    out: list[Chunk] = []
    while True:
        records = reader.read(until, budget)
        if not records:
            return out
        out += [record.observations() for record in records]


def test_records_read_back_as_appended_with_their_positions(tmp_path: Path) -> None:
    journal = JournalWriter(tmp_path, 64 << 20, CollectorRegistry())
    chunks = [chunk(3), chunk(1, 3), chunk(5, 4)]
    append_all(journal, chunks)
    got = read_all(tmp_path, START, journal.end.offset)
    assert [list(c) for c in got] == chunks
    assert [c.position.seq for c in got] == [3, 4, 9]
    assert got[-1].position == journal.end
    # From a position in the middle: the rest only.
    assert [list(c) for c in read_all(tmp_path, got[0].position, journal.end.offset)] == chunks[1:]


def test_a_reader_stops_at_the_durable_end_it_is_given(tmp_path: Path) -> None:
    journal = JournalWriter(tmp_path, 64 << 20)
    append_all(journal, [chunk(2)])
    durable = journal.end.offset
    append_all(journal, [chunk(2, 2)])
    assert [list(c) for c in read_all(tmp_path, START, durable)] == [chunk(2)]


def test_segments_rotate_and_the_committed_ones_are_deleted(tmp_path: Path) -> None:
    journal = JournalWriter(tmp_path, 64 << 20, segment_bytes=2000)
    chunks = [chunk(4, 4 * k) for k in range(30)]
    append_all(journal, chunks)
    segments = segment_paths(tmp_path)
    assert len(segments) > 5
    got = read_all(tmp_path, START, journal.end.offset, budget=3000)
    assert [list(c) for c in got] == chunks
    middle = got[14].position
    reader = JournalReader(tmp_path, middle)
    removed = reader.forget_before(middle)
    left = segment_paths(tmp_path)
    assert removed == len(segments) - len(left) > 0
    assert left[0][0].offset <= middle.offset, "the segment holding the position is kept"
    assert [list(c) for c in read_all(tmp_path, middle, journal.end.offset)] == chunks[15:]
    reader.forget_before(journal.end)
    assert len(segment_paths(tmp_path)) == 1, "the last segment is never deleted"


def test_a_reopened_journal_goes_on_where_it_ended_and_cuts_a_torn_record(
    tmp_path: Path,
) -> None:
    journal = JournalWriter(tmp_path, 64 << 20, segment_bytes=2000)
    append_all(journal, [chunk(4, 4 * k) for k in range(10)])
    end = journal.end
    journal.close()
    last = segment_paths(tmp_path)[-1][1]
    with last.open("ab") as handle:
        handle.write(b"\x40\x00\x00\x00half a record")  # a crash in the middle of an append
    registry = CollectorRegistry()
    again = JournalWriter(tmp_path, 64 << 20, registry, segment_bytes=2000)
    assert again.end == end
    assert registry.get_sample_value("luxtel_rules_lag_observations") == 40
    append_all(again, [chunk(2, 100)])
    got = read_all(tmp_path, START, again.end.offset)
    assert sum(len(c) for c in got) == 42
    assert list(got[-1]) == chunk(2, 100)
    assert got[-1].position.seq == 42


def test_a_corrupt_segment_is_set_aside_and_reading_goes_on(tmp_path: Path) -> None:
    journal = JournalWriter(tmp_path, 64 << 20, segment_bytes=1500)
    chunks = [chunk(4, 4 * k) for k in range(12)]
    append_all(journal, chunks)
    segments = segment_paths(tmp_path)
    second = segments[1][1]
    data = bytearray(second.read_bytes())
    data[40] ^= 0xFF
    second.write_bytes(bytes(data))
    got = read_all(tmp_path, START, journal.end.offset)
    assert second.with_suffix(".corrupt").exists(), "kept for an operator"
    assert not second.exists()
    flat = [o for c in got for o in c]
    lost = {o.device_id for c in chunks for o in c} - {o.device_id for o in flat}
    assert lost, "the corrupt segment's records are not read"
    assert got[-1].position == journal.end


def test_a_position_outside_the_journal_starts_again_at_its_beginning(tmp_path: Path) -> None:
    journal = JournalWriter(tmp_path, 64 << 20)
    append_all(journal, [chunk(3)])
    got = read_all(tmp_path, Position(10**9, 10**6), journal.end.offset)
    assert [list(c) for c in got] == [chunk(3)]


def test_a_full_journal_holds_the_append_until_the_rules_commit(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    journal = JournalWriter(tmp_path, 1 << 20, registry)

    async def main() -> None:
        big = chunk(2000)  # a record of ~400 KB: two fill the journal past its 1 MiB
        while journal.lag_bytes < (1 << 20) - 600_000:
            await journal.append(big)
        held = asyncio.create_task(journal.append(big))
        await asyncio.sleep(0.3)
        assert not held.done(), "the journal is full: the append waits"
        assert registry.get_sample_value("luxtel_rules_journal_full") == 1
        end = journal.end
        journal.consumed(end, Position(1000, 1))
        await asyncio.sleep(0.3)
        assert not held.done(), "committed too little for the record"
        journal.consumed(end, end)
        await asyncio.wait_for(held, 10)
        assert registry.get_sample_value("luxtel_rules_journal_full") == 0
        assert journal.end.seq == end.seq + 2000

    asyncio.run(main())


def test_admission_does_not_wait_for_the_appends_before_and_counts_against_the_bound(
    tmp_path: Path,
) -> None:
    """With room, `admit` returns before anything is written (the sink's write to InfluxDB
    starts then); records admitted but not yet written count against the bound; the appends
    land in the order of admission."""
    journal = JournalWriter(tmp_path, 1 << 20)
    big = chunk(2000)  # ~400 KB

    async def main() -> None:
        first = await journal.admit(big)
        second = await journal.admit(chunk(3, 2000))
        assert not first.done(), "admitted before it is written"
        assert not second.done()
        assert journal.end == START
        await asyncio.gather(first, second)
        third = await journal.admit(big)
        fourth = asyncio.create_task(journal.admit(big))
        await asyncio.sleep(0.3)
        assert not fourth.done(), "the journal and the admitted record leave no room for it"
        await third
        journal.consumed(journal.end, journal.end)
        await (await asyncio.wait_for(fourth, 10))

    asyncio.run(main())
    got = read_all(tmp_path, START, journal.end.offset)
    assert [list(c) for c in got] == [big, chunk(3, 2000), big, big]


def test_while_ingest_is_backlogged_the_end_is_told_once_it_is_not(tmp_path: Path) -> None:
    """`appended` gives the durable end at once when ingest keeps up; while it is backlogged it
    holds the end back (the rules evaluate the burst after it): it says so at once, with the
    end told before and the append time of that end's newest record (at which the rules judge
    silences meanwhile), and gives the latest end, which covers the appends meanwhile, once the
    backlog is over."""
    times = iter(float(t) for t in range(100, 200))
    journal = JournalWriter(tmp_path, 64 << 20, defer_max_s=3600, clock=lambda: next(times))

    async def main() -> None:
        await journal.append(chunk(5))  # appended at 101 (the writer's start was 100)
        first = journal.end
        assert await journal.appended() == Told(first), "not backlogged: at once"
        journal.backlogged(True)
        await journal.append(chunk(5, 5))
        assert await journal.appended() == Told(first, 101.0), "held: the end told before"
        told = asyncio.create_task(journal.appended())
        await journal.append(chunk(5, 10))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not told.done(), "backlogged: held back"
        journal.backlogged(False)
        assert await asyncio.wait_for(told, 10) == Told(journal.end)
        assert journal.end.seq == 15
        again = asyncio.create_task(journal.appended())
        await asyncio.sleep(0)
        assert not again.done(), "the appends held back were told with that end"
        again.cancel()

    asyncio.run(main())


def test_a_hold_before_anything_was_told_judges_silences_at_luxtels_start(tmp_path: Path) -> None:
    """Held before the rules were told any end: the time told is the writer's start (luxtel's
    own start, before which no silence counts), never a later one."""
    times = iter(float(t) for t in range(100, 200))
    journal = JournalWriter(tmp_path, 64 << 20, defer_max_s=3600, clock=lambda: next(times))

    async def main() -> None:
        journal.backlogged(True)
        await journal.append(chunk(5))
        told = await journal.appended()
        assert told.held_at == 100.0
        assert told.end.seq == 0

    asyncio.run(main())


def test_the_rules_judge_silences_at_the_held_ends_time_not_the_wall_clock(tmp_path: Path) -> None:
    """The rules process's side of a hold (`rules.runtime.worker`): caught up with the end it was
    told, it judges silences at the wall clock (contact None) — but while the parent holds records
    back (HELD), at the append time of the newest record told, until an APPENDED ends the hold
    and the held records are read (the held readings are nobody's silence)."""
    times = iter(float(t) for t in range(100, 200))
    journal = JournalWriter(tmp_path, 64 << 20, defer_max_s=3600, clock=lambda: next(times))

    def frame_of(told: Told) -> bytes:
        end = told.end
        if told.held_at is None:
            return frame(Kind.APPENDED, encode_position(end.offset, end.seq))
        return frame(Kind.HELD, encode_held(end.offset, end.seq, told.held_at))

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(1000):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("not reached")

    async def main() -> None:
        channel = asyncio.StreamReader()
        durable, contact = worker._Durable(), worker._Contact()
        inbox: asyncio.Queue[Sequence[Observation] | None] = asyncio.Queue()
        listener = asyncio.create_task(worker._listen(channel, durable))
        reader = JournalReader(tmp_path, START)
        feeder = asyncio.create_task(worker._feed(reader, durable, inbox, listener, contact))
        await journal.append(chunk(5))  # appended at 101
        channel.feed_data(frame_of(await journal.appended()))
        assert len(await inbox.get() or ()) == 5
        await until(lambda: durable.end is not None and not reader.has_more(durable.end))
        await until(lambda: contact() is None)
        journal.backlogged(True)
        await journal.append(chunk(5, 5))  # appended at 102, held
        held = await journal.appended()
        assert held.held_at == 101.0
        channel.feed_data(frame_of(held))
        await until(lambda: durable.held_at is not None)
        await asyncio.sleep(0.05)
        assert contact() == datetime.fromtimestamp(101, UTC), "held: judged at 101"
        assert inbox.empty(), "nothing read past the end told"
        told = asyncio.create_task(journal.appended())
        journal.backlogged(False)
        channel.feed_data(frame_of(await told))
        held_ones = [o.device_id for o in await inbox.get() or ()]
        assert held_ones == [f"d{i}" for i in range(5, 10)]
        await until(lambda: contact() is None)
        channel.feed_eof()
        await asyncio.wait_for(feeder, 10)
        assert await inbox.get() is None

    asyncio.run(main())


def test_the_end_held_back_is_told_after_defer_max_s_or_at_half_the_bound(tmp_path: Path) -> None:
    """Held back no longer than `defer_max_s`; and never once the records the rules have not
    committed reach half the journal's bound (ingest would otherwise stop at the bound while
    the rules wait to be told)."""
    timed = JournalWriter(tmp_path / "timed", 64 << 20, defer_max_s=0.05)
    bounded = JournalWriter(tmp_path / "bounded", 1 << 20, defer_max_s=3600)
    big = chunk(2000)  # a record of ~400 KB

    async def main() -> None:
        timed.backlogged(True)
        await timed.append(chunk(5))
        assert (await timed.appended()).held_at is not None, "held"
        assert await asyncio.wait_for(timed.appended(), 10) == Told(timed.end), "after defer_max_s"
        bounded.backlogged(True)
        await bounded.append(big)
        assert (await bounded.appended()).held_at is not None, "held"
        told = asyncio.create_task(bounded.appended())
        for _ in range(10):
            await asyncio.sleep(0)
        assert not told.done(), "under half the bound: held back"
        await bounded.append(big)
        assert 2 * bounded.lag_bytes >= bounded.max_bytes
        assert await asyncio.wait_for(told, 10) == Told(bounded.end), "half the bound: told"

    asyncio.run(main())


def test_the_lag_follows_what_the_rules_report(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    now = [1000.0]
    journal = JournalWriter(tmp_path, 64 << 20, registry, clock=lambda: now[0])

    def metric(name: str) -> float | None:
        return registry.get_sample_value(name)

    append_all(journal, [chunk(5)])
    first = journal.end
    now[0] = 1010.0
    append_all(journal, [chunk(7, 5)])
    now[0] = 1030.0
    assert metric("luxtel_rules_lag_observations") == 12
    assert metric("luxtel_rules_lag_seconds") == 30.0
    journal.consumed(first, START)
    assert metric("luxtel_rules_lag_observations") == 7
    assert metric("luxtel_rules_lag_seconds") == 20.0
    assert metric("luxtel_rules_evaluated_total") == 5
    journal.consumed(first, START)  # a restarted process reports it again: counted once
    journal.consumed(journal.end, journal.end)
    assert metric("luxtel_rules_evaluated_total") == 12
    assert metric("luxtel_rules_lag_seconds") == 0
    assert metric("luxtel_rules_lag_bytes") == 0
    journal.consumed(Position(10**12, 10**9), Position(10**12, 10**9))  # not this journal's
    assert metric("luxtel_rules_evaluated_total") == 12


def test_the_store_commits_the_position_with_the_state(tmp_path: Path) -> None:
    store = Store(tmp_path / "rules.sqlite")
    assert store.position() == START
    state, groups = store.load()
    store.save(state, state, groups, [], [], datetime.now(UTC), Position(1234, 56))
    store.close()
    assert Store(tmp_path / "rules.sqlite").position() == Position(1234, 56)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(1, 20), min_size=1, max_size=25),
    segment_bytes=st.integers(500, 20_000),
    budget=st.integers(1, 30_000),
    reopen_at=st.integers(0, 25),
)
def test_every_observation_is_read_once_in_order_whatever_the_sizes(
    tmp_path_factory: pytest.TempPathFactory,
    sizes: list[int],
    segment_bytes: int,
    budget: int,
    reopen_at: int,
) -> None:
    directory = tmp_path_factory.mktemp("journal")
    chunks = []
    first = 0
    for size in sizes:
        chunks.append(chunk(size, first))
        first += size
    journal = JournalWriter(directory, 64 << 20, segment_bytes=segment_bytes)
    append_all(journal, chunks[:reopen_at])
    journal.close()
    journal = JournalWriter(directory, 64 << 20, segment_bytes=segment_bytes)
    append_all(journal, chunks[reopen_at:])
    reader = JournalReader(directory, START)
    seen: list[Observation] = []
    while records := reader.read(journal.end.offset, budget):
        for record in records:
            got = record.observations()
            assert got.position.seq == len(seen) + len(got)
            seen += got
        reader.forget_before(reader.position)
    assert seen == [o for c in chunks for o in c]
    assert reader.position == journal.end


def test_an_append_that_fails_is_retried_and_leaves_only_whole_records(tmp_path: Path) -> None:
    """The next segment cannot be created (a directory stands in its way, as a full disk would
    refuse it): the append waits and retries, and once the way is clear it completes."""
    journal = JournalWriter(tmp_path, 64 << 20, segment_bytes=500)  # under a record of 4

    async def main() -> None:
        await journal.append(chunk(4))
        blocker = tmp_path / segment_name(journal.end)
        blocker.mkdir()
        held = asyncio.create_task(journal.append(chunk(4, 4)))
        await asyncio.sleep(1.0)
        assert not held.done(), "the append waits while it cannot write"
        blocker.rmdir()
        await asyncio.wait_for(held, 30)

    asyncio.run(main())
    got = read_all(tmp_path, START, journal.end.offset)
    assert [list(c) for c in got] == [chunk(4), chunk(4, 4)]


def test_a_record_this_version_cannot_decode_is_set_aside_and_skipped(tmp_path: Path) -> None:
    journal = JournalWriter(tmp_path, 64 << 20)
    garbage = b'[["north", "d1"]]'

    async def main() -> None:
        await journal.append(chunk(2))
        await journal.append_encoded(Body(garbage, zlib.crc32(garbage), 1))
        await journal.append(chunk(3, 2))

    asyncio.run(main())
    reader = JournalReader(tmp_path, START)
    got = [reader.decode(record) for record in reader.read(journal.end.offset)]
    assert [list(c) for c in got] == [chunk(2), [], chunk(3, 2)]
    assert [c.position.seq for c in got] == [2, 3, 6], "the skipped record's position counts"
    (kept,) = tmp_path.glob("*.unreadable")
    assert kept.read_bytes() == garbage
