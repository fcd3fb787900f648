"""The dead-letter record: one rejected message (or batch element) with its reason."""

import base64
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from models.reasons import Reason


class DeadLetter(BaseModel):
    """What `{state_dir}/deadletter.jsonl` and `luxtel/deadletter` hold, one per rejection."""

    model_config = ConfigDict(frozen=True)

    received_at: datetime = Field(description="When luxtel received the message (UTC).")
    topic: str = Field(description="The topic it arrived on.")
    payload: str | None = Field(default=None, description="The payload, when it is UTF-8.")
    payload_b64: str | None = Field(default=None, description="The payload, base64, otherwise.")
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
    ) -> "DeadLetter":
        """Build a record, keeping the payload as text when it is UTF-8 and base64 otherwise."""
        if isinstance(payload, str):
            return cls(
                received_at=received_at,
                topic=topic,
                payload=payload,
                reason=reason,
                detail=detail,
                index=index,
            )
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            encoded = base64.b64encode(payload).decode("ascii")
            return cls(
                received_at=received_at,
                topic=topic,
                payload_b64=encoded,
                reason=reason,
                detail=detail,
                index=index,
            )
        return cls(
            received_at=received_at,
            topic=topic,
            payload=text,
            reason=reason,
            detail=detail,
            index=index,
        )

    def to_json(self) -> bytes:
        """The record as one JSON line (no newline), without the unset fields."""
        return self.model_dump_json(exclude_none=True).encode()
