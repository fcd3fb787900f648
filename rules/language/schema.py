"""The rules file's schema: what an operator writes, before anything is compiled.

```yaml
params:                      # constants, seen by conditions as params.NAME
  nominal_voltage_v: 230
rules:
  - name: lamp_failure       # snake_case, unique
    source: reading          # reading | status | silence (the deadman, evaluated on a timer)
    when: "!sun.is_day"      # CEL: does the condition apply now? (no verdict when false)
    condition: >-            # CEL over reading/status, device, sun, history, params
      reading.lamp_on && reading.power_w < 0.2 * device.rated_power_w
    value: reading.power_w   # CEL number written as the alert's value (optional)
    for: 30m                 # true this long before it fires
    keep_firing_for: 15m     # false this long before it resolves
    severity: major
    labels: {team: crew}
    annotations:
      summary: "{device_id} ({circuit}, {zone}) draws {value:.1f} W"
```
"""

import re
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rules.language.durations import Duration

RULE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
RESERVED_LABELS = frozenset({"rule", "alertname", "severity", "zone", "device_id", "circuit"})

Severity = Literal["critical", "major", "minor", "warning", "info"]
Source = Literal["reading", "status", "silence"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RuleSpec(_Strict):
    """One alerting rule as written."""

    name: str = Field(description="Identifier of the rule (snake_case), unique in the file.")
    source: Source = Field(
        description="What the condition is evaluated on: each reading, each status, or — for "
        "`silence` — a timer that checks how long each device has been silent."
    )
    when: str | None = Field(
        default=None,
        description="CEL boolean: whether the condition applies to this observation at all. "
        "When false the alert keeps its state (a lamp failure is not cured by sunrise).",
    )
    condition: str | None = Field(
        default=None, description="CEL boolean expression (reading and status rules)."
    )
    value: str | None = Field(default=None, description="CEL number: the alert's value.")
    absent_for_intervals: float | None = Field(
        default=None,
        gt=0,
        description="Silence rules: silent for this many of the device's report intervals.",
    )
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = Field(default=timedelta(0))
    severity: Severity = "major"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not RULE_NAME.fullmatch(name):
            raise ValueError(f"{name!r} must be snake_case: a-z, 0-9 and _, starting with a letter")
        return name

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if not LABEL_NAME.fullmatch(key):
                raise ValueError(f"label name {key!r} must be letters, digits and _")
            if key in RESERVED_LABELS:
                raise ValueError(f"label {key!r} is set by luxtel itself")
        return labels

    @model_validator(mode="after")
    def _check_kind(self) -> "RuleSpec":
        if self.source == "silence":
            if self.absent_for_intervals is None:
                raise ValueError("a silence rule needs absent_for_intervals (e.g. 3)")
            if self.condition is not None or self.value is not None or self.when is not None:
                raise ValueError("a silence rule has no condition or value: it is the silence")
        else:
            if self.condition is None:
                raise ValueError(f"a rule on {self.source} needs a condition")
            if self.absent_for_intervals is not None:
                raise ValueError("absent_for_intervals is for rules on silence")
        if self.for_ < timedelta(0) or self.keep_firing_for < timedelta(0):
            raise ValueError("for and keep_firing_for cannot be negative")
        return self


class RulesFileSpec(_Strict):
    """The whole rules file."""

    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(default_factory=list)
