"""The simulator's physics as pure functions: dusk and dawn, dimming, power, and an energy counter
that is the exact integral of the power."""

from __future__ import annotations

import csv
import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from astral import Observer
from astral.sun import sunrise, sunset
from hypothesis import given, settings
from hypothesis import strategies as st

from models.inventory import INVENTORY_COLUMNS
from simulator.clock import from_ms, local_day, rfc3339, to_ms
from simulator.dimming import DimmingProfile
from simulator.episodes import CIRCUIT_OUTAGE, CYCLING, DAY_BURNING, LAMP_FAILURE, Episode
from simulator.fleet import ID_PATTERN, Luminaire, build_fleet
from simulator.fleet import write_inventory_csv as write_inventory
from simulator.physics import (
    WH,
    EnergyCounter,
    LampModel,
    energy_truth_wh,
    is_lit,
    lit_window,
    power_factor,
    wh_reported,
)
from simulator.solar import dark_intervals

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHANGHAI_CENTRE = (31.2304, 121.4737)
HARBIN = (45.75, 126.65)
SANYA = (18.25, 109.51)
PROFILE = DimmingProfile.parse("23:00=50,05:00=100")


def _lum(
    lat: float = SHANGHAI_CENTRE[0], lon: float = SHANGHAI_CENTRE[1], **kw: object
) -> Luminaire:
    base = build_fleet(1, lat, lon, zones=1, circuits_per_zone=1, seed=3)[0]
    return replace(base, lat=lat, lon=lon, **kw)  # type: ignore[arg-type]


def _astral(lat: float, lon: float, day: date) -> tuple[datetime, datetime]:
    observer = Observer(latitude=lat, longitude=lon)
    on = sunset(observer, day, SHANGHAI)
    off = sunrise(observer, day + timedelta(days=1), SHANGHAI)
    return on, off


@pytest.mark.parametrize("day", [date(2026, 6, 21), date(2026, 12, 21), date(2026, 3, 20)])
@pytest.mark.parametrize("place", [SHANGHAI_CENTRE, HARBIN, SANYA])
def test_on_at_sunset_off_at_sunrise_as_astral_says(place: tuple[float, float], day: date) -> None:
    lat, lon = place
    on, off = lit_window(lat, lon, day, SHANGHAI)
    astral_on, astral_off = _astral(lat, lon, day)
    assert on.tzinfo is not None
    assert abs(on - astral_on) < timedelta(milliseconds=1)
    assert abs(off - astral_off) < timedelta(milliseconds=1)
    lum = _lum(lat, lon)
    second = timedelta(seconds=1)
    assert not is_lit(lum, on - second, SHANGHAI)
    assert is_lit(lum, on + second, SHANGHAI)
    assert is_lit(lum, off - second, SHANGHAI)
    assert not is_lit(lum, off + second, SHANGHAI)
    model = LampModel(lum, PROFILE, SHANGHAI)
    assert model.segment(to_ms(on) - 1000)[1] is False
    assert model.segment(to_ms(on) + 1000)[1] is True
    assert model.segment(to_ms(off) + 1000)[1] is False


def test_shanghai_midsummer_and_midwinter_nights() -> None:
    summer_on, summer_off = lit_window(*SHANGHAI_CENTRE, date(2026, 6, 21), SHANGHAI)
    winter_on, winter_off = lit_window(*SHANGHAI_CENTRE, date(2026, 12, 21), SHANGHAI)
    assert summer_on.astimezone(SHANGHAI).strftime("%H:%M") == "19:01"
    assert summer_off.astimezone(SHANGHAI).strftime("%H:%M") == "04:50"
    assert timedelta(hours=9, minutes=40) < summer_off - summer_on < timedelta(hours=10)
    assert (
        timedelta(hours=13, minutes=50) < winter_off - winter_on < timedelta(hours=14, minutes=10)
    )


def test_harbin_and_sanya_differ() -> None:
    """The far north has the short summer nights and the long winter ones; each city its own."""
    h_summer = lit_window(*HARBIN, date(2026, 6, 21), SHANGHAI)
    s_summer = lit_window(*SANYA, date(2026, 6, 21), SHANGHAI)
    h_winter = lit_window(*HARBIN, date(2026, 12, 21), SHANGHAI)
    s_winter = lit_window(*SANYA, date(2026, 12, 21), SHANGHAI)
    assert h_summer[1] - h_summer[0] < s_summer[1] - s_summer[0] - timedelta(hours=2)
    assert h_winter[1] - h_winter[0] > s_winter[1] - s_winter[0] + timedelta(hours=2)
    assert h_summer[0] != s_summer[0]
    moment = datetime(2026, 12, 21, 9, 0, tzinfo=UTC)  # 17:00 in China: dark in Harbin only
    assert is_lit(_lum(*HARBIN), moment, SHANGHAI)
    assert not is_lit(_lum(*SANYA), moment, SHANGHAI)


def test_polar_day_and_night() -> None:
    oslo = ZoneInfo("Europe/Oslo")
    tromso = (69.65, 18.96)
    assert dark_intervals(*tromso, date(2026, 6, 21), oslo) == ()
    ((start, end),) = dark_intervals(*tromso, date(2026, 12, 21), oslo)
    assert end - start == 24 * 3_600_000
    with pytest.raises(ValueError, match="does not set"):
        lit_window(*tromso, date(2026, 6, 21), oslo)
    with pytest.raises(ValueError, match="does not set"):
        lit_window(*tromso, date(2026, 12, 21), oslo)


def test_local_days_around_dst() -> None:
    paris = ZoneInfo("Europe/Paris")
    t = to_ms(datetime(2026, 3, 29, 12, 0, tzinfo=paris))
    day, start, end = local_day(t, paris)
    assert day == date(2026, 3, 29)
    assert end - start == 23 * 3_600_000
    assert local_day(start, paris)[0] == day
    assert local_day(end, paris)[0] == date(2026, 3, 30)


def test_times_are_utc_ms() -> None:
    t = datetime(2026, 6, 21, 19, 1, 4, 568_400, tzinfo=SHANGHAI)
    assert rfc3339(to_ms(t)) == "2026-06-21T11:01:04.568Z"
    assert from_ms(to_ms(t)) == t.replace(microsecond=568_000)
    with pytest.raises(ValueError, match="naive"):
        to_ms(datetime(2026, 6, 21, 12, 0))


@pytest.mark.parametrize(
    ("spec", "minute", "level"),
    [
        ("23:00=50,05:00=100", 19 * 60, 100),
        ("23:00=50,05:00=100", 23 * 60, 50),
        ("23:00=50,05:00=100", 2 * 60, 50),
        ("23:00=50,05:00=100", 5 * 60, 100),
        ("05:00=100, 23:00=50", 22 * 60 + 59, 100),
        ("00:00=30", 12 * 60, 30),
        ("", 0, 100),
        ("21:30=70,00:00=40,04:30=100", 22 * 60, 70),
    ],
)
def test_dimming_calendar(spec: str, minute: int, level: int) -> None:
    assert DimmingProfile.parse(spec).level_at_minute(minute) == level


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("23:00", "not HH:MM=PCT"),
        ("23:00=fifty", "not HH:MM=PCT"),
        ("25:00=50", "no such time"),
        ("23:00=150", "0–100"),
        ("23:00=50,23:00=60", "repeats"),
    ],
)
def test_dimming_calendar_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DimmingProfile.parse(spec)


def test_dimming_follows_local_civil_time() -> None:
    model = LampModel(_lum(), PROFILE, SHANGHAI)

    def at(day: int, h: int, m: int) -> int:
        return to_ms(datetime(2026, 12, day, h, m, tzinfo=SHANGHAI))

    assert model.segment(at(21, 22, 59))[2] == 100
    assert model.segment(at(21, 23, 0))[2] == 50
    assert model.segment(at(22, 4, 59))[2] == 50
    assert model.segment(at(22, 5, 0))[2] == 100  # still dark in December
    assert model.segment(at(22, 12, 0))[1:4] == (False, 0, 0)
    rated = model.lum.rated_power_w * 100
    full, half = model.segment(at(21, 22, 30))[3], model.segment(at(21, 23, 30))[3]
    assert 0.97 * rated <= full <= 1.03 * rated
    assert 0.97 * rated / 2 <= half <= 1.03 * rated / 2


def test_power_factor_falls_when_dimmed() -> None:
    levels = [power_factor(d) for d in (100, 75, 50, 25, 10)]
    assert levels == sorted(levels, reverse=True)
    assert 0.95 < levels[0] <= 1.0
    assert levels[-1] < 0.75


_DAY0 = to_ms(datetime(2026, 6, 20, tzinfo=UTC))
_SPAN = 3 * 24 * 3_600_000

_setpoints = st.dictionaries(
    st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
    st.integers(0, 100),
    max_size=4,
)
_episode = st.tuples(
    st.sampled_from([LAMP_FAILURE, DAY_BURNING, CYCLING, CIRCUIT_OUTAGE]),
    st.integers(0, _SPAN),
    st.integers(60_000, 12 * 3_600_000),
)


@st.composite
def _models(draw: st.DrawFn) -> LampModel:
    points = draw(_setpoints)
    spec = ",".join(f"{h:02d}:{m:02d}={v}" for (h, m), v in points.items())
    lum = _lum(report_interval_s=draw(st.sampled_from([60, 300, 900, 3600])))
    episodes = [
        Episode(lum.device_id, lum.zone, lum.circuit, kind, _DAY0 + s, _DAY0 + s + d, level)
        for kind, s, d in draw(st.lists(_episode, max_size=3))
        for level in [{LAMP_FAILURE: 0.05, CYCLING: 240_000.0}.get(kind, 0.0)]
    ]
    return LampModel(
        lum, DimmingProfile.parse(spec), SHANGHAI, episodes, seed=draw(st.integers(0, 9))
    )


def _segments(model: LampModel, t0: int, t1: int) -> list[tuple[int, int, int]]:
    out = []
    t = t0
    while t < t1:
        _, _, _, p, end = model.segment(t)
        out.append((t, min(end, t1), p))
        t = min(end, t1)
    return out


@settings(max_examples=60, deadline=None)
@given(
    model=_models(),
    reports=st.lists(st.integers(0, _SPAN), min_size=1, max_size=40, unique=True),
    resets=st.lists(st.integers(0, _SPAN), max_size=2),
    initial=st.floats(0, 1e6),
)
def test_counter_is_the_exact_integral_of_power(
    model: LampModel, reports: list[int], resets: list[int], initial: float
) -> None:
    """Between two readings the counter grows by Σ power × duration over the true segments
    (switch-on/off, dimming steps, faults and noise cells between the readings included), and it
    never goes back except at an injected reset."""
    counter = EnergyCounter(model, _DAY0, initial)
    events = sorted(
        [(_DAY0 + t, "report") for t in reports] + [(_DAY0 + t, "reset") for t in resets]
    )
    previous, previous_t = counter.units, _DAY0
    for t, what in events:
        if what == "reset":
            counter.reset(t)
            previous, previous_t = 0, t
            continue
        counter.advance(t)
        expected = sum((b - a) * p for a, b, p in _segments(model, previous_t, t))
        assert counter.units - previous == expected
        assert counter.units >= previous
        previous, previous_t = counter.units, t
    whole = model.energy_cwms(_DAY0, _DAY0 + _SPAN)
    middle = _DAY0 + _SPAN // 3
    assert whole == model.energy_cwms(_DAY0, middle) + model.energy_cwms(middle, _DAY0 + _SPAN)
    assert energy_truth_wh(model, _DAY0, _DAY0 + _SPAN) == whole / WH


@settings(max_examples=25, deadline=None)
@given(model=_models(), t=st.integers(0, _SPAN))
def test_power_is_constant_within_each_segment(model: LampModel, t: int) -> None:
    start = _DAY0 + t
    rng = random.Random(t)
    for a, b, p in _segments(model, start, start + 6 * 3_600_000):
        for x in (a, b - 1, rng.randrange(a, b)):
            assert model.power_cw_at(x) == p


@pytest.mark.parametrize(
    "around",
    [
        datetime(2026, 6, 21, 19, 1, tzinfo=SHANGHAI),  # switch-on at dusk
        datetime(2026, 6, 21, 23, 0, tzinfo=SHANGHAI),  # dimming step
        datetime(2026, 6, 22, 4, 50, tzinfo=SHANGHAI),  # switch-off at dawn
    ],
)
def test_energy_matches_a_millisecond_by_millisecond_sum(around: datetime) -> None:
    lum = _lum()
    fresh = LampModel(lum, PROFILE, SHANGHAI)
    t0 = to_ms(around) - 60_000
    t1 = to_ms(around) + 60_000
    total = 0
    probe = LampModel(lum, PROFILE, SHANGHAI)
    for t in range(t0, t1):
        total += probe.power_cw_at(t)
    assert total == fresh.energy_cwms(t0, t1)


def test_reported_wh_rounds_to_the_mwh() -> None:
    assert wh_reported(0) == 0.0
    assert wh_reported(WH) == 1.0
    assert wh_reported(WH + 179_999) == 1.0
    assert wh_reported(WH + 180_000) == 1.001


def test_fleet_is_deterministic_and_realistic() -> None:
    fleet = build_fleet(500, *SHANGHAI_CENTRE, zones=5, circuits_per_zone=4, seed=7)
    assert fleet == build_fleet(500, *SHANGHAI_CENTRE, zones=5, circuits_per_zone=4, seed=7)
    assert fleet != build_fleet(500, *SHANGHAI_CENTRE, zones=5, circuits_per_zone=4, seed=8)
    assert [lum.device_id for lum in fleet] == [f"lum-{i:06d}" for i in range(1, 501)]
    assert {lum.zone for lum in fleet} == {"north", "south", "east", "west", "centre"}
    assert len({lum.circuit for lum in fleet}) == 20
    for lum in fleet:
        assert ID_PATTERN.match(lum.device_id)
        assert ID_PATTERN.match(lum.zone)
        assert ID_PATTERN.match(lum.gateway_id)
        assert 30 <= lum.rated_power_w <= 150
        assert 70 <= lum.baseline_power_w <= 250
        assert lum.rated_power_w < lum.baseline_power_w
        assert abs(lum.lat - SHANGHAI_CENTRE[0]) < 0.1
        assert abs(lum.lon - SHANGHAI_CENTRE[1]) < 0.1
        assert lum.report_interval_s == 900
        assert lum.initial_energy_wh >= 0
    by_circuit: dict[str, set[str]] = {}
    for lum in fleet:
        by_circuit.setdefault(lum.circuit, set()).add(lum.zone)
    assert all(len(zones) == 1 for zones in by_circuit.values())


def test_inventory_csv_has_exactly_the_contract_columns(tmp_path: Path) -> None:
    fleet = build_fleet(30, seed=2, interval_s=600)
    path = tmp_path / "inventory.csv"
    write_inventory(path, fleet)
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert (
        tuple(rows[0])
        == INVENTORY_COLUMNS
        == (
            "device_id",
            "zone",
            "circuit",
            "lat",
            "lon",
            "rated_power_w",
            "baseline_power_w",
            "report_interval_s",
            "model",
            "installed_on",
        )
    )
    assert len(rows) == 31
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["device_id"] == fleet[0].device_id
    assert float(first["lat"]) == fleet[0].lat
    assert float(first["rated_power_w"]) == fleet[0].rated_power_w
    assert first["report_interval_s"] == "600"
    assert date.fromisoformat(first["installed_on"]) == fleet[0].installed_on
