"""Inhibition, with Alertmanager's semantics: a firing alert mutes the notifications of others.

```yaml
inhibit_rules:
  - source_matchers: ["rule=device_offline"]      # while such an alert fires...
    target_matchers: ["rule=communication_loss"]  # ...alerts matching these are not notified
    equal: [device_id]                            # when these labels have the same value in both
```

A device whose Last Will said it is offline also goes silent: its `communication_loss` 45 min
later is the same problem, not a second one. The inhibited alert still exists — it is recorded
in InfluxDB, published on MQTT and listed by `luxtel alerts list` — only no notification carries
it. Only firing alerts inhibit (a pending one may never fire), and an alert matching both
sides is inhibited only by a source that does not match the target side (so such alerts do not
mute each other). Silences do not change what inhibits, as in Alertmanager.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rules.evaluation.alerts import Alert
from rules.notify.routing import Matcher, matches_all


class InhibitRuleSpec(BaseModel):
    """One inhibit rule as written in the notification file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_matchers: list[str] = Field(
        min_length=1, description="Matchers of the firing alerts that inhibit."
    )
    target_matchers: list[str] = Field(
        min_length=1, description="Matchers of the alerts whose notifications they mute."
    )
    equal: list[str] = Field(
        default_factory=list,
        description="Labels that must have the same value in source and target (e.g. device_id).",
    )

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _check_matchers(cls, texts: list[str]) -> list[str]:
        for text in texts:
            Matcher.parse(text)
        return texts


@dataclass(frozen=True, slots=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def of(cls, spec: InhibitRuleSpec) -> "InhibitRule":
        return cls(
            tuple(Matcher.parse(m) for m in spec.source_matchers),
            tuple(Matcher.parse(m) for m in spec.target_matchers),
            tuple(spec.equal),
        )


def inhibited(
    rules: Sequence[InhibitRule], firing: Iterable[Alert], fleeting: Iterable[Alert] = ()
) -> frozenset[str]:
    """Ids of the alerts of `firing` and `fleeting` that a firing alert of `firing` inhibits.
    `fleeting`: alerts that fired and resolved since the last look (within one evaluation
    cycle); muted as they would have been while firing, by what fires now, but never a source
    (an alert over already inhibits nothing)."""
    if not rules:
        return frozenset()
    labelled = [(a, a.label_set()) for a in firing if a.resolved_at is None]
    targets = [*labelled, *((a, a.label_set()) for a in fleeting)]
    out: set[str] = set()
    for rule in rules:
        # Per value of the `equal` labels: True while every source there also matches the
        # target side, False once a source that does not is found.
        sources: dict[tuple[str, ...], bool] = {}
        for alert, labels in labelled:
            if alert.fired_at is not None and matches_all(rule.source, labels):
                key = _values(labels, rule.equal)
                both = matches_all(rule.target, labels)
                sources[key] = sources.get(key, True) and both
        if not sources:
            continue
        for alert, labels in targets:
            if not matches_all(rule.target, labels):
                continue
            key = _values(labels, rule.equal)
            if key not in sources:
                continue
            if not sources[key] or not matches_all(rule.source, labels):
                out.add(alert.id)
    return frozenset(out)


def _values(labels: Mapping[str, str], names: Sequence[str]) -> tuple[str, ...]:
    return tuple(labels.get(name, "") for name in names)
