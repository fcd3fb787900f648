"""Types of the C module `rules/runtime/handed_rows.c`: a journal record's body as columns."""

from typing import TypeAlias

Parsed: TypeAlias = tuple[
    int,
    bytes,
    list[str],
    bytes,
    list[str],
    bytes,
    bytes,
    list[str],
    bytes,
    bytes,
    bytes,
    bytes,
    bytes,
    bytes,
]
"""rows, device codes (int64), device names, zone codes (int64), zone names, at_us (int64),
received codes (int64; -1: a status), received texts, retained (uint8), status (uint8), entry
starts and ends (int64), kinds (int8) and values (float64), field-major."""

def parse(body: bytes, fields: tuple[str, ...], /) -> Parsed | None:
    """A version 2 journal body as columns, or None when it is not plain (see the C file)."""
