"""End to end: a simulated month backfilled through the real pipeline into real InfluxDB, then
``luxtel energy report`` and ``luxtel export`` against the simulator's own truth.

One backfill (10 luminaires, 15-minute interval, March 2026, two controllers replaced and two
offline for hours) is shared by the module's tests: it takes about half a minute.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from luxtel.commands.energy import energy_app, export
from servers import InfluxDBServer, MosquittoServer, create_database, query, quote_ident
from simulator import SimulationConfig, build_plan, run_simulation
from simulator.physics import WH
from tests.support import RunningPipeline, count, make_settings, wait_until

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Month:
    config: SimulationConfig
    toml: Path
    truth: dict[str, dict[str, str]]
    faults: dict[str, str]
    tmp: Path


@pytest.fixture(scope="module")
def month(
    mosquitto: MosquittoServer, influxdb: InfluxDBServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Month]:
    tmp = tmp_path_factory.mktemp("energy")
    database = f"energy_{uuid.uuid4().hex[:8]}"
    root = f"t{uuid.uuid4().hex[:8]}/lighting"
    create_database(influxdb.url, database)
    config = SimulationConfig(
        devices=10,
        zones=2,
        circuits_per_zone=2,
        start=START,
        end=END,
        interval_s=900,
        faults="counter_reset=0.2,offline=0.2",
        mqtt_url=mosquitto.url,
        topic_root=root,
        connections="shared",
        client_id=f"sim-{uuid.uuid4().hex[:8]}",
        inventory_path=tmp / "inventory.csv",
        ground_truth_path=tmp / "faults.csv",
        energy_truth_path=tmp / "energy.csv",
    )
    settings = make_settings(tmp / "state", mosquitto.url, influxdb.url, database, root)
    with RunningPipeline(settings):
        summary = run_simulation(config)
        wait_until(
            lambda: count(influxdb.url, database, "telemetry") >= summary.readings,
            what="every reading in InfluxDB",
        )
    toml = tmp / "luxtel.toml"
    toml.write_text(
        f'[influx]\nurl = "{influxdb.url}"\ndatabase = "{database}"\n'
        f'[inventory]\npath = "{tmp / "inventory.csv"}"\n'
    )
    with (tmp / "energy.csv").open(newline="") as fh:
        truth = {row["device_id"]: row for row in csv.DictReader(fh)}
    with (tmp / "faults.csv").open(newline="") as fh:
        faults = {row["device_id"]: row["kind"] for row in csv.DictReader(fh)}
    yield Month(config, toml, truth, faults, tmp)
    query(influxdb.url, f"DROP DATABASE {quote_ident(database)}")


def _report(month: Month, *args: str) -> list[dict[str, Any]]:
    out = month.tmp / f"report-{uuid.uuid4().hex[:6]}.json"
    result = CliRunner().invoke(
        energy_app,
        [
            "report",
            "--from",
            "2026-03-01",
            "--to",
            "2026-04-01",
            "-c",
            str(month.toml),
            "--format",
            "json",
            "-o",
            str(out),
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(out.read_text())
    return rows


def _true_savings_wh(month: Month) -> dict[str, float]:
    """Baseline over the true burning time minus the true energy, between each device's first
    and last reading, from the simulator's physics."""
    plan = build_plan(month.config)
    out = {}
    for lum in plan.fleet:
        row = month.truth[lum.device_id]
        a = int(datetime.fromisoformat(row["first_ts"]).timestamp() * 1000)
        b = int(datetime.fromisoformat(row["last_ts"]).timestamp() * 1000)
        model = plan.schedule.model(lum.device_id)
        on_ms = energy = 0
        t = a
        while t < b:
            _, lit, _, power_cw, seg_end = model.segment(t)
            seg_end = min(seg_end, b)
            on_ms += (seg_end - t) if lit else 0
            energy += power_cw * (seg_end - t)
            t = seg_end
        out[lum.device_id] = lum.baseline_power_w * on_ms / 3_600_000 - energy / WH
    return out


def test_report_matches_the_simulators_energy_truth(month: Month) -> None:
    rows = {r["device"]: r for r in _report(month, "--by", "device")}
    assert set(rows) == set(month.truth)
    savings = _true_savings_wh(month)
    healthy = [d for d in month.truth if d not in month.faults]
    assert len(healthy) == 6
    for device in healthy:
        row, truth = rows[device], month.truth[device]
        assert row["method"] == "counter"
        assert row["metered_kwh"] * 1000 == pytest.approx(float(truth["energy_wh"]), rel=1e-3)
        assert row["unverified_kwh"] == pytest.approx(0, abs=1e-9)
        assert not row["gap"]
        assert row["resets"] == 0
        assert 99 <= row["completeness_pct"] <= 101
        assert row["savings_kwh"] * 1000 == pytest.approx(savings[device], rel=0.01)
        assert 50 < row["mean_dim_pct"] < 100
        assert 300 < row["burning_h"] < 400  # March nights in Shanghai, about 11.5 h each


def test_resets_and_outages_are_flagged_and_never_a_saving(month: Month) -> None:
    rows = {r["device"]: r for r in _report(month, "--by", "device")}
    savings = _true_savings_wh(month)
    resets = [d for d, kind in month.faults.items() if kind == "counter_reset"]
    offline = [d for d, kind in month.faults.items() if kind == "offline"]
    assert len(resets) == 2
    assert len(offline) == 2
    for device in resets:
        row, truth = rows[device], month.truth[device]
        # The counters show every Wh but those drawn between the last reading and the reset.
        counted = float(truth["counter_energy_wh"])
        assert row["metered_kwh"] * 1000 == pytest.approx(counted, rel=1e-6)
        hidden = float(truth["energy_wh"]) - counted
        assert -0.001 <= hidden < 0.01 * counted  # the truth file rounds to the mWh
        assert row["resets"] == 1
        assert row["gap"]
        assert row["verified_kwh"] + row["unverified_kwh"] == pytest.approx(row["metered_kwh"])
    for device in offline:
        row, truth = rows[device], month.truth[device]
        # Silent for hours, but the counter kept counting: the energy is all there.
        assert row["metered_kwh"] * 1000 == pytest.approx(float(truth["energy_wh"]), rel=1e-3)
        assert row["gap"]
        assert row["readings"] < row["expected"] - 2  # an hour at least: 4 readings or more
    for device in resets + offline:
        assert rows[device]["savings_kwh"] * 1000 <= savings[device] * 1.005


def test_days_add_up_and_the_plot_and_settlement_are_written(month: Month) -> None:
    plot, settlement = month.tmp / "report.png", month.tmp / "settlement.csv"
    days = _report(month, "--by", "day", "--plot", str(plot), "--settlement", str(settlement))
    devices = _report(month, "--by", "device")
    zones = _report(month, "--by", "zone")
    assert len(days) == 31
    total = sum(r["metered_kwh"] for r in devices)
    # Rows are rounded to the Wh's thousandth: sums of rows agree to that.
    assert sum(r["metered_kwh"] for r in days) == pytest.approx(total, abs=1e-4)
    assert sum(r["metered_kwh"] for r in zones) == pytest.approx(total, abs=1e-4)
    assert sum(r["savings_kwh"] for r in days) == pytest.approx(
        sum(r["savings_kwh"] for r in devices), abs=1e-4
    )
    assert [d["gap"] for d in days].count(True) >= 2
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with settlement.open(newline="") as fh:
        half_hours = list(csv.DictReader(fh))
    assert len(half_hours) == 4 * 31 * 48
    assert sum(float(r["kwh"]) for r in half_hours) == pytest.approx(total, rel=1e-6)
    assert {r["settlement_period"] for r in half_hours} == {str(n) for n in range(1, 49)}


def test_the_report_waits_for_its_queries_with_the_energy_timeout_not_the_write_timeout(
    month: Month,
) -> None:
    """`influx.timeout_s` is short so that ingest spools soon; a report's queries read a city's
    month and take longer than any write: they get `energy.query_timeout_s`. Here no request
    could finish within the write timeout (a microsecond)."""
    short = month.tmp / "short-writes.toml"
    short.write_text(
        month.toml.read_text().replace("[influx]\n", "[influx]\ntimeout_s = 0.000001\n")
        + "[energy]\nquery_timeout_s = 120\n"
    )
    assert _report(month) == _report(replace(month, toml=short))


def test_a_zone_that_is_not_an_identifier_is_refused(month: Month) -> None:
    result = CliRunner().invoke(
        energy_app,
        [
            "report",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-02",
            "-c",
            str(month.toml),
            "--zone",
            "north' OR 1=1 --",
        ],
    )
    assert result.exit_code == 2
    assert "not an identifier" in result.output


def _export(month: Month, *args: str) -> None:
    app = typer.Typer()
    app.command()(export)
    result = CliRunner().invoke(
        app,
        [
            "telemetry",
            "--from",
            "2026-03-01",
            "--to",
            "2026-04-01",
            "-c",
            str(month.toml),
            *list(args),
        ],
    )
    assert result.exit_code == 0, result.output


def test_export_writes_every_reading_to_csv_and_parquet(month: Month) -> None:
    device = sorted(month.truth)[0]
    csv_path, parquet_path = month.tmp / "one.csv", month.tmp / "all.parquet"
    _export(month, "--device", device, "-o", str(csv_path))
    with csv_path.open(newline="") as fh:
        lines = list(csv.DictReader(fh))
    assert len(lines) == int(month.truth[device]["readings"])
    assert {line["device_id"] for line in lines} == {device}
    assert lines[0]["time"].endswith("Z")
    assert float(lines[-1]["energy_wh"]) == float(month.truth[device]["last_energy_wh"])
    _export(month, "--format", "parquet", "-o", str(parquet_path))
    table = pq.read_table(parquet_path)
    assert table.num_rows == sum(int(t["readings"]) for t in month.truth.values())
    assert str(table.schema.field("lamp_on").type) == "bool"
    assert str(table.schema.field("dim_pct").type) == "int64"
