"""Every InfluxQL query of every dashboard runs against a real InfluxDB holding a small city with
hand-written readings, status and alerts, and the `luminaire_state` snapshot the rules engine's
own code (`rules.runtime.state_points`) writes from the matching engine state: none fails, each
returns
data, and the key panels give the values worked out by hand below."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dashboards.build import build_dashboards
from dashboards.interpolate import TimeRange, Variable, interpolate
from dashboards.inventory import Inventory, Place, circuit_regex, make_inventory
from energy.inventory import Luminaire
from energy.retention import RetentionConfig, ensure_retention
from energy.rollup_store import RollupConfig, build
from influx.client import InfluxTarget, InfluxWriter
from rules.evaluation import inventory as rules_inventory
from rules.evaluation.alerts import Alert
from rules.evaluation.evaluator import EngineState
from rules.evaluation.views import DeviceView
from rules.runtime.state_points import state_lines
from servers import InfluxDBServer, query, write_points

pytestmark = pytest.mark.integration

MIN = 60_000
# device: zone, circuit, lamp_on, power W, energy counters at now-50/-35/-20/-5 min
FLEET: dict[str, tuple[str, str, bool, float, tuple[float, ...]]] = {
    "n1": ("north", "C01", True, 40.0, (1000, 1010, 1020, 1030)),
    "n2": ("north", "C01", False, 0.0, (500, 500, 500, 500)),
    "n3": ("north", "C02", True, 60.0, (2000, 2015, 0, 15)),  # a counter reset: 30 Wh, not −1985
    "s1": ("south", "C03", True, 100.0, (10, 35, 60, 85)),
    "s3": ("south", "C03", False, 0.0, (300, 300, 300, 300)),
}
SILENT = ("s2", "south", "C03")
"""Reported once, 3 h ago: outside the 1 h window and the 2 h time range."""
# device, zone, rule, severity, state, minutes ago
ALERTS = [
    ("n2", "north", "lamp_failure", "critical", "firing", 30),
    ("n3", "north", "lamp_failure", "major", "firing", 45),
    ("s1", "south", "day_burning", "warning", "firing", 40),
    ("s1", "south", "day_burning", "warning", "resolved", 10),
    ("n1", "north", "day_burning", "warning", "firing", 20),
]
MAP = {
    "n1": ("alarm", 3, 1),
    "n2": ("alarm", 3, 1),
    "n3": ("alarm", 3, 1),
    "s1": ("on", 2, 0),
    "s2": ("silent", 0, 0),
    "s3": ("off", 1, 0),
}
"""What the map shows: (state, state_code, firing) — firing alerts first, then silence (s2's last
reading is 3 h old, 3 × its 15 min interval is 45 min), then the last reading's lamp_on."""


def _lines(now: int) -> list[str]:
    lines = []
    for device, (zone, _circuit, on, power, counters) in FLEET.items():
        for offset, energy in zip((50, 35, 20, 5), counters, strict=True):
            lines.append(
                f"telemetry,device_id={device},zone={zone} lamp_on={str(on).lower()},"
                f"power_w={power},energy_wh={float(energy)},voltage_v=230.0,current_a=0.2,"
                f"power_factor=0.95,dim_pct=100i,driver_temp_c=41.5 {now - offset * MIN}"
            )
    device, zone, _ = SILENT
    lines.append(
        f"telemetry,device_id={device},zone={zone} lamp_on=false,power_w=0.0,energy_wh=7.0 "
        f"{now - 180 * MIN}"
    )
    lines.append(
        f'status,device_id=n1,zone=north online=true,firmware="2.3.1",faults="" {now - 30 * MIN}'
    )

    for device, zone, rule, severity, state, ago in ALERTS:
        lines.append(
            f"alerts,device_id={device},rule={rule},severity={severity},zone={zone} "
            f'state="{state}",value=1.0,summary="{rule} on {device}" {now - ago * MIN}'
        )
    return lines


def _places() -> list[Place]:
    places = [
        Place(d, z, c, 51.5 + i / 1000, -0.1) for i, (d, (z, c, *_)) in enumerate(FLEET.items())
    ]
    places.append(Place(SILENT[0], SILENT[1], SILENT[2], 51.6, -0.1))
    return places


def _inventory() -> Inventory:
    places = _places()
    return make_inventory(places, [100.0] * len(places), {900: len(places)})


def _engine_state(now: datetime) -> EngineState:
    """What the rules engine knows of the same city at `now`: each device's last reading (the
    readings above, 5 min ago; s2's 3 h ago) and the alerts whose last transition is firing."""
    devices = {
        d: DeviceView(zone, now - timedelta(minutes=5), (on,))
        for d, (zone, _, on, *_) in FLEET.items()
    }
    device, zone, _ = SILENT
    devices[device] = DeviceView(zone, now - timedelta(minutes=180), (False,))
    last: dict[tuple[str, str], Alert] = {}
    for device, zone, rule, severity, state, ago in sorted(ALERTS, key=lambda a: -a[5]):
        since = now - timedelta(minutes=ago)
        fired = since if state == "firing" else None
        last[(rule, device)] = Alert(rule, device, zone, "", severity, (), 1.0, "", since, fired)
    alerts = {key: alert for key, alert in last.items() if alert.fired_at is not None}
    return EngineState(now - timedelta(hours=6), alerts, {}, devices)


def _state_lines(now_ms: int) -> list[str]:
    """The `luminaire_state` snapshot, written by the engine's own code."""
    devices = [
        rules_inventory.Device(
            device_id=p.device_id,
            zone=p.zone,
            circuit=p.circuit,
            lat=p.lat,
            lon=p.lon,
            rated_power_w=100.0,
            baseline_power_w=150.0,
            report_interval_s=900,
        )
        for p in _places()
    ]
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    return list(state_lines(_engine_state(now), rules_inventory.Inventory.of(devices), now))


BASELINE_W = {"n1": 150.0, "n3": 250.0, "s1": 100.0}
"""Each luminaire's own baseline (the energy dashboard's savings use them); others 120 W."""


def _energy_inventory() -> dict[str, Luminaire]:
    return {
        p.device_id: Luminaire(
            device_id=p.device_id,
            zone=p.zone,
            circuit=p.circuit,
            baseline_power_w=BASELINE_W.get(p.device_id, 120.0),
            report_interval_s=900,
        )
        for p in _places()
    }


async def _roll_up(url: str, db: str, now: int) -> None:
    """The hourly rollups of the last hours, by luxtel's own code (what `luxtel run` keeps)."""
    async with InfluxWriter(InfluxTarget(url, db)) as writer:
        await ensure_retention(writer, RetentionConfig())
        await build(writer, _energy_inventory(), now - 4 * 60 * MIN, now + MIN, RollupConfig())


@pytest.fixture
def city(influxdb: InfluxDBServer, influx_db: str) -> tuple[str, str, int]:
    now = int(time.time() * 1000)
    write_points(influxdb.url, influx_db, _lines(now) + _state_lines(now - MIN))
    asyncio.run(_roll_up(influxdb.url, influx_db, now))
    return influxdb.url, influx_db, now


def _variables(**overrides: Variable) -> dict[str, Variable]:
    base = {
        "zone": Variable(("north", "south"), multi=True),
        "circuit": Variable.all(".*"),
        "device": Variable("n1"),
        "window": Variable("1h"),
        "baseline_w": Variable("100"),
        "report_interval_s": Variable("900"),
    }
    return {**base, **overrides}


def _targets() -> Iterator[tuple[str, str, str]]:
    """(dashboard, panel title, raw InfluxQL) for every InfluxDB target and annotation."""
    for name, model in build_dashboards(_inventory()).items():
        for panel in model["panels"]:
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("type") == "influxdb":
                    yield name, panel["title"], target["query"]
        for annotation in model["annotations"].get("list", []):
            yield name, annotation["name"], annotation["target"]["query"]
        for variable in model["templating"].get("list", []):
            if variable["type"] == "query" and variable["datasource"]["type"] == "influxdb":
                yield name, f"variable {variable['name']}", variable["query"]


def _run(url: str, db: str, statement: str) -> list[dict[str, Any]]:
    answer = query(url, statement, db=db)
    return [series for result in answer["results"] for series in result.get("series", [])]


def _values(series: list[dict[str, Any]]) -> list[Any]:
    return [row[-1] for s in series for row in s["values"]]


def _range(now: int) -> TimeRange:
    return TimeRange(now - 120 * MIN, now, "5m", 5 * MIN)


def _days(now: int) -> TimeRange:
    """Two days back: the energy panels' points stand at their civil day's start."""
    return TimeRange(now - 48 * 60 * MIN, now, "5m", 5 * MIN)


def test_every_influxql_query_runs_and_returns_data(city: tuple[str, str, int]) -> None:
    url, db, now = city
    targets = list(_targets())
    assert len(targets) >= 25
    empty = []
    for dashboard, title, raw in targets:
        span = _days(now) if dashboard == "energy.json" else _range(now)
        statement = interpolate(raw, _variables(), span)
        assert not re.search(r"\$\w|\$\{|\[\[", statement), (dashboard, title, statement)
        if not _run(url, db, statement):  # raises InfluxDBError on any error
            empty.append((dashboard, title))
    assert empty == []


@pytest.mark.parametrize(
    ("title", "variables", "expected"),
    [
        ("Luminaires reporting", {}, [5]),
        ("Lamps on now", {}, [3]),
        ("Power now", {}, [0.2]),
        ("Power now", {"zone": Variable("north", multi=True)}, [0.1]),
        ("Energy today", {}, [0.135]),
        ("Energy this month", {"zone": Variable(("south",), multi=True)}, [0.075]),
    ],
)
def test_city_overview_gives_known_values(
    city: tuple[str, str, int], title: str, variables: dict[str, Variable], expected: list[float]
) -> None:
    url, db, now = city
    model = build_dashboards(_inventory())["city-overview.json"]
    (panel,) = [p for p in model["panels"] if p["title"] == title]
    statement = interpolate(panel["targets"][0]["query"], _variables(**variables), _range(now))
    assert _values(_run(url, db, statement)) == pytest.approx(expected)


def _query_of(dashboard: str, title: str, ref_id: str = "A") -> str:
    model = build_dashboards(_inventory())[dashboard]
    (panel,) = [p for p in model["panels"] if p["title"] == title]
    (target,) = [t for t in panel["targets"] if t["refId"] == ref_id]
    return str(target["query"])


def test_active_alerts_by_severity_counts_only_firing(city: tuple[str, str, int]) -> None:
    url, db, now = city
    statement = interpolate(
        _query_of("city-overview.json", "Active alerts by severity"), _variables(), _range(now)
    )
    counts = {s["tags"]["severity"]: s["values"][0][1] for s in _run(url, db, statement)}
    assert counts == {"critical": 1, "major": 1, "warning": 1}


def test_zone_dashboard_lamps_out_per_zone_and_circuit(city: tuple[str, str, int]) -> None:
    url, db, now = city
    c02 = Variable(circuit_regex(_inventory().circuits["C02"]))
    model = build_dashboards(_inventory())["zone-circuit.json"]
    (panel,) = [p for p in model["panels"] if p["title"] == "Lamps out" and p["type"] == "table"]
    cases = [
        ({"zone": Variable("north", multi=True)}, ["n2", "n3"]),
        ({"zone": Variable("south", multi=True)}, []),
        ({"circuit": c02}, ["n3"]),
    ]
    for overrides, devices in cases:
        statement = interpolate(panel["targets"][0]["query"], _variables(**overrides), _range(now))
        assert sorted(s["tags"]["device_id"] for s in _run(url, db, statement)) == devices


def test_circuit_variable_selects_its_devices(city: tuple[str, str, int]) -> None:
    url, db, now = city
    model = build_dashboards(_inventory())["zone-circuit.json"]
    (circuit,) = [v for v in model["templating"]["list"] if v["name"] == "circuit"]
    options = {o["text"]: o["value"] for o in circuit["options"]}
    assert set(options) == {"All", "C01", "C02", "C03"}
    statement = interpolate(
        _query_of("zone-circuit.json", "Energy per hour, circuit ${circuit:text}"),
        _variables(circuit=Variable(options["C01"])),
        _range(now),
    )
    hours = [v for v in _values(_run(url, db, statement)) if v is not None]  # empty hours: null
    assert sum(hours) == pytest.approx(0.03)  # n1 30 Wh, n2 0


def test_energy_dashboard_known_values(city: tuple[str, str, int]) -> None:
    url, db, now = city
    energy = interpolate(
        _query_of("energy.json", "Energy per zone per day"), _variables(), _days(now)
    )
    per_zone: dict[str, float] = {}
    for series in _run(url, db, energy):
        zone = series["tags"]["zone"]
        per_zone[zone] = per_zone.get(zone, 0) + sum(v[1] or 0 for v in series["values"])
    assert per_zone == pytest.approx({"north": 0.06, "south": 0.075})
    hours = interpolate(
        _query_of("energy.json", "Burning hours per zone per day"), _variables(), _days(now)
    )
    per_zone = {}
    for series in _run(url, db, hours):
        zone = series["tags"]["zone"]
        per_zone[zone] = per_zone.get(zone, 0) + sum(v[1] or 0 for v in series["values"])
    # Verified burning time between the readings: n1 and s1 lit for 45 min, n3 for the 30 min
    # around its reset (the reset's own interval is not verified).
    assert per_zone == pytest.approx({"north": 1.25, "south": 0.75})
    baseline = interpolate(
        _query_of("energy.json", "Savings against the baseline", "A"), _variables(), _days(now)
    )
    # Each luminaire's own baseline: 0.75 h x 150 W + 0.5 h x 250 W + 0.75 h x 100 W.
    assert sum(_values(_run(url, db, baseline))) == pytest.approx(0.3125)
    metered = interpolate(
        _query_of("energy.json", "Savings against the baseline", "B"), _variables(), _days(now)
    )
    assert sum(_values(_run(url, db, metered))) == pytest.approx(0.135)  # n1 30 + n3 30 + s1 75 Wh
    completeness = interpolate(
        _query_of("energy.json", "Data completeness per zone per day"), _variables(), _days(now)
    )
    # Per zone and civil day, in percent. Just after midnight the day begun has no reading yet
    # (the readings are 5-50 min old): 0 % there, the day before holds them.
    by_zone: dict[str, list[float]] = {}
    for series in _run(url, db, completeness):
        values = [row[1] for row in series["values"] if row[1] is not None]
        by_zone.setdefault(series["tags"]["zone"], []).extend(values)
    assert set(by_zone) == {"north", "south"}
    assert all(0 <= v <= 100 for values in by_zone.values() for v in values), by_zone
    assert all(max(values) > 0 for values in by_zone.values()), by_zone


def test_luminaire_dashboard_known_values(city: tuple[str, str, int]) -> None:
    url, db, now = city
    power = interpolate(_query_of("luminaire.json", "Power"), _variables(), _range(now))
    assert set(_values(_run(url, db, power))) == {40.0}
    status = interpolate(
        _query_of("luminaire.json", "Status and firmware"), _variables(), _range(now)
    )
    (series,) = _run(url, db, status)
    row = dict(zip(series["columns"], series["values"][0], strict=True))
    assert (row["online"], row["firmware"]) == (True, "2.3.1")


@pytest.mark.parametrize("zones", [("north", "south"), ("south",)])
def test_city_map_colours_each_luminaire_by_its_state(
    city: tuple[str, str, int], zones: tuple[str, ...]
) -> None:
    url, db, now = city
    statement = interpolate(
        _query_of("city-overview.json", "Luminaires by state"),
        _variables(zone=Variable(zones, multi=True)),
        _range(now),
    )
    shown: dict[str, tuple[str, int, int]] = {}
    places = {p.device_id: p for p in _places()}
    for series in _run(url, db, statement):
        tags = series["tags"]
        (values,) = series["values"]
        row = dict(zip(series["columns"], values, strict=True))
        place = places[tags["device_id"]]
        assert (tags["zone"], tags["circuit"]) == (place.zone, place.circuit)
        assert (row["lat"], row["lon"]) == pytest.approx((place.lat, place.lon))
        shown[tags["device_id"]] = (row["state"], row["state_code"], row["firing"])
    assert shown == {d: v for d, v in MAP.items() if places[d].zone in zones}
