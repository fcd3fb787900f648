"""The on-disk spool: batches kept safe while InfluxDB cannot take them.

A batch is acknowledged to the broker once it is spooled, so a spooled batch must survive a
`kill -9` or a power cut: each is written to a temporary file, fsynced, renamed into place, and
the directory fsynced. Segments are numbered so that replay is in order. A half-written
temporary file is never a segment: it is removed when the write fails (a full disk: the caller
holds the batch and retries, `ingest.disk_full`) and at start-up.
"""

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from ingest.decode import Point

_SUFFIX = ".spool"
_TMP_SUFFIX = ".tmp"


@dataclass(frozen=True, slots=True)
class Segment:
    """One spooled batch on disk."""

    path: Path
    number: int
    size: int


class SpoolFullError(Exception):
    """The spool is at its size limit: the caller must hold the batch (and its acks) instead."""


class Spool:
    """A directory of fsynced batch segments, oldest first."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob(f"*{_TMP_SUFFIX}"):
            leftover.unlink()
        self._segments = sorted(
            (Segment(path, int(path.stem), path.stat().st_size) for path in self._segment_paths()),
            key=lambda segment: segment.number,
        )
        self._next = self._segments[-1].number + 1 if self._segments else 0
        self.bytes = sum(segment.size for segment in self._segments)

    def _segment_paths(self) -> list[Path]:
        return [path for path in self.directory.glob(f"*{_SUFFIX}") if path.stem.isdigit()]

    def __len__(self) -> int:
        return len(self._segments)

    def append(self, points: list[Point]) -> Segment:
        """Write a batch durably, or raise `SpoolFullError` (at the size limit) or `OSError`
        (ENOSPC when the disk is full: nothing of the batch is left behind). Blocking: run it
        in a thread."""
        data = orjson.dumps([[point.topic, point.line] for point in points])
        if self.bytes + len(data) > self.max_bytes:
            raise SpoolFullError(
                f"spool at {self.bytes} bytes cannot take {len(data)} more (limit {self.max_bytes})"
            )
        number = self._next
        self._next += 1
        final = self.directory / f"{number:012d}{_SUFFIX}"
        temporary = final.with_suffix(_TMP_SUFFIX)
        try:
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.rename(final)
            self._fsync_directory()
        except OSError:
            for leftover in (temporary, final):
                with contextlib.suppress(OSError):
                    leftover.unlink()
            raise
        segment = Segment(final, number, len(data))
        self._segments.append(segment)
        self.bytes += segment.size
        return segment

    def oldest(self) -> Segment | None:
        """The segment to replay next."""
        return self._segments[0] if self._segments else None

    @staticmethod
    def read(segment: Segment) -> list[Point]:
        """The points of a segment."""
        pairs = orjson.loads(segment.path.read_bytes())
        return [Point(line=line, topic=topic) for topic, line in pairs]

    def remove(self, segment: Segment) -> None:
        """Drop a segment once its points are in InfluxDB. A crash before the unlink replays
        it again, which is harmless: the same point written twice is one point."""
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        self._segments = [kept for kept in self._segments if kept.number != segment.number]
        self.bytes -= segment.size

    def _fsync_directory(self) -> None:
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
