"""The notification file: receivers and the routing tree (YAML, every problem with file:line).

```yaml
receivers:
  - name: crew-north
    apprise:                       # any Apprise URL: mailtos://, json://, slack://, ntfy://…
      - "mailtos://${SMTP_USER}:${SMTP_PASSWORD}@mail.example.org?to=crew-north@example.org"
  - name: city-alertmanager
    alertmanager: http://alertmanager:9093     # POST /api/v2/alerts
route:
  receiver: crew-north
  group_by: [rule, circuit]
  routes: [...]
inhibit_rules:                     # Alertmanager's: a firing source mutes matching targets
  - source_matchers: ["rule=device_offline"]
    target_matchers: ["rule=communication_loss"]
    equal: [device_id]
```

`${NAME}` in a URL is read from the environment when the file is loaded, so secrets stay out
of the file; a name that is not set is an error.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rules.evaluation.inhibit import InhibitRule, InhibitRuleSpec
from rules.language.errors import Problem, RuleFileError
from rules.language.yaml_lines import LocatedDocument, parse_yaml, read_yaml
from rules.notify.routing import DEFAULTS, Route, RouteSpec, build_route

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ReceiverSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    apprise: list[str] = Field(default_factory=list, description="Apprise URLs.")
    alertmanager: str | None = Field(
        default=None, description="Base URL of a Prometheus Alertmanager."
    )

    @model_validator(mode="after")
    def _something(self) -> "ReceiverSpec":
        if not self.apprise and self.alertmanager is None:
            raise ValueError(f"receiver {self.name!r} needs apprise URLs or an alertmanager URL")
        return self


class NotifySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    receivers: list[ReceiverSpec] = Field(default_factory=list)
    route: RouteSpec = DEFAULTS
    inhibit_rules: list[InhibitRuleSpec] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    receivers: dict[str, ReceiverSpec]
    route: Route
    inhibit_rules: tuple[InhibitRule, ...] = ()


NO_RECEIVERS = NotifyConfig({}, build_route(DEFAULTS))
"""Alerts are still grouped and recorded (InfluxDB, MQTT, `luxtel alerts list`); nothing is sent."""


def _routes_as_written(
    spec: RouteSpec, location: tuple[str | int, ...]
) -> list[tuple[tuple[str | int, ...], RouteSpec]]:
    """Every route of the tree as written, with its place in the file, depth-first."""
    found = [(location, spec)]
    for index, child in enumerate(spec.routes):
        found += _routes_as_written(child, (*location, "routes", index))
    return found


def load_notify(path: Path) -> NotifyConfig:
    return compile_notify(read_yaml(path))


def parse_notify(text: str, path: Path = Path("<notify>")) -> NotifyConfig:
    return compile_notify(parse_yaml(text, path))


def compile_notify(doc: LocatedDocument) -> NotifyConfig:
    problems: list[Problem] = []
    try:
        spec = NotifySpec.model_validate(doc.data or {})
    except ValidationError as error:
        for item in error.errors(include_url=False):
            loc = tuple(item["loc"])
            where = ".".join(str(p) for p in loc) or "file"
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "is not a known key"
            problems.append(Problem(doc.path, doc.line_of(loc), f"{where}: {message}"))
        raise RuleFileError(problems) from None
    receivers: dict[str, ReceiverSpec] = {}
    for index, receiver in enumerate(spec.receivers):
        line = doc.line_of(("receivers", index))
        if receiver.name in receivers:
            problems.append(Problem(doc.path, line, f"receiver {receiver.name!r} is repeated"))
        urls = []
        for url in receiver.apprise:
            missing = [n for n in _ENV.findall(url) if n not in os.environ]
            if missing:
                problems.append(
                    Problem(doc.path, line, f"{receiver.name}: environment {missing[0]} not set")
                )
            urls.append(_ENV.sub(lambda m: os.environ.get(m.group(1), ""), url))
        receivers[receiver.name] = receiver.model_copy(update={"apprise": urls})
    route = build_route(spec.route)
    if receivers:
        for location, node in _routes_as_written(spec.route, ("route",)):
            if node.receiver is None and location != ("route",):
                continue  # inherited: reported where it is named
            name = node.receiver or route.receiver
            if name not in receivers:
                line = doc.line_of((*location, "receiver"))
                problems.append(Problem(doc.path, line, f"no receiver {name!r}"))
    if problems:
        raise RuleFileError(problems)
    return NotifyConfig(receivers, route, tuple(InhibitRule.of(r) for r in spec.inhibit_rules))
