"""Alertmanager's routing tree: label matchers, routes matched depth-first with `continue`, and
options inherited from the parent at load time (a child never changes its parent's options).

    route:                      # the root matches every alert
      receiver: crew
      group_by: [rule, circuit]
      group_wait: 30s           # defaults: 30s / 5m / 4h, as in Alertmanager
      routes:
        - matchers: ["zone=north", "severity=~critical|major"]
          receiver: north-crew
          continue: true        # keep looking at the siblings after this one matched
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rules.language.durations import Duration

_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')

Op = Literal["=", "!=", "=~", "!~"]
_OPS: dict[str, Op] = {"=": "=", "!=": "!=", "=~": "=~", "!~": "!~"}


@dataclass(frozen=True, slots=True)
class Matcher:
    """`name=value`, `name!=value`, `name=~regex`, `name!~regex` (regexes match the whole value)."""

    name: str
    op: Op
    value: str

    @classmethod
    def parse(cls, text: str) -> "Matcher":
        match = _MATCHER.match(text)
        if match is None:
            raise ValueError(
                f"{text!r} is not a matcher such as zone=north or severity=~major|minor"
            )
        name, op, value = match.groups()
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"{text!r}: bad regular expression: {error}") from None
        return cls(name, _OPS[op], value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


class RouteSpec(BaseModel):
    """One node of the routing tree as written; unset options come from the parent."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    receiver: str | None = None
    matchers: list[str] = Field(default_factory=list)
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: list["RouteSpec"] = Field(default_factory=list)

    @field_validator("matchers")
    @classmethod
    def _check_matchers(cls, values: list[str]) -> list[str]:
        for text in values:
            Matcher.parse(text)
        return values


@dataclass(frozen=True, slots=True)
class Route:
    """A node with its effective (inherited) options."""

    id: str
    """Its position in the tree, e.g. `0.1.0`: part of its groups' keys."""
    receiver: str
    matchers: tuple[Matcher, ...]
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    continue_: bool
    routes: tuple["Route", ...]

    def match(self, labels: Mapping[str, str]) -> list["Route"]:
        """The routes an alert goes to, depth-first, as Alertmanager does."""
        if not matches_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(labels)
            found.extend(matched)
            if matched and not child.continue_:
                break
        return found or [self]

    def walk(self) -> list["Route"]:
        return [self, *(r for child in self.routes for r in child.walk())]


DEFAULTS = RouteSpec(
    receiver="default",
    group_by=["rule", "circuit"],
    group_wait=timedelta(seconds=30),
    group_interval=timedelta(minutes=5),
    repeat_interval=timedelta(hours=4),
)


def build_route(spec: RouteSpec, parent: Route | None = None, position: str = "0") -> Route:
    """The effective tree: each option is the node's own or else its parent's."""

    base = parent
    receiver = spec.receiver or (base.receiver if base else DEFAULTS.receiver)
    if spec.group_by is not None:
        group_by = tuple(spec.group_by)
    else:
        group_by = base.group_by if base else tuple(DEFAULTS.group_by or ())
    node = Route(
        id=position,
        receiver=str(receiver),
        matchers=tuple(Matcher.parse(m) for m in spec.matchers),
        group_by=group_by,
        group_wait=_td(spec.group_wait, base.group_wait if base else DEFAULTS.group_wait),
        group_interval=_td(
            spec.group_interval, base.group_interval if base else DEFAULTS.group_interval
        ),
        repeat_interval=_td(
            spec.repeat_interval, base.repeat_interval if base else DEFAULTS.repeat_interval
        ),
        continue_=spec.continue_,
        routes=(),
    )
    children = tuple(
        build_route(child, node, f"{position}.{i}") for i, child in enumerate(spec.routes)
    )
    return Route(
        node.id,
        node.receiver,
        node.matchers,
        node.group_by,
        node.group_wait,
        node.group_interval,
        node.repeat_interval,
        node.continue_,
        children,
    )


def _td(own: timedelta | None, inherited: timedelta | None) -> timedelta:
    value = own if own is not None else inherited
    assert value is not None
    return value
