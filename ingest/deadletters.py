"""Keeping rejected messages: appended to a JSONL file (fsynced before the message is
acknowledged) and published to `luxtel/deadletter` for whoever watches the stream."""

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import structlog

from ingest.metrics import IngestMetrics
from models import DeadLetter

DEADLETTER_TOPIC = "luxtel/deadletter"

log = structlog.get_logger("luxtel.deadletter")


class DeadLetterLog:
    """The dead letter: the file is the record; the MQTT copy is a convenience."""

    def __init__(
        self,
        path: Path,
        metrics: IngestMetrics,
        publish: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._metrics = metrics
        self._publish = publish
        self._lock = asyncio.Lock()

    def set_publisher(self, publish: Callable[[str, bytes], None]) -> None:
        self._publish = publish

    async def keep(self, records: list[DeadLetter]) -> None:
        """Append `records` durably, count them, and publish them."""
        if not records:
            return
        lines = [record.to_json() for record in records]
        async with self._lock:  # batches are written concurrently: one append at a time
            await asyncio.to_thread(self._append, b"".join(line + b"\n" for line in lines))
        for record, line in zip(records, lines, strict=True):
            self._metrics.rejected.labels(record.reason.value).inc()
            if self._publish is not None:
                self._publish(DEADLETTER_TOPIC, line)
        log.debug("dead_lettered", count=len(records))

    def _append(self, data: bytes) -> None:
        with self.path.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
