"""Timestamps as devices send them: RFC 3339 with a UTC offset, or Unix epoch seconds.

Nothing is guessed: a naive timestamp is rejected rather than assumed to be UTC or local time (a
naive local time stored as UTC lands hours off), a number is always seconds (never sniffed as
milliseconds), and a number in a string is not a timestamp.
"""

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

EARLIEST_TS = datetime(2000, 1, 1, tzinfo=UTC)
"""Before this a controller's clock is unset (1970), not right: such readings are rejected."""

_LATEST_EPOCH_S = 253402300799  # 9999-12-31T23:59:59Z, beyond which datetime cannot go

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?"
)


def parse_timestamp(value: Any) -> datetime:
    """Turn a JSON `ts` value into an aware UTC datetime, or raise a specific validation error."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PydanticCustomError(
            "timestamp_type",
            "ts must be an RFC 3339 string with a UTC offset or a number of epoch seconds",
        )
    if isinstance(value, str):
        return _parse_rfc3339(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "ts must be a finite number")
    if not -_LATEST_EPOCH_S <= value <= _LATEST_EPOCH_S:
        raise PydanticCustomError(
            "timestamp_range",
            "{value} is not a plausible number of epoch seconds",
            {"value": value},
        )
    return datetime.fromtimestamp(value, UTC)


def _parse_rfc3339(text: str) -> datetime:
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise PydanticCustomError(
            "timestamp_format", "{text} is not an RFC 3339 date-time", {"text": repr(text[:64])}
        )
    if match.group("offset") is None:
        raise PydanticCustomError(
            "timestamp_naive",
            "{text} has no UTC offset; send it with Z or +hh:mm",
            {"text": repr(text[:64])},
        )
    normalised = text.replace("z", "Z").replace("t", "T")
    fraction = re.search(r"\.(\d+)", normalised)
    if fraction is not None and len(fraction.group(1)) > 6:
        normalised = normalised.replace(fraction.group(0), "." + fraction.group(1)[:6], 1)
    try:
        parsed = datetime.fromisoformat(normalised)
    except ValueError as error:
        raise PydanticCustomError(
            "timestamp_format",
            "{text} is not a valid date-time: {error}",
            {"text": repr(text[:64]), "error": str(error)},
        ) from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00: in UTC, past the year 9999
        raise PydanticCustomError(
            "timestamp_range",
            "{text} is outside the dates that can be stored (years 1 to 9999 in UTC)",
            {"text": repr(text[:64])},
        ) from None


Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]
"""A reading's or status's `ts`, always an aware UTC datetime once validated."""


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch, truncated (sub-millisecond digits are dropped)."""
    delta = moment - EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_epoch_ms(ms: int) -> datetime:
    """The aware UTC moment `ms` milliseconds after the Unix epoch (`epoch_ms`'s inverse)."""
    return EPOCH + timedelta(milliseconds=ms)
