"""Load a rules file into compiled rules, or report every problem in it with file:line.

Beyond the schema, each condition is compiled and tried on a sample observation with every
field present, so a misspelt field (`reading.powr_w`), a type error (`reading.dim_pct / 100`)
or a condition that is not a boolean is found by `luxtel rules check`, not at night in the field.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rules.language.errors import Problem, RuleFileError
from rules.language.expressions import (
    SAMPLE_DEVICE,
    SAMPLE_HISTORY,
    SAMPLE_PREVIOUS,
    SAMPLE_READING,
    SAMPLE_STATUS,
    SAMPLE_SUN,
    Expression,
    ExpressionError,
    context,
)
from rules.language.schema import RulesFileSpec, RuleSpec, Severity, Source
from rules.language.yaml_lines import LocatedDocument, read_yaml
from rules.notify.templates import ALERT_FIELDS, GROUP_FIELDS, template_problems

DEFAULT_SUMMARY = "{rule} on {device_id} ({circuit}, {zone})"
DEFAULT_GROUP = "{scope}: {count} of {total} luminaires: {rule}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule."""

    name: str
    source: Source
    when: Expression | None
    condition: Expression | None
    value: Expression | None
    absent_for_intervals: float | None
    for_: timedelta
    keep_firing_for: timedelta
    severity: Severity
    labels: Mapping[str, str]
    summary: str
    group_summary: str
    annotations: Mapping[str, str]
    verdict: Expression | None = None
    """`when` and `condition` as one program, `(when) ? (condition) : null`: one call per
    observation rather than two (null: the rule does not apply)."""


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    params: Mapping[str, Any]
    fields: Mapping[str, Mapping[str, frozenset[str] | None]] = field(default_factory=dict)
    """Per source, the fields of each variable its rules read (None: all of them). Converting
    a value into CEL costs microseconds, so an observation carries only these."""

    def of_source(self, source: Source) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.source == source)

    def by_name(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)


def load_rules(path: Path, params: Mapping[str, Any] | None = None) -> RuleSet:
    """Read, check and compile a rules file; `params` override the file's own."""
    return compile_document(read_yaml(path), params)


def compile_document(doc: LocatedDocument, overrides: Mapping[str, Any] | None = None) -> RuleSet:
    path = doc.path
    if not isinstance(doc.data, dict):
        raise RuleFileError([Problem(path, 1, "a rules file is a mapping with a `rules:` list")])
    problems: list[Problem] = []
    data = dict(doc.data)
    specs = data.pop("rules", None)
    try:
        top = RulesFileSpec.model_validate({**data, "rules": []})
    except ValidationError as error:
        problems.extend(_problems(doc, error, ()))
        top = RulesFileSpec()
    if not isinstance(specs, list) or not specs:
        line = doc.line_of(("rules",))
        problems.append(Problem(path, line, "rules: a non-empty list of rules is required"))
        specs = []
    params = {**top.params, **(overrides or {})}
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, item in enumerate(specs):
        at = ("rules", index)
        try:
            rule_spec = RuleSpec.model_validate(item)
        except ValidationError as error:
            problems.extend(_problems(doc, error, at))
            continue
        if rule_spec.name in seen:
            problems.append(
                Problem(path, doc.line_of((*at, "name")), f"rule {rule_spec.name!r} is repeated")
            )
        seen.add(rule_spec.name)
        rule = _compile_rule(rule_spec, params, doc, at, problems)
        if rule is not None:
            rules.append(rule)
    if problems:
        raise RuleFileError(problems)
    return RuleSet(tuple(rules), params, _fields(rules))


_PARAM = re.compile(r"\bparams\.([A-Za-z_][A-Za-z0-9_]*)")
_FIELD = re.compile(
    r"\b(reading|status|device|sun|history|previous)\b(?:\.([A-Za-z_][A-Za-z0-9_]*))?"
)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value))
    return json.dumps(str(value))


def inline_params(source: str, params: Mapping[str, Any]) -> str:
    """`params.NAME` replaced by its value as a CEL literal (numbers as doubles); raises
    KeyError naming an unknown parameter."""

    def literal(match: re.Match[str]) -> str:
        return _literal(params[match.group(1)])

    return _PARAM.sub(literal, source)


def _fields(rules: list[Rule]) -> dict[str, dict[str, frozenset[str] | None]]:
    out: dict[str, dict[str, frozenset[str] | None]] = {}
    for rule in rules:
        used = out.setdefault(rule.source, {})
        for expression in (rule.when, rule.condition, rule.value):
            if expression is None:
                continue
            for variable, name in _FIELD.findall(expression.source):
                known = used.get(variable, frozenset())
                if not name or known is None:
                    used[variable] = None
                else:
                    used[variable] = known | {name}
    return out


def _problems(
    doc: LocatedDocument, error: ValidationError, at: tuple[str | int, ...]
) -> list[Problem]:
    out = []
    for item in error.errors(include_url=False):
        loc = (*at, *item["loc"])
        where = ".".join(str(p) for p in loc) or "file"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "is not a known key"
        out.append(Problem(doc.path, doc.line_of(loc), f"{where}: {message}"))
    return out


def _compile_rule(
    spec: RuleSpec,
    params: Mapping[str, Any],
    doc: LocatedDocument,
    at: tuple[str | int, ...],
    problems: list[Problem],
) -> Rule | None:
    before = len(problems)
    expressions: dict[str, Expression | None] = {"when": None, "condition": None, "value": None}
    for key in ("when", "condition", "value"):
        source = getattr(spec, key)
        if source is None:
            continue
        line = doc.line_of((*at, key))
        try:
            expression = Expression.compile(inline_params(source, params))
        except KeyError as error:
            problems.append(Problem(doc.path, line, f"{spec.name}.{key}: no param {error}"))
            continue
        except ExpressionError as error:
            problems.append(Problem(doc.path, line, f"{spec.name}.{key}: {error}"))
            continue
        expressions[key] = expression
        message = _try(expression, key, spec, params)
        if message is not None:
            problems.append(Problem(doc.path, line, f"{spec.name}.{key}: {message}"))
    for key, text in spec.annotations.items():
        allowed = GROUP_FIELDS if key == "group" else ALERT_FIELDS
        for message in template_problems(text, allowed):
            line = doc.line_of((*at, "annotations", key))
            problems.append(Problem(doc.path, line, f"{spec.name}.annotations.{key}: {message}"))
    if len(problems) > before:
        return None
    when, condition = expressions["when"], expressions["condition"]
    verdict = condition
    if when is not None and condition is not None:
        verdict = Expression.compile(f"({when.source}) ? ({condition.source}) : null")
    return Rule(
        name=spec.name,
        source=spec.source,
        when=expressions["when"],
        condition=expressions["condition"],
        value=expressions["value"],
        absent_for_intervals=spec.absent_for_intervals,
        for_=spec.for_,
        keep_firing_for=spec.keep_firing_for,
        severity=spec.severity,
        labels=dict(spec.labels),
        summary=spec.annotations.get("summary", DEFAULT_SUMMARY),
        group_summary=spec.annotations.get("group", DEFAULT_GROUP),
        annotations=dict(spec.annotations),
        verdict=verdict,
    )


def _try(expression: Expression, key: str, spec: RuleSpec, params: Mapping[str, Any]) -> str | None:
    """Evaluate on a sample with every field present: what is wrong, or None."""
    variables: dict[str, Any] = {"device": SAMPLE_DEVICE, "sun": SAMPLE_SUN, "params": params}
    if spec.source == "reading":
        variables |= {
            "reading": SAMPLE_READING,
            "history": SAMPLE_HISTORY,
            "previous": SAMPLE_PREVIOUS,
        }
    else:
        variables["status"] = SAMPLE_STATUS
    value, error = expression.run(context(variables))
    if error is not None:
        return f"cannot be evaluated on a complete {spec.source}: {error}"
    if key in ("when", "condition") and not isinstance(value, bool):
        return f"must be true or false, not {type(value).__name__}"
    if key == "value" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"must be a number, not {type(value).__name__}"
    return None
