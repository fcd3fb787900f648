"""Annotation templates: `{name}` or `{name:format}` over a fixed set of plain names.

Deliberately not `str.format` over objects (which reaches attributes and items) and not a
template language: a rules file can only name the values listed here, and a wrong name is a
load error with its line rather than a blank in a crew's notification.
"""

import functools
import string
from collections.abc import Mapping

ALERT_FIELDS = frozenset(
    {
        "rule",
        "severity",
        "device_id",
        "zone",
        "circuit",
        "lat",
        "lon",
        "model",
        "rated_power_w",
        "value",
        "since",
    }
)
"""What a per-alert template may name."""

GROUP_FIELDS = frozenset({"rule", "severity", "scope", "count", "total", "zone", "circuit"})
"""What an incident (group) template may name."""

_FORMATTER = string.Formatter()


def template_problems(text: str, allowed: frozenset[str]) -> list[str]:
    """What is wrong with a template (nothing: an empty list)."""
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError as error:
        return [f"template {text!r}: {error}"]
    problems = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if conversion is not None:
            problems.append(f"template field {{{name}!{conversion}}}: conversions are not allowed")
        if name not in allowed:
            problems.append(
                f"template field {{{name}}} is not one of: {', '.join(sorted(allowed))}"
            )
        if spec and "{" in spec:
            problems.append(f"template field {{{name}}}: nested fields are not allowed")
    return problems


@functools.lru_cache(maxsize=1024)
def _parts(text: str) -> tuple[tuple[str, str | None, str | None, str | None], ...]:
    """A template parsed once: an alert's summary is rendered again with each reading that
    holds it."""
    return tuple(_FORMATTER.parse(text))


def render(text: str, values: Mapping[str, object]) -> str:
    """Fill a checked template; a value that does not fit its format is shown as it is."""
    out = []
    for literal, name, spec, _ in _parts(text):
        out.append(literal)
        if name is None:
            continue
        value = values.get(name, "")
        try:
            out.append(format(value, spec or ""))
        except (ValueError, TypeError):
            out.append(str(value))
    return "".join(out)
