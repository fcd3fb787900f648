"""Durations as the rules and notification files write them: `30s`, `15m`, `4h`, `1d`, `1h30m`."""

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """A duration from its text (`"1h30m"`, `"0s"`); a bare number is refused, not guessed."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("a duration is text such as '30s', '15m', '4h' or '1h30m'")
    text = value.strip()
    position, seconds = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        seconds += int(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"{value!r} is not a duration such as '30s', '15m', '4h' or '1h30m'")
    return timedelta(seconds=seconds)


def format_duration(span: timedelta) -> str:
    """The shortest text `parse_duration` reads back as `span` (whole seconds)."""
    seconds = int(span.total_seconds())
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
