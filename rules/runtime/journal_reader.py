"""The rules process's side of the journal (`rules.runtime.journal`): records from the committed
position on, up to the end the parent reports durable; corrupt segments and undecodable records
set aside; segments the rules have committed past deleted.
"""

import contextlib
import itertools
from pathlib import Path

import structlog

from rules.runtime.journal import (
    UNREADABLE_SUFFIX,
    Chunk,
    JournalError,
    Position,
    Record,
    read_record,
    segment_paths,
)
from rules.runtime.journal_rows import RowsChunk

log = structlog.get_logger("luxtel.rules")


class JournalReader:
    """The rules process's side: records from a position on, and the removal of segments the
    rules have committed past. Reads run in the rules process's event loop (the records are in
    the page cache, just written)."""

    def __init__(self, directory: Path, position: Position) -> None:
        self.directory = directory
        self.position = position
        self._checked = False

    def read(self, until: int, max_bytes: int = 8 << 20) -> list[Record]:
        """Complete records from `position` up to `until` (the end the writer has fsynced),
        about `max_bytes` of them at most; advances `position`. A record that cannot be read
        sets its segment aside (renamed `.corrupt`, logged) and reading goes on at the next."""
        records: list[Record] = []
        taken = 0
        while self.has_more(until) and taken < max_bytes:
            segments = segment_paths(self.directory)
            index = self._segment_of(segments)
            if index is None:
                break
            start, path = segments[index]
            following = segments[index + 1][0] if index + 1 < len(segments) else None
            try:
                got = self._read_segment(path, start, until, max_bytes - taken)
            except (JournalError, OSError) as error:
                self._set_aside(path, following, error)
                continue
            if not got:
                if following is not None and following.offset <= until:
                    self.position = following  # the rest of this one is not a record
                    continue
                break
            records += got
            taken += sum(r.end.offset - r.start for r in got)
        return records

    def _read_segment(self, path: Path, start: Position, until: int, budget: int) -> list[Record]:
        records: list[Record] = []
        with path.open("rb") as handle:
            handle.seek(self.position.offset - start.offset)
            taken = 0
            while self.position.offset < until and taken < budget:
                record = read_record(handle, self.position.offset)
                if record is None or record.end.offset > until:
                    break
                records.append(record)
                taken += record.end.offset - record.start
                self.position = record.end
        return records

    def has_more(self, until: int) -> bool:
        """Whether records lie between `position` and `until`, the durable end (the first call
        also checks the position against the journal: see `_check`)."""
        if not self._checked:
            self._check(segment_paths(self.directory), until)
        return self.position.offset < until

    def _check(self, segments: list[tuple[Position, Path]], until: int) -> None:
        """A position outside the journal (it was removed while the rules' state was kept):
        start again at its beginning."""
        self._checked = True
        if not segments:
            return
        first = segments[0][0]
        if first.offset <= self.position.offset <= until:
            return
        log.warning(
            "rules_journal_position_reset",
            committed=self.position.encode(),
            journal_start=first.encode(),
            journal_end=until,
            action="reading from the start of the journal",
        )
        self.position = first

    def _segment_of(self, segments: list[tuple[Position, Path]]) -> int | None:
        found = None
        for index, (start, _) in enumerate(segments):
            if start.offset <= self.position.offset:
                found = index
        return found

    def _set_aside(self, path: Path, following: Position | None, error: Exception) -> None:
        target = path.with_suffix(".corrupt")
        with contextlib.suppress(OSError):
            path.rename(target)
        log.error(
            "rules_journal_unreadable",
            path=str(target),
            error=str(error),
            action="set aside; reading goes on at the next segment",
        )
        if following is None:
            raise JournalError(f"{path}: {error} (the last segment)") from error
        self.position = following

    def decode(self, record: Record) -> Chunk | RowsChunk:
        """The record's observations; a record whose CRC holds but whose body this version
        cannot decode (written by another version, say) is set aside in a file of its own
        (`{offset}.unreadable`, logged) and stands for no observations, so it is not tried
        again forever."""
        try:
            return record.chunk()
        except Exception as error:  # whatever the body holds
            path = self.directory / f"{record.start:020d}{UNREADABLE_SUFFIX}"
            with contextlib.suppress(OSError):
                path.write_bytes(record.body)
            log.error(
                "rules_journal_record_unreadable",
                path=str(path),
                observations=record.count,
                error=f"{type(error).__name__}: {error}",
                action="set aside; the rules go on after it",
            )
            return Chunk([], record.end)

    def forget_before(self, committed: Position) -> int:
        """Delete the segments that end at or before `committed` (never the last one);
        returns how many."""
        segments = segment_paths(self.directory)
        removed = 0
        for (_, path), (following, _) in itertools.pairwise(segments):
            if following.offset > committed.offset:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed += 1
        return removed
