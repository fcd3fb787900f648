"""Template variables substituted into an InfluxQL query the way Grafana does it, for running the
dashboards' queries outside Grafana (the tests run every panel's query against InfluxDB).

The subset covered, after Grafana's InfluxDB data source (`interpolateQueryExpr`) and template
service:

- built-ins: `$timeFilter` / `$__timeFilter` → `time >= {from}ms and time <= {to}ms`;
  `$__interval` (e.g. `5m`), `$__interval_ms`, `$__from`, `$__to` (epoch ms);
- `$name`, `${name}`, `[[name]]`: a number is inserted as it is; a multi-value variable's values
  are each regex-escaped and joined as `(a|b)` (one value: escaped, without parentheses); a
  single-value variable is regex-escaped when the query uses it inside `=~ /…/` or `!~ /…/`,
  inserted as it is otherwise;
- `${name:raw}`: as it is, several values joined with `,`; `${name:regex}`: escaped, as `(a|b)`;
  `${name:text}`: the option's text (here the value, or "All");
- "All" with a custom all value (`Variable.all(".*")`): that value, unescaped, in every form.

Unknown variables are left in place, as Grafana leaves them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")
_REFERENCE = re.compile(
    r"\$(?P<plain>\w+)|\[\[(?P<bracket>\w+?)(?::(?P<bracket_fmt>\w+))?\]\]"
    r"|\$\{(?P<braced>\w+)(?::(?P<braced_fmt>\w+))?\}"
)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)")


def escape_regex(value: str) -> str:
    """Grafana's `escapeRegex`: a backslash before each regex metacharacter (and `/`)."""
    return _REGEX_SPECIAL.sub(lambda match: "\\" + match.group(0), value)


@dataclass(frozen=True, slots=True)
class Variable:
    """A template variable's current value: one string, or several for a multi-value one."""

    value: str | tuple[str, ...]
    multi: bool = False
    custom_all: bool = False
    """The value is the variable's own "All" value (such as `.*`), inserted unescaped."""

    @classmethod
    def all(cls, all_value: str) -> Variable:
        return cls(all_value, custom_all=True)


@dataclass(frozen=True, slots=True)
class TimeRange:
    from_ms: int
    to_ms: int
    interval: str = "1m"
    interval_ms: int = 60_000


def _in_regex(query: str, name: str) -> bool:
    name = re.escape(name)
    pattern = r"[=!]~\s*/(?:\\/|[^/])*(?:\$" + name + r"\b|\$\{" + name + r"[:}]|\[\[" + name + ")"
    return re.search(pattern, query) is not None


def _format(query: str, name: str, variable: Variable, fmt: str | None) -> str:
    value = variable.value
    if variable.custom_all:
        return "All" if fmt == "text" else str(value)
    values = (value,) if isinstance(value, str) else value
    if fmt == "raw":
        return ",".join(values)
    if fmt == "text":
        return " + ".join(values)
    if fmt == "regex" or variable.multi:
        escaped = [escape_regex(v) for v in values]
        return (
            escaped[0] if len(escaped) == 1 and isinstance(value, str) else f"({'|'.join(escaped)})"
        )
    single = values[0] if values else ""
    if _NUMBER.match(single):
        return single
    return escape_regex(single) if _in_regex(query, name) else single


def interpolate(query: str, variables: Mapping[str, Variable], time: TimeRange) -> str:
    """`query` with the built-ins and `variables` substituted."""
    time_filter = f"time >= {time.from_ms}ms and time <= {time.to_ms}ms"
    builtins = {
        "timeFilter": time_filter,
        "__timeFilter": time_filter,
        "__interval": time.interval,
        "__interval_ms": str(time.interval_ms),
        "__from": str(time.from_ms),
        "__to": str(time.to_ms),
    }

    def substitute(match: re.Match[str]) -> str:
        name = match.group("plain") or match.group("bracket") or match.group("braced")
        fmt = match.group("bracket_fmt") or match.group("braced_fmt")
        if name in builtins:
            return builtins[name]
        variable = variables.get(name)
        if variable is None:
            return match.group(0)
        return _format(query, name, variable, fmt)

    return _REFERENCE.sub(substitute, query)
