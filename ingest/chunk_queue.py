"""The queue between the MQTT source and the decoder, bounded in chunks and in payload bytes.

A chunk is the messages of one socket read, so its size is set by the messages: a few dozen
readings of a few hundred bytes, or one payload of up to the broker's packet limit (16 MiB,
`mqtt.connection.MAX_PACKET_SIZE`). Bounded by count alone, a stalled sink (InfluxDB
hung, a full disk) with large payloads arriving could hold 64 × 16 MiB here; bounded by bytes
too, the source pauses reading once `max_bytes` of payload wait, and the broker holds the rest.
One chunk always fits in an empty queue, however large.
"""

import asyncio
from collections import deque

from ingest.messages import Inbound

Chunk = list[Inbound] | None


class ChunkQueue(asyncio.Queue[Chunk]):
    """An `asyncio.Queue` of received chunks, full at `maxsize` chunks or `max_bytes` bytes of
    payload (`put` waits, `put_nowait` raises `QueueFull`, as for any full queue)."""

    def __init__(self, maxsize: int, max_bytes: int) -> None:
        super().__init__(maxsize)
        self.max_bytes = max_bytes
        self.bytes = 0
        self._sizes: deque[int] = deque()

    def full(self) -> bool:
        return super().full() or (self.bytes >= self.max_bytes and not self.empty())

    def _put(self, item: Chunk) -> None:
        size = sum(len(message.payload) for message in item) if item else 0
        self._sizes.append(size)
        self.bytes += size
        super()._put(item)

    def _get(self) -> Chunk:
        self.bytes -= self._sizes.popleft()
        return super()._get()
