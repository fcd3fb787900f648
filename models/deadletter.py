"""The dead-letter record: one rejected message (or batch element) with its reason.

A record keeps at most `keep_bytes` of the payload (`DeadLetter.of`): a larger payload is kept
as its first part plus `payload_bytes` (its whole length) and `payload_sha256` (of all of it),
so a flood of large garbage costs ~1 KiB a message in memory, on disk and on MQTT, and a person
can still tell the messages apart and match them to a device's own log.
"""

import base64
import hashlib
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from models.reasons import Reason

PAYLOAD_KEPT_BYTES = 1024
"""How much of a rejected payload a record keeps by default (`deadletter.payload_kept_bytes`)."""


class DeadLetter(BaseModel):
    """What `{state_dir}/deadletter.jsonl` and `luxtel/deadletter` hold, one per rejection."""

    model_config = ConfigDict(frozen=True)

    received_at: datetime = Field(description="When luxtel received the message (UTC).")
    topic: str = Field(description="The topic it arrived on.")
    payload: str | None = Field(
        default=None, description="The payload (its first part when cut), when it is UTF-8."
    )
    payload_b64: str | None = Field(
        default=None, description="The payload (its first part when cut), base64, otherwise."
    )
    payload_bytes: int | None = Field(
        default=None, description="When the payload was cut: its whole length in bytes."
    )
    payload_sha256: str | None = Field(
        default=None, description="When the payload was cut: the SHA-256 of all of it, hex."
    )
    reason: Reason = Field(description="Machine-readable code.")
    detail: str = Field(description="A sentence for a person.")
    index: int | None = Field(
        default=None, description="In a batch: the rejected element's position."
    )

    @classmethod
    def of(
        cls,
        *,
        received_at: datetime,
        topic: str,
        payload: bytes | str,
        reason: Reason,
        detail: str,
        index: int | None = None,
        keep_bytes: int = PAYLOAD_KEPT_BYTES,
    ) -> "DeadLetter":
        """Build a record, keeping the payload as text when it is UTF-8 and base64 otherwise;
        a payload longer than `keep_bytes` is cut there (text: at the last whole character
        before it) and its length and SHA-256 recorded."""
        raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
        cut = len(raw) > keep_bytes
        kept = raw[:keep_bytes] if cut else raw
        text: str | None
        if isinstance(payload, str) and not cut:
            text = payload
        elif _is_utf8(raw):
            text = kept.decode("utf-8", "ignore")  # only a character split at the cut is lost
        else:
            text = None
        return cls(
            received_at=received_at,
            topic=topic,
            payload=text,
            payload_b64=base64.b64encode(kept).decode("ascii") if text is None else None,
            payload_bytes=len(raw) if cut else None,
            payload_sha256=hashlib.sha256(raw).hexdigest() if cut else None,
            reason=reason,
            detail=detail,
            index=index,
        )

    def to_json(self) -> bytes:
        """The record as one JSON line (no newline), without the unset fields."""
        return self.model_dump_json(exclude_none=True).encode()


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
