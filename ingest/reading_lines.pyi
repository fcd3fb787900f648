"""Types of the C module `ingest/reading_lines.c`: plain valid readings to line protocol."""

from typing import Literal, TypeAlias, overload

Checked: TypeAlias = tuple[str, str | None, int | None, dict[str, bool | int | float | None]]
"""A reading's line, the `device_id` it sent (None when it sent none), its `ts` in epoch
microseconds (None when it had none), and the measured fields it sent with their values — None
for a field sent as null, and `device_id`/`ts` too when sent as null (so the `Reading` built
from it knows every field sent, as pydantic's does)."""

@overload
def telemetry(
    payload: bytes,
    zone: str,
    device_id: str,
    received_ms: int,
    skew_ms: int,
    with_values: Literal[False],
) -> str | None: ...
@overload
def telemetry(
    payload: bytes,
    zone: str,
    device_id: str,
    received_ms: int,
    skew_ms: int,
    with_values: Literal[True],
) -> Checked | None: ...
@overload
def batch(
    payload: bytes, zone: str, received_ms: int, skew_ms: int, with_values: Literal[False]
) -> list[str] | None: ...
@overload
def batch(
    payload: bytes, zone: str, received_ms: int, skew_ms: int, with_values: Literal[True]
) -> list[Checked] | None: ...
