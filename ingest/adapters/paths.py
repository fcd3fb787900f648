"""A tiny JSON-path subset for declared mappings: `$`, then `.name` and `[index]` steps.

`$.deviceInfo.tags.zone`, `$.uplink_message.rx_metadata[0].time`. Nothing else: no wildcards,
filters, slices, recursion or expressions — a mapping is data, and reading a value must cost a few
dictionary look-ups and never run anything. Paths are compiled once, when the sources file is
loaded, into a tuple of keys; their depth is bounded (`MAX_DEPTH`).
"""

import re
from collections.abc import Callable
from functools import partial
from typing import Any, Final

MAX_DEPTH: Final = 16
"""Steps a path may take: deeper than any network server's uplink (ChirpStack's is 4)."""

MAX_INDEX: Final = 4096

_STEP = re.compile(r"\.([A-Za-z0-9_][A-Za-z0-9_-]{0,127})|\[(0|[1-9][0-9]{0,3})\]")

MISSING: Final = object()
"""What `lookup` returns when the path leads nowhere (a missing key, index or a scalar on the
way); distinct from a JSON `null`, which is a value."""


class PathError(ValueError):
    """A path outside the subset, with a sentence saying why."""


def compile_path(text: str) -> tuple[str | int, ...]:
    """`$.a.b[0].c` → `("a", "b", 0, "c")`; raises PathError."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise PathError(f"{text!r} is not a JSON path: it must start with $ (e.g. $.object.power)")
    steps: list[str | int] = []
    position = 1
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            raise PathError(
                f"{text!r}: unexpected {text[position : position + 10]!r} at character "
                f"{position + 1}; only .name and [index] steps are allowed"
            )
        name, index = match.groups()
        if name is not None:
            steps.append(name)
        else:
            value = int(index)
            if value > MAX_INDEX:
                raise PathError(f"{text!r}: index {value} is over {MAX_INDEX}")
            steps.append(value)
        position = match.end()
        if len(steps) > MAX_DEPTH:
            raise PathError(f"{text!r} is deeper than {MAX_DEPTH} steps")
    return tuple(steps)


def lookup(document: Any, steps: tuple[str | int, ...]) -> Any:
    """The value at `steps` in a parsed JSON document, or `MISSING`. Never raises: a key on
    a list, an index on an object or a step into a scalar is simply not found."""
    value = document
    for step in steps:
        if isinstance(step, str):
            if type(value) is not dict:
                return MISSING
            value = value.get(step, MISSING)
            if value is MISSING:
                return MISSING
        else:
            if type(value) is not list or step >= len(value):
                return MISSING
            value = value[step]
    return value


def format_path(steps: tuple[str | int, ...]) -> str:
    """The text of a compiled path."""
    return "$" + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps)


Getter = Callable[[Any], Any]


def getter(steps: tuple[str | int, ...]) -> Getter:
    """`lookup` for one compiled path, as a function of the document: made once when the
    sources file is loaded, so a message pays plain indexing and no loop over steps.

    A path of keys only is walked by indexing inside one `try`: indexing a list, a string, a
    number, a bool or None with a key raises TypeError and a missing key KeyError, which is
    exactly what `lookup` calls not found (JSON objects have only string keys). A path with an
    index keeps `lookup`'s checks (a string is indexable, and must not be)."""
    if any(not isinstance(step, str) for step in steps):
        return partial(_lookup_flipped, steps)
    if not steps:
        return _same
    if len(steps) == 1:
        (key,) = steps

        def one(document: Any) -> Any:
            if type(document) is dict:
                return document.get(key, MISSING)
            return MISSING

        return one
    if len(steps) == 2:
        first, second = steps

        def two(document: Any) -> Any:
            try:
                return document[first][second]
            except (KeyError, TypeError):
                return MISSING

        return two
    if len(steps) == 3:
        first, second, third = steps

        def three(document: Any) -> Any:
            try:
                return document[first][second][third]
            except (KeyError, TypeError):
                return MISSING

        return three

    def many(document: Any) -> Any:
        try:
            for step in steps:
                document = document[step]
        except (KeyError, TypeError):
            return MISSING
        return document

    return many


def _same(document: Any) -> Any:
    return document


def _lookup_flipped(steps: tuple[str | int, ...], document: Any) -> Any:
    return lookup(document, steps)
