"""The rules file: schema, CEL compilation and a trial evaluation, every problem with file:line;
`luxtel rules check`; the inventory CSV; durations."""

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from luxtel.commands.rules import rules_app
from rules.evaluation.inventory import COLUMNS, load_inventory
from rules.language.durations import format_duration, parse_duration
from rules.language.errors import RuleFileError
from rules.language.loader import load_rules
from rules.notify.config import load_notify, parse_notify

SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "rules" / "streetlight.yaml"
NOTIFY_EXAMPLE = SHIPPED.parent / "notify.example.yaml"

ALARMS = {
    "lamp_failure",
    "day_burning",
    "communication_loss",
    "device_offline",
    "supply_loss",
    "voltage_high",
    "voltage_low",
    "power_factor_low",
    "power_off_expected",
    "driver_overtemp",
    "cycling",
    "device_fault",
}


def test_the_shipped_rules_cover_every_alarm_of_the_domain_notes() -> None:
    rules = load_rules(SHIPPED)
    assert {rule.name for rule in rules.rules} == ALARMS
    silence = rules.by_name("communication_loss")
    assert silence is not None
    assert silence.source == "silence"


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RuleFileError) as caught:
        load_rules(path)
    return [f"{p.line}: {p.message}" for p in caught.value.problems]


GOOD = """\
rules:
  - name: ok
    source: reading
    condition: reading.power_w > 1.0
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("    condition", "    for: 10x\n    condition"), "4: rules.0.for: '10x'"),
        (GOOD.replace("name: ok", "name: Bad"), "2: rules.0.name: 'Bad' must be snake_case"),
        (GOOD.replace("reading.power_w", "reading.powr_w"), "4: ok.condition: cannot be evaluated"),
        (GOOD.replace("reading.power_w > 1.0", "reading.dim_pct / 100"), "4: ok.condition:"),
        (GOOD.replace("reading.power_w > 1.0", "reading.power_w"), "must be true or false"),
        (GOOD.replace("reading.power_w > 1.0", "reading.("), "4: ok.condition: Failed to parse"),
        (GOOD.replace("reading.power_w", "params.nope"), "4: ok.condition: no param 'nope'"),
        (GOOD + "    colour: red\n", "5: rules.0.colour: is not a known key"),
        (GOOD + "    annotations:\n      summary: '{nope}'\n", "6: ok.annotations.summary:"),
        (GOOD + GOOD.removeprefix("rules:\n"), "5: rule 'ok' is repeated"),
        (GOOD.replace("source: reading", "source: silence"), "a silence rule needs"),
        ("rules: [\n", "not valid YAML"),
        ("rules: []\n", "1: rules: a non-empty list of rules is required"),
        ("rules:\n  - name: a\n    name: b\n", "3: 'name' is repeated"),
    ],
)
def test_every_problem_names_its_line(tmp_path: Path, text: str, expected: str) -> None:
    found = _problems(tmp_path, text)
    assert any(expected in line for line in found), found


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("name: ok", "name: Bad") + GOOD.removeprefix("rules:\n").replace(
        "name: ok", "name: two"
    ).replace("power_w", "powr_w")
    found = _problems(tmp_path, text)
    assert len(found) == 2, found


def test_params_are_inlined_and_can_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "params: {limit: 5}\n"
        "rules:\n  - name: ok\n    source: reading\n    condition: reading.power_w > params.limit\n"
    )
    rule = load_rules(path, {"limit": 7}).rules[0]
    assert rule.condition is not None
    assert "7.0" in rule.condition.source


def test_rules_check_exits_2_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("reading.power_w", "reading.powr_w"))
    result = CliRunner().invoke(rules_app, ["check", str(path)])
    assert result.exit_code == 2
    assert f"{path}:4: ok.condition" in result.output
    ok = CliRunner().invoke(rules_app, ["check", str(SHIPPED), "--notify", str(NOTIFY_EXAMPLE)])
    assert ok.exit_code == 0, ok.output
    assert "12 rules OK" in ok.output


def test_notify_file_problems_have_lines() -> None:
    text = "receivers:\n  - name: crew\n    apprise: ['json://x']\nroute:\n  receiver: nobody\n"
    with pytest.raises(RuleFileError) as caught:
        parse_notify(text, Path("n.yaml"))
    assert "n.yaml:5: no receiver 'nobody'" in str(caught.value)
    with pytest.raises(RuleFileError, match=r"n.yaml:4: route.matchers: .zone. is not a matcher"):
        parse_notify(
            "route:\n  receiver: a\n  group_wait: 1m\n  matchers:\n  - 'zone'\n", Path("n.yaml")
        )


def test_the_example_routes_tell_critical_alarms_within_seconds() -> None:
    """supply_loss (critical) has waited its 10-minute `for` already: the crew's route waits
    seconds, not the 20 minutes that gather a silent circuit's communication_loss."""
    notify = load_notify(NOTIFY_EXAMPLE)
    labels = {"rule": "supply_loss", "alertname": "supply_loss", "severity": "critical"}
    labels |= {"zone": "north", "device_id": "lum-1", "circuit": "C12"}
    routes = notify.route.match(labels)
    assert [r.receiver for r in routes] == ["city-alertmanager", "crew"]
    assert all(r.group_wait <= timedelta(seconds=10) for r in routes)
    assert routes[1].group_by == ("rule", "circuit")
    silent = labels | {"rule": "communication_loss", "alertname": "communication_loss"}
    silent["severity"] = "major"
    crew = notify.route.match(silent)[-1]
    assert (crew.receiver, crew.group_wait) == ("crew", timedelta(minutes=20))


NESTED_ROUTES = """\
receivers:
  - name: crew
    apprise: ['json://x']
route:
  receiver: crew
  routes:
    - matchers: ['severity=critical']
      group_wait: 10s
    - matchers: ['zone=north']
      routes:
        - matchers: ['rule=cycling']
          receiver: north-crew
"""


def test_an_unknown_receiver_is_reported_at_its_own_line() -> None:
    """The line that names it, once: not the `route:` line, nor again for every route below
    that inherits it."""
    with pytest.raises(RuleFileError) as caught:
        parse_notify(NESTED_ROUTES, Path("n.yaml"))
    assert [str(p) for p in caught.value.problems] == ["n.yaml:12: no receiver 'north-crew'"]
    with pytest.raises(RuleFileError) as caught:
        parse_notify(NESTED_ROUTES.replace("  receiver: crew\n", "  receiver: crews\n"), Path("n"))
    assert [str(p) for p in caught.value.problems] == [
        "n:5: no receiver 'crews'",
        "n:12: no receiver 'north-crew'",
    ]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("lum-2,north,C01,95,121.4,60,100,900,LX,", ":3: lat"),
        ("lum-1,north,C01,31.2,121.4,60,100,900,LX,", ":3: device_id lum-1 appears twice"),
        ("bad id,north,C01,31.2,121.4,60,100,900,LX,", ":3: device_id"),
    ],
)
def test_inventory_errors_name_their_lines(tmp_path: Path, row: str, expected: str) -> None:
    path = tmp_path / "inventory.csv"
    good = "lum-1,north,C01,31.2,121.4,60,100,900,LX,2024-01-01\n"
    path.write_text(",".join(COLUMNS) + "\n" + good + row + "\n")
    with pytest.raises(RuleFileError) as caught:
        load_inventory(path)
    assert f"{path}{expected}" in str(caught.value)
    path.write_text(",".join(COLUMNS) + "\n" + good)
    assert load_inventory(path).circuit_sizes == {"C01": 1}


@pytest.mark.parametrize(
    ("text", "seconds"), [("0s", 0), ("30s", 30), ("15m", 900), ("1h30m", 5400), ("2d", 172800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "1x", "m", "1h 30m", "-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**8))
def test_durations_round_trip(seconds: int) -> None:
    span = timedelta(seconds=seconds)
    assert parse_duration(format_duration(span)) == span
