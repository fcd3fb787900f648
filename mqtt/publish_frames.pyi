"""Types of the C module `mqtt/publish_frames.c`: runs of plain PUBLISH packets split in C."""

from mqtt.codec import Packet, Publish

def split(
    cls: type[Publish], data: bytes, start: int, v5: bool, limit: int, out: list[Packet]
) -> int: ...
