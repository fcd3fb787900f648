"""The journal: the durable, bounded hand-over of observations from ingest to the rules. This
module holds its format (positions, records, segment files); `rules.runtime.journal_writer` is the
side
of `luxtel run`, `rules.runtime.journal_reader` the side of the rules process.

    journal = JournalWriter(state_dir / "journal", max_bytes, registry)  # in `luxtel run`
    journaled = await journal.admit(batch.handed)  # the sink: waits for room, then appends
    ...  # the sink writes the batch to InfluxDB meanwhile
    await journaled  # written and fsynced: the batch may be acknowledged
    ...
    reader = JournalReader(state_dir / "journal", committed)  # in the rules process
    for record in reader.read(until=durable_end): ...

An append-only log of segment files (`{offset:020d}-{seq:020d}.journal`, named by the offset
of their first byte and the sequence number of their first observation). `luxtel run`'s sink
appends one record per batch — the batch's observations, encoded as
`rules.runtime.channel.encode_handed` does (version 2; version 1 is still read) — and fsyncs it
before the batch's messages are acknowledged to the broker, so an acknowledged observation is on
disk. The rules process reads the records at its own pace, up to the end the parent last
reported as durable, and commits its read `Position` in the same SQLite transaction as the alert
state and the outbox (`rules.runtime.store`): after a `kill -9` it goes on from the committed
position, re-evaluating at most what it had not committed (whose effects were not committed
either), so nothing is evaluated twice in effect and nothing acknowledged is skipped. Segments
wholly before the committed position are deleted by the rules process.

Bounded in bytes: when the records not yet committed by the rules and the next one would exceed
`max_bytes`, `append` waits (and says so once in the log) until the rules commit further — the
sink then holds its acknowledgements, the ingest queues fill and the MQTT source pauses: the
broker keeps the rest. Disk use is at most `max_bytes` plus one segment.

A record: a header `<IIdQI>` — body length, CRC-32 of the body and the rest of the header, the
append time (wall clock, Unix seconds: it survives restarts, so the rules' lag in seconds is
comparable across them), the sequence number of its first observation (observations appended
before it, since the journal began) and its observation count — then the body. A record cut
short or failing its CRC at the end of the last segment (a crash during an append, before the
fsync, so before any acknowledgement) is cut off when the writer opens the journal.
"""

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from isal.isal_zlib import crc32

from models import Handed, Observation
from rules.runtime.channel import decode_handed, handed_count, handed_pieces
from rules.runtime.journal_rows import RowsChunk, rows_of

SUFFIX = ".journal"
UNREADABLE_SUFFIX = ".unreadable"
HEADER = struct.Struct("<IIdQI")
"""Body length, CRC-32 (of the body and the rest of the header), appended at, first seq, count."""
MIN_SEGMENT_BYTES = 1 << 20
MAX_SEGMENT_BYTES = 64 << 20
MAX_PIECES = 256
"""A body in more pieces than this (many small entries: statuses, the full path's readings) is
joined first: a piece costs a CRC call and an iovec, a join a copy."""
# The writer's CRC-32 is ISA-L's (`isal`), the same CRC as zlib's: zlib 1.2.13 took ~0.08 µs an
# observation (3 GB/s here), ISA-L ~0.005 (45 GB/s), so `luxtel run` frames a batch's record
# on its event loop (~25 µs for 5,000 observations) rather than in a thread; the reader checks
# with the same call.
MAX_RECORD_BYTES = 1 << 30
"""Far above any real record (a batch of 100,000 observations is ~50 MB): a larger length is
a corrupt header."""


class JournalError(Exception):
    """A journal record that cannot be read (the segment is set aside, never deleted)."""


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the journal: `offset`, bytes since its beginning (the end of the last record
    consumed), and `seq`, observations before it."""

    offset: int = 0
    seq: int = 0

    def encode(self) -> str:
        return f"{self.offset}:{self.seq}"

    @classmethod
    def parse(cls, text: str) -> "Position":
        offset, _, seq = text.partition(":")
        return cls(int(offset), int(seq))


START = Position()


class Chunk(list[Observation]):
    """Observations of one journal record, with the position after it and the record's size in
    bytes: what the rules process puts in the engine's inbox (`rules.runtime.engine` commits
    `position` with the state), when the record is not read as columns
    (`rules.runtime.journal_rows.RowsChunk`)."""

    __slots__ = ("position", "size")

    def __init__(self, observations: list[Observation], position: Position, size: int = 0) -> None:
        super().__init__(observations)
        self.position = position
        self.size = size


@dataclass(frozen=True, slots=True)
class Record:
    start: int
    end: Position
    appended_at: float
    count: int
    body: bytes

    @property
    def size(self) -> int:
        """The record's bytes in the journal."""
        return self.end.offset - self.start

    def observations(self) -> Chunk:
        return Chunk(decode_handed(self.body), self.end, self.size)

    def chunk(self) -> "Chunk | RowsChunk":
        """The record's observations as the rules process takes them: as columns
        (`rules.runtime.journal_rows`), or, a record the C module does not take, as
        `observations()`."""
        rows = rows_of(self.body)
        if rows is None:
            return self.observations()
        rows.position, rows.size = self.end, self.size
        return rows


@dataclass(frozen=True, slots=True)
class Body:
    """A record's encoded observations and their CRC-32, before the record is framed: `data`,
    the body, or its pieces in order (`rules.runtime.channel.handed_pieces`), which the writer
    writes as they are."""

    data: bytes | Sequence[bytes | bytearray]
    crc: int
    count: int

    @classmethod
    def of(cls, observations: Sequence[Handed], count: int | None = None) -> "Body":
        """`count`: `handed_count(observations)`, when known."""
        pieces = handed_pieces(observations)
        if len(pieces) > MAX_PIECES:
            pieces = [b"".join(pieces)]
        crc = 0
        for piece in pieces:
            crc = crc32(piece, crc)
        if count is None:
            count = handed_count(observations)
        return cls(pieces, crc, count)

    @property
    def pieces(self) -> Sequence[bytes | bytearray]:
        return (self.data,) if isinstance(self.data, bytes) else self.data

    @property
    def size(self) -> int:
        """The body's length in bytes."""
        return len(self.data) if isinstance(self.data, bytes) else sum(map(len, self.data))

    def header(self, seq: int, appended_at: float) -> bytes:
        """The record's header (the body follows it). Its CRC is the body's followed by the
        rest of the header's, so the header is framed when the record is written."""
        size = self.size
        rest = HEADER.pack(size, 0, appended_at, seq, self.count)[8:]
        return struct.pack("<II", size, crc32(rest, self.crc)) + rest

    def record(self, seq: int, appended_at: float) -> bytes:
        """The record: the header, then the body, joined (the writer writes the pieces)."""
        return b"".join((self.header(seq, appended_at), *self.pieces))


def encode_record(observations: Sequence[Handed], seq: int, appended_at: float) -> bytes:
    return Body.of(observations).record(seq, appended_at)


def segment_name(start: Position) -> str:
    return f"{start.offset:020d}-{start.seq:020d}{SUFFIX}"


def segment_paths(directory: Path) -> list[tuple[Position, Path]]:
    """The segments, oldest first, as (position of their first byte, path)."""
    found = []
    for path in directory.glob(f"*{SUFFIX}"):
        offset, _, seq = path.stem.partition("-")
        if offset.isdigit() and seq.isdigit():
            found.append((Position(int(offset), int(seq)), path))
    return sorted(found)


def read_record(handle: BinaryIO, start: int) -> Record | None:
    """The record at the handle's position (`start` in the journal), None when the segment ends
    there or holds only part of one; JournalError when it is complete but corrupt."""
    header = handle.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    length, crc, appended_at, seq, count = HEADER.unpack(header)
    if length > MAX_RECORD_BYTES:
        raise JournalError(f"record at offset {start} claims {length} bytes")
    body = handle.read(length)
    if len(body) < length:
        return None
    if crc32(header[8:], crc32(body)) != crc:
        raise JournalError(f"record at offset {start} fails its CRC")
    end = start + HEADER.size + length
    return Record(start, Position(end, seq + count), appended_at, count, body)


def fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
