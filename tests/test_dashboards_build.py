"""The committed dashboards are what the code builds; the build is reproducible; Grafana's InfluxQL
interpolation as `dashboards.interpolate` reproduces it; the health dashboard asks for metrics
luxtel exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from dashboards.build import DEFAULT_OUT, build_dashboards, render, write_dashboards
from dashboards.common import DAY_BURNING_RULE, LAMP_FAILURE_RULE
from dashboards.interpolate import TimeRange, Variable, escape_regex, interpolate
from dashboards.inventory import Place, make_inventory, read_inventory
from ingest.metrics import IngestMetrics
from luxtel.commands.dashboards import dashboards_app
from rules.runtime.journal_writer import JournalMetrics
from rules.runtime.state_points import STATE_CODES
from simulator.fleet import build_fleet, write_inventory_csv


def test_committed_dashboards_equal_what_the_code_builds() -> None:
    built = build_dashboards()
    committed = sorted(path.name for path in DEFAULT_OUT.glob("*.json"))
    assert committed == sorted(built)
    for name, model in built.items():
        assert (DEFAULT_OUT / name).read_text(encoding="utf-8") == render(model), (
            f"{name} is stale: run `luxtel dashboards build`"
        )


def test_build_check_flags_a_stale_file(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(dashboards_app, ["build", "-o", str(tmp_path)]).exit_code == 0
    assert runner.invoke(dashboards_app, ["build", "-o", str(tmp_path), "--check"]).exit_code == 0
    (tmp_path / "energy.json").write_text("{}\n")
    result = runner.invoke(dashboards_app, ["build", "-o", str(tmp_path), "--check"])
    assert result.exit_code == 1


def test_an_inventory_gives_circuits_reproducibly(tmp_path: Path) -> None:
    fleet = build_fleet(60, zones=2, circuits_per_zone=3, seed=7)
    write_inventory_csv(tmp_path / "inventory.csv", fleet)
    inventory = read_inventory(tmp_path / "inventory.csv")
    first = write_dashboards(tmp_path / "a", inventory)
    second = write_dashboards(tmp_path / "b", read_inventory(tmp_path / "inventory.csv"))
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert len(inventory.circuits) == 6


def _geomap(model: dict[str, Any]) -> dict[str, Any]:
    (panel,) = [p for p in model["panels"] if p["type"] == "geomap"]
    found: dict[str, Any] = panel
    return found


def test_the_map_needs_no_inventory_and_colours_by_the_engines_state_codes() -> None:
    fleet = build_fleet(10, zones=2, circuits_per_zone=1, seed=7)
    places = [Place(f.device_id, f.zone, f.circuit, f.lat, f.lon) for f in fleet]
    inventory = make_inventory(places, [100.0] * len(places), {900: len(places)})
    without = _geomap(build_dashboards()["city-overview.json"])
    assert _geomap(build_dashboards(inventory)["city-overview.json"]) == without
    assert [t["datasource"]["type"] for t in without["targets"]] == ["influxdb"]
    assert '"luminaire_state"' in without["targets"][0]["query"]
    (override,) = without["fieldConfig"]["overrides"]
    assert override["matcher"] == {"id": "byName", "options": "state_code"}
    (mapping,) = next(p["value"] for p in override["properties"] if p["id"] == "mappings")
    texts = {int(code): option["text"] for code, option in mapping["options"].items()}
    assert texts == {code: state for state, code in STATE_CODES.items()}
    assert without["options"]["tooltip"]["mode"] == "details"


def test_uids_and_panel_ids_are_unique() -> None:
    models = build_dashboards().values()
    assert len({m["uid"] for m in models}) == len(models)
    for model in models:
        ids = [p["id"] for p in model["panels"]]
        assert ids == list(range(1, len(ids) + 1))


def test_health_dashboard_asks_only_for_exported_metrics() -> None:
    metrics = IngestMetrics()
    metrics.rejected.labels(reason="wrong_type").inc()  # labelled series exist once used
    metrics.queue_depth.labels(queue="decoded").set(1)
    metrics.disk_full.labels(what="spool").set(0)
    registry = metrics.registry
    JournalMetrics(registry)  # the rules' lag and journal, on the same /metrics
    exported = {sample.name for metric in registry.collect() for sample in metric.samples}
    model = build_dashboards()["luxtel-health.json"]
    asked = {
        name
        for panel in model["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bluxtel_\w+", target["expr"])
    }
    assert len(asked) >= 9
    assert asked <= exported, asked - exported


def test_the_rules_the_panels_count_are_shipped() -> None:
    rules = (DEFAULT_OUT.parent.parent / "rules" / "streetlight.yaml").read_text()
    for rule in (LAMP_FAILURE_RULE, DAY_BURNING_RULE):
        assert re.search(rf"(?m)^\s*- name: {rule}\b", rules), rule


T = TimeRange(1_000, 2_000, "5m", 300_000)


@pytest.mark.parametrize(
    ("query", "variables", "expected"),
    [
        ("WHERE $timeFilter", {}, "WHERE time >= 1000ms and time <= 2000ms"),
        ("GROUP BY time($__interval)", {}, "GROUP BY time(5m)"),
        ("$__interval_ms $__from $__to", {}, "300000 1000 2000"),
        (
            '"zone" =~ /^$zone$/',
            {"zone": Variable(("a.b", "c"), multi=True)},
            '"zone" =~ /^(a\\.b|c)$/',
        ),
        ('"zone" =~ /^$zone$/', {"zone": Variable("a.b", multi=True)}, '"zone" =~ /^a\\.b$/'),
        ('"d" =~ /^$device$/', {"device": Variable("x/y")}, '"d" =~ /^x\\/y$/'),
        ("now() - $window", {"window": Variable("1h")}, "now() - 1h"),
        ("'$device'", {"device": Variable("a.b")}, "'a.b'"),
        ("/^(${c:raw})$/", {"c": Variable("a\\-1|b")}, "/^(a\\-1|b)$/"),
        ("/^(${c:raw})$/", {"c": Variable.all(".*")}, "/^(.*)$/"),
        ("${c:text}", {"c": Variable.all(".*")}, "All"),
        ("[[zone]] ${zone}", {"zone": Variable("n")}, "n n"),
        ("* $baseline_w", {"baseline_w": Variable("150.5")}, "* 150.5"),
        ("$unknown stays", {}, "$unknown stays"),
    ],
)
def test_interpolate_table(query: str, variables: dict[str, Variable], expected: str) -> None:
    assert interpolate(query, variables, T) == expected


_VALUES = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=5, unique=True)


@given(_VALUES, st.text(max_size=12))
def test_a_multi_value_regex_matches_exactly_its_values(values: list[str], other: str) -> None:
    query = interpolate("/^$zone$/", {"zone": Variable(tuple(values), multi=True)}, T)
    pattern = re.compile(query[1:-1].replace("\\/", "/"), re.DOTALL)
    assert all(pattern.fullmatch(value) for value in values)
    assert bool(pattern.fullmatch(other)) == (other in values)


@given(st.text(max_size=20))
def test_escape_regex_matches_the_literal_text(text: str) -> None:
    assert re.fullmatch(escape_regex(text).replace("\\/", "/"), text, re.DOTALL)
