"""Rollup upkeep inside ``luxtel run``: one task that keeps the hourly rollups current.

Why this shape: rebuilding recent hours on a timer re-reads every reading many times (a 12-hour
reach around each hour) at ~5 µs a reading read. Instead each hour is rolled up **once, when it
closes**, and again only when a reading for it is written late. At the close its rollups come
from the **tally** (``energy.tally``: the sums of every open hour, kept as the sink writes the
readings, in the build's own arithmetic) when it vouches for the hour; otherwise — the first
hours after a start, hours touched by readings out of order, replayed or merged, or no tally
(``tally_max_bytes`` too small) — the hour is read back and built (``rollup_store.build``: that
hour plus each device's two neighbouring readings, ~4.5 µs of CPU a reading read,
``bench/README.md``, "Rollup upkeep").

- Every build also rewrites the daily rollups of the civil days it touches (``build_days``);
  hours closed from the tally write those of the days they complete.
- **Closing** (wall clock): hour ``h`` of reading time is closed once the wall clock passes
  ``h + 1 h + settle_s``; the watermark (the first hour not yet closed) is kept in
  ``state_dir/rollups.json``. On the first start it begins ``recent_hours`` back (older hours:
  ``luxtel energy rollup --from … --to …``); after a stop, the hours missed are caught up.
- **A close InfluxDB fails** is kept as what the tally handed over (``energy.closing``: write
  bodies, bounded by ``kept_max_bytes``) and only its steps left are tried again next round;
  the watermark on disk stays before it, so after a restart its hours are read back.
- **Dirty hours** (reading time): the sink calls ``Upkeep.written`` (``DirtyHours.note``, and the
  tally's ``feed``) with the lines it has just written to InfluxDB (after the write, so a
  spooled backlog counts when it is replayed). Hours already closed are rebuilt at the next
  tick, widened to the hours the intervals at the range's edges reach (a late reading changes
  the interval before and after it). The set is bounded
  (``max_bytes``); past it, the hours collapse into one span, rebuilt whole — nothing is lost.
  Kept in memory: after a crash, the last ``recent_hours`` are rebuilt at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from energy.closing import Closing
from energy.counters import MS_PER_H
from energy.inventory import Luminaire
from energy.retention import RetentionConfig, RetentionError, ensure_retention
from energy.rollup import floor_hour
from energy.rollup_store import WRITE_BATCH, Built, RollupConfig, build, latest_reading_ms
from energy.tally import RollupTally
from influx.client import InfluxWriter
from influx.errors import InfluxError

log = structlog.get_logger("luxtel.rollups")

_HOUR_ENTRY_BYTES = 100
"""What one hour costs in the set (a Python int and its slot), for the byte bound."""


class DirtyHours:
    """Hours (reading time) of telemetry written since the last ``take``, bounded in bytes."""

    __slots__ = ("hours", "max_hours", "span")

    def __init__(self, max_bytes: int = 1 << 20) -> None:
        self.max_hours = max(1, max_bytes // _HOUR_ENTRY_BYTES)
        self.hours: set[int] = set()
        self.span: tuple[int, int] | None = None

    def add_hours(self, hours: Iterable[int]) -> None:
        """Hour starts (ms) to rebuild, as if written to."""
        self.hours.update(h // MS_PER_H for h in hours)
        self._bound()

    def note(self, lines: Iterable[str]) -> None:
        """The lines just written; only ``telemetry`` ones count. Each line ends with its
        timestamp in ms (``InfluxWriter`` writes with ``precision=ms``)."""
        hours = self.hours
        hours.update(
            int(text[text.rindex(" ") + 1 :]) // MS_PER_H
            for text in lines
            if text.startswith("telemetry,")
        )
        self._bound()

    def _bound(self) -> None:
        hours = self.hours
        if len(hours) > self.max_hours:
            lo, hi = min(hours), max(hours)
            if self.span is not None:
                lo, hi = min(lo, self.span[0]), max(hi, self.span[1])
            self.span = (lo, hi)
            hours.clear()

    def take(self) -> list[tuple[int, int]]:
        """The hours noted, as merged ``[start_ms, end_ms)`` ranges, and forget them."""
        hours = sorted(self.hours)
        if self.span is not None:
            hours = sorted({*hours, *range(self.span[0], self.span[1] + 1)})
        self.hours, self.span = set(), None
        return ranges(h * MS_PER_H for h in hours)


def ranges(hours: Iterable[int]) -> list[tuple[int, int]]:
    """Hour starts (ms, sorted) merged into ``[start, end)`` ranges."""
    out: list[tuple[int, int]] = []
    for h in hours:
        if out and out[-1][1] == h:
            out[-1] = (out[-1][0], h + MS_PER_H)
        else:
            out.append((h, h + MS_PER_H))
    return out


@dataclass(frozen=True, slots=True)
class UpkeepConfig:
    every_s: float = 300.0
    settle_s: float = 1200.0
    recent_hours: int = 3
    rollups: RollupConfig = field(default_factory=RollupConfig)
    retention: RetentionConfig | None = field(default_factory=RetentionConfig)
    kept_max_bytes: int = 64 << 20
    """What a close the tally handed over may keep while InfluxDB fails it (``energy.closing``:
    an hour of 100,000 luminaires is ~37 MB of write bodies); beyond, hours are read back."""


class Upkeep:
    """``run(stop)`` until ``stop`` is set: retention checked, closed hours rolled up, dirty
    hours rebuilt, every ``every_s``. InfluxDB away: logged, tried again next tick."""

    def __init__(
        self,
        writer: InfluxWriter,
        inventory: Mapping[str, Luminaire],
        state_path: Path,
        config: UpkeepConfig,
        dirty: DirtyHours,
        *,
        clock: Callable[[], float] = time.time,
        tally: RollupTally | None = None,
    ) -> None:
        self.writer = writer
        self.inventory = inventory
        self.state_path = state_path
        self.config = config
        self.dirty = dirty
        self.clock = clock
        self.tally = tally
        self.retention_checked = config.retention is None
        self.cpu_s = 0.0
        self.rows = 0
        self.tallied_rows = 0
        """Of ``rows``, those written from the tally (no read-back)."""
        self.feed_cpu_s = 0.0
        """CPU time (``time.process_time``) spent feeding the tally the sink's lines so far: the
        upkeep's share of ingest, logged with each build (``tally_cpu_s``)."""
        self._pending: list[tuple[int, int]] = []
        """Closed hours to rebuild (dirty hours, and the recent hours after a start)."""
        self._closings: list[Closing] = []
        """Hours closed from the tally whose close InfluxDB has not finished."""
        self._unread: list[tuple[int, int]] = []
        """Closed hours to read back and build (the tally did not vouch for them, or their
        closing was dropped past ``kept_max_bytes``)."""
        self._take_cpu_s = 0.0
        self._prepared = False
        self.started_ms = int(self.clock() * 1000)
        self.watermark = self._load_watermark(self.started_ms)
        self._saved = self.watermark
        """The first hour not closed when created (loaded now, before the sink writes
        anything: the tally takes nothing for the hours before it)."""
        if tally is not None:
            tally.close(self.watermark)

    def written(self, lines: list[str], replayed: bool = False) -> None:
        """The sink's lines, just accepted by InfluxDB (``replayed``: from the spool): fed to
        the tally, which names the closed hours they change (their own, or hours their
        intervals reach back into); without a tally, the lines' own hours are dirty."""
        if self.tally is not None:
            started = time.process_time()
            try:
                reopened = self.tally.feed(lines, replayed)
            except Exception as error:  # the rollups must never stop ingest
                log.error("rollup_tally_failed", error=repr(error), action="reading hours back")
                self.tally = None
            else:
                if reopened:
                    self.dirty.add_hours(reopened)
                return
            finally:
                self.feed_cpu_s += time.process_time() - started
        self.dirty.note(lines)

    def _load_watermark(self, now_ms: int) -> int:
        try:
            return int(json.loads(self.state_path.read_text())["watermark_ms"])
        except (OSError, ValueError, KeyError, TypeError):
            return floor_hour(now_ms) - self.config.recent_hours * MS_PER_H

    @property
    def kept_bytes(self) -> int:
        """Bytes of write bodies kept for closes not finished."""
        return sum(closing.kept_bytes for closing in self._closings)

    def _save_watermark(self, watermark_ms: int) -> None:
        """The watermark on disk: ``watermark_ms``, but never past an hour whose close is not
        written yet (kept in memory only: after a restart it is read back)."""
        starts = [c.start_ms for c in self._closings] + [a for a, _ in self._unread]
        watermark_ms = min([watermark_ms, *starts])
        if watermark_ms == self._saved:
            return
        self._saved = watermark_ms
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"watermark_ms": watermark_ms}))
        os.replace(tmp, self.state_path)

    async def run(self, stop: asyncio.Event) -> None:
        now_ms = self.started_ms
        watermark = self.watermark
        if not self._prepared:
            await self.prepare()
        # After a crash the dirty hours in memory were lost: rebuild the last few.
        recent = floor_hour(now_ms) - self.config.recent_hours * MS_PER_H
        if recent < watermark:
            self._pending.append((recent, watermark))
        while not stop.is_set():
            try:
                watermark = await self.tick(watermark)
            except Exception as error:  # the rollups must never stop ingest
                log.error("rollup_upkeep_error", error=repr(error), action="will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.every_s)

    async def prepare(self) -> None:
        """Before the sink writes anything (``luxtel.pipeline``): tell the tally the latest
        reading InfluxDB holds (only readings that can reach an hour not yet closed count): the
        hours after it it may vouch for, and the devices whose previous reading cannot be in
        InfluxDB. Asked later, a device's first readings written meanwhile would be read back
        (correct, but dear). InfluxDB away: the tally keeps its defaults (the first whole hour
        after start; every device's first reading read back)."""
        self._prepared = True
        if self.tally is None:
            return
        reach = int(self.config.rollups.max_interval_ms)
        try:
            latest = await latest_reading_ms(self.writer, self.watermark - reach)
        except InfluxError as error:
            log.warning("rollup_tally_history_unknown", error=str(error))
            return
        self.tally.history(latest)

    async def tick(self, watermark: int) -> int:
        """One round; returns the new watermark. InfluxDB failing: the work left is kept for the
        next round (hours the tally handed over as their write bodies, ``energy.closing``), and
        the watermark saved stays before hours not written yet."""
        started = time.process_time()
        closed = max(watermark, floor_hour(int((self.clock() - self.config.settle_s) * 1000)))
        self._pending += [r for r in self.dirty.take() if r[0] < watermark]
        try:
            if not self.retention_checked and self.config.retention is not None:
                for statement in await ensure_retention(self.writer, self.config.retention):
                    log.info("retention_set", statement=statement)
                self.retention_checked = True
            # closings first: a dirty hour's rebuild must not be overwritten by an older close
            await self._finish()
            while self._pending:
                a, b = self._pending[0]
                await self._rebuild(a, min(b, watermark), watermark)
                self._pending.pop(0)
            if closed > watermark:
                self._hand_over(watermark, closed)
                watermark = closed
                await self._finish()
            self._save_watermark(watermark)
            return watermark
        except (InfluxError, RetentionError) as error:
            self._bound()
            self._save_watermark(watermark)
            log.warning(
                "rollup_upkeep_failed",
                error=str(error),
                action="will retry",
                kept_bytes=self.kept_bytes,
            )
            return watermark
        finally:
            self.cpu_s += time.process_time() - started

    def _hand_over(self, a: int, b: int) -> None:
        """The hours ``[a, b)`` have just closed: the tally hands over those it vouches for
        (before any await, so nothing fed meanwhile is lost), as closings; the rest are read
        back."""
        tally = self.tally
        if tally is None:
            self._unread.append((a, b))
            return
        started = time.process_time()
        taken = {h: tally.bodies(h, WRITE_BATCH) for h in range(a, b, MS_PER_H) if tally.vouches(h)}
        tally.close(b)
        self._unread += ranges(h for h in range(a, b, MS_PER_H) if h not in taken)
        for lo, hi in ranges(sorted(taken)):
            bodies = [body for h in range(lo, hi, MS_PER_H) for body in taken[h]]
            rows = len(tally.devices) * ((hi - lo) // MS_PER_H)
            self._closings.append(Closing(lo, hi, rows, bodies))
        self._take_cpu_s += time.process_time() - started

    async def _finish(self) -> None:
        """The closings' steps left, then the hours to read back, in order; each forgotten once
        done."""
        while self._closings:
            closing = self._closings[0]
            started = time.process_time()
            days = await closing.finish(self.writer, self.inventory, self.config.rollups)
            self._closings.pop(0)
            self.rows += closing.rows
            self.tallied_rows += closing.rows
            cpu_s = self._take_cpu_s + time.process_time() - started
            self._take_cpu_s = 0.0
            built = Built(rows=closing.rows, days=days)
            self._log_built(closing.start_ms, closing.end_ms, built, cpu_s, how="tally")
        while self._unread:
            await self._build(*self._unread[0])
            self._unread.pop(0)

    def _bound(self) -> None:
        """Past ``kept_max_bytes``, the latest closings are dropped: their hours are read back."""
        while self._closings and self.kept_bytes > self.config.kept_max_bytes:
            dropped = self._closings.pop()
            self._unread.append((dropped.start_ms, dropped.end_ms))
            log.warning(
                "rollup_close_not_kept",
                start_ms=dropped.start_ms,
                end_ms=dropped.end_ms,
                kept_max_bytes=self.config.kept_max_bytes,
                action="reading the hours back",
            )
        self._unread.sort()

    async def _build(self, a: int, b: int) -> None:
        if b > a:
            started = time.process_time()
            built = await build(self.writer, self.inventory, a, b, self.config.rollups)
            self.rows += built.rows
            self._log_built(a, b, built, time.process_time() - started)

    async def _rebuild(self, a: int, b: int, watermark: int) -> None:
        """Rebuild ``[a, b)`` and the closed hours its edge intervals reach."""
        if b <= a:
            return
        started = time.process_time()
        built = await build(self.writer, self.inventory, a, b, self.config.rollups)
        self.rows += built.rows
        self._log_built(a, b, built, time.process_time() - started)
        if built.reach is not None:
            lo, hi = built.reach
            if lo < a:
                await self._build(floor_hour(lo), a)
            if hi >= b:
                await self._build(b, min(floor_hour(hi) + MS_PER_H, watermark))

    def _log_built(
        self, a: int, b: int, built: Built, cpu_s: float, how: str = "read-back"
    ) -> None:
        """One build done: its hours, what it read and wrote, and the process's CPU time
        meanwhile (``time.process_time``: ingest's too, when it ran between the build's awaits);
        ``tally_cpu_s``: the CPU spent feeding the tally since start."""
        log.info(
            "rollups_built",
            how=how,
            start_ms=a,
            end_ms=b,
            rows=built.rows,
            days=built.days,
            readings=built.readings,
            cpu_s=round(cpu_s, 4),
            tally_cpu_s=round(self.feed_cpu_s, 4),
        )
