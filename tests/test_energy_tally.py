"""The tally (``energy.tally``, C ``energy.hour_tally``) against the rollup build's arithmetic: at
every hour's close, the hours it vouches for equal ``energy.rollup.compute`` over what InfluxDB
holds at that moment (points merged per device and time, the later fields winning), exactly —
for any readings (resets, 2^32 wraps, onboarding, duplicates with the same or other values, no
counter, gaps, breaks, intervals straddling hours, the spring-forward night) in any arrival order,
closed at any moments, with replays from the spool."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from energy.counters import MS_PER_H, Sample, milli
from energy.inventory import Luminaire
from energy.periods import to_ms
from energy.rollup import Rollup, compute, floor_hour, line
from energy.tally import RollupTally, needed_bytes
from influx.line_protocol import encode_reading
from models.reading import Reading as SinkReading

M = 60_000
Q = 15 * M
MAX_INTERVAL = 2 * MS_PER_H
GAP_FACTOR = 1.5
START = to_ms(datetime(2026, 3, 29, 0, tzinfo=ZoneInfo("Europe/London")))


def _lum(device_id: str, zone: str, interval_s: int, baseline_w: float) -> Luminaire:
    return Luminaire(
        device_id=device_id,
        zone=zone,
        circuit="C01",
        baseline_power_w=baseline_w,
        report_interval_s=interval_s,
    )


INVENTORY = {
    "a": _lum("a", "north", 900, 100),
    "b": _lum("b", "south", 900, 73.3),
    "c": _lum("c", "south", 3600, 250),
}
ZONES = {"a": "north", "b": "south", "c": "south", "stranger": "north"}

Fields = dict[str, float | bool]


def _line(device: str, zone: str, t: int, fields: Fields) -> str:
    parts = []
    for name in ("lamp_on", "power_w", "energy_wh", "seq", "dim_pct"):
        if name not in fields:
            continue
        value = fields[name]
        if isinstance(value, bool):
            parts.append(f"{name}={'true' if value else 'false'}")
        elif name in ("seq", "dim_pct"):
            parts.append(f"{name}={int(value)}i")
        else:
            parts.append(f"{name}={float(value)!r}")
    return f"telemetry,device_id={device},zone={zone} {','.join(parts)} {t}"


def _tally(started_ms: int, closed_ms: int) -> RollupTally:
    return RollupTally(
        INVENTORY,
        gap_factor=GAP_FACTOR,
        max_interval_ms=MAX_INTERVAL,
        started_ms=started_ms,
        closed_ms=closed_ms,
        max_bytes=1 << 20,
    )


class Influx:
    """What InfluxDB holds: a point per (device, zone, time), fields merged, later ones winning;
    read back per device in time order (as ``GROUP BY device_id`` does)."""

    def __init__(self) -> None:
        self.points: dict[tuple[str, str, int], Fields] = {}

    def write(self, device: str, zone: str, t: int, fields: Fields) -> None:
        self.points.setdefault((device, zone, t), {}).update(fields)

    def samples(self) -> dict[str, list[Sample]]:
        out: dict[str, list[Sample]] = {}
        for (device, _zone, t), f in sorted(self.points.items(), key=lambda kv: kv[0][2]):
            energy, power, lamp, dim = (
                f.get(k) for k in ("energy_wh", "power_w", "lamp_on", "dim_pct")
            )
            out.setdefault(device, []).append(
                Sample(
                    t,
                    None if energy is None else float(energy),
                    None if power is None else float(power),
                    None if lamp is None else bool(lamp),
                    None if dim is None else float(int(dim)),
                )
            )
        return out


def _reference(db: Influx, hour: int) -> list[Rollup]:
    return compute(
        hour,
        hour + MS_PER_H,
        db.samples(),
        INVENTORY,
        gap_factor=GAP_FACTOR,
        max_interval_ms=MAX_INTERVAL,
    )


Reading = tuple[str, str, int, Fields]


@st.composite
def _device(draw: st.DrawFn, device: str, interval_ms: int) -> list[Reading]:
    """Readings with jitter, gaps, breaks, resets, 2^32 wraps, duplicates (same and other
    values), no-counter stretches, power-only readings, an onboarding at any time."""
    t = START - draw(st.integers(-6, 12)) * 30 * M + draw(st.integers(0, 5)) * 1000
    energy = draw(st.sampled_from([0.0, 50_000.0, 2.0**32 - 300]))
    zone = ZONES[device]
    out: list[Reading] = []
    for _ in range(draw(st.integers(0, 40))):
        step = draw(
            st.sampled_from(
                [
                    "ok",
                    "ok",
                    "ok",
                    "ok",
                    "gap",
                    "break",
                    "reset",
                    "dup",
                    "redo",
                    "nocounter",
                    "edge",
                    "garbage",
                ]
            )
        )
        t += interval_ms + draw(st.integers(-interval_ms // 10, interval_ms // 10))
        if step == "gap":
            t += draw(st.integers(1, 5)) * interval_ms
        elif step == "break":
            t += MAX_INTERVAL + draw(st.integers(0, 3)) * MS_PER_H
        elif step == "edge":
            t = floor_hour(t) + MS_PER_H + draw(st.sampled_from([-1, 0, 1]))
        on = draw(st.sampled_from([True, True, False, None]))
        power = draw(st.sampled_from([40.0, 39.7, 0.0, 0.5, 0.0004, 12.3455]))
        power = power if on is not False else 0.0
        energy += 40.0 * (interval_ms / MS_PER_H) * draw(st.floats(0, 1.2))
        fields: Fields = {"power_w": power, "energy_wh": energy}
        if on is not None:
            fields["lamp_on"] = on
        if step == "reset":
            energy = float(draw(st.integers(0, 30)))
            fields["energy_wh"] = energy
        elif step == "nocounter":
            del fields["energy_wh"]
        dim = draw(st.sampled_from([None, 50, 100, 7, 33]))
        if dim is not None:
            fields["dim_pct"] = dim
        if step == "garbage":  # values no register holds: read as absent (READABLE)
            fields["energy_wh"] = draw(st.sampled_from([2.0**40, 1e300, 2.0**32]))
            fields["power_w"] = draw(st.sampled_from([2.0**45, -(2.0**41), 40.0]))
            fields["dim_pct"] = draw(st.sampled_from([250, -3, 70]))
        out.append((device, zone, t, fields))
        if step == "dup":
            out.append((device, zone, t, dict(fields)))
        elif step == "redo":
            out.append((device, zone, t, {**fields, "power_w": 12.5}))
    return out


@st.composite
def _case(draw: st.DrawFn) -> tuple[list[Reading], list[tuple[int, int, bool]], int]:
    readings = draw(_device("a", Q)) + draw(_device("b", Q)) + draw(_device("c", MS_PER_H))
    readings += draw(_device("stranger", Q))[:3]  # not in the inventory: in no rollup
    readings.sort(key=lambda r: r[2])
    order = draw(st.sampled_from(["in order", "few swaps", "shuffled"]))
    rng = random.Random(draw(st.integers(0, 2**31)))
    if order == "shuffled":
        rng.shuffle(readings)
    elif order == "few swaps" and len(readings) > 1:
        for _ in range(draw(st.integers(1, 4))):
            i = rng.randrange(len(readings) - 1)
            readings[i], readings[i + 1] = readings[i + 1], readings[i]
    if draw(st.booleans()) and readings:  # a device seen under another zone (two series)
        device, _, t, fields = readings[rng.randrange(len(readings))]
        readings.append((device, "elsewhere", t + draw(st.integers(0, 3)) * Q, fields))
    # the arrival cut into writes (some replayed from the spool)
    cuts = sorted(draw(st.lists(st.integers(0, len(readings)), max_size=6)))
    writes = []
    previous = 0
    for cut in [*cuts, len(readings)]:
        writes.append((previous, cut, draw(st.integers(0, 9)) == 0))
        previous = cut
    return readings, writes, START - 8 * MS_PER_H


def _run(
    readings: Sequence[Reading],
    writes: Sequence[tuple[int, int, bool]],
    closes: Sequence[int],
    started_ms: int,
    first_hour: int,
    history: str = "untold",
) -> int:
    """Feed the writes, closing hours after each; check every hour the tally vouches for.
    ``history``: ``untold`` (the tally is never told what InfluxDB held), ``told`` (the first
    write was made before the tally listened — a previous run — and the tally is told its
    latest reading). Returns how many hours were checked."""
    tally = _tally(started_ms, first_hour)
    db = Influx()
    closed = first_hour
    checked = 0
    for n, ((a, b, replayed), close_to) in enumerate(zip(writes, closes, strict=True)):
        chunk = readings[a:b]
        for device, zone, t, fields in chunk:
            db.write(device, zone, t, fields)
        if history == "told" and n == 0:
            tally.history(max((r[2] for r in chunk), default=None))
        else:
            tally.feed([_line(*r) for r in chunk], replayed)
        for hour in range(closed, close_to, MS_PER_H):
            if tally.vouches(hour):
                expected = _reference(db, hour)
                texts = [line(row) for row in expected]
                kind = hour // MS_PER_H % 3
                if kind == 0:
                    assert tally.rows(hour) == expected, hour
                elif kind == 1:  # the lines written, formatted in C: the same text as line()
                    assert tally.lines(hour) == texts, hour
                else:  # the same lines, formatted in C straight into write bodies of 2 lines
                    bodies = tally.bodies(hour, 2)
                    assert bodies == [
                        "\n".join(texts[i : i + 2]).encode() for i in range(0, len(texts), 2)
                    ], hour
                checked += 1
        closed = max(closed, close_to)
        tally.close(closed)
    return checked


@settings(max_examples=300, deadline=None)
@given(
    _case(),
    st.lists(st.integers(0, 36), min_size=8, max_size=8),
    st.sampled_from(["untold", "told"]),
)
def test_the_hours_the_tally_vouches_for_equal_the_build(
    case: tuple[list[Reading], list[tuple[int, int, bool]], int],
    close_hours: list[int],
    history: str,
) -> None:
    readings, writes, first = case
    closes = sorted(first + h * MS_PER_H for h in close_hours)[: len(writes)]
    closes += [first + 40 * MS_PER_H] * (len(writes) - len(closes))
    checked = _run(readings, writes, closes, first - 2 * MS_PER_H, first, history)
    event(f"hours checked: {min(checked, 10)}{'+' if checked >= 10 else ''}")


def _steady(device: str, t0: int, hours: int, interval_ms: int, energy: float) -> list[Reading]:
    out: list[Reading] = []
    t = t0
    while t < t0 + hours * MS_PER_H:
        energy += 40.0 * interval_ms / MS_PER_H * 0.97
        out.append(
            (
                device,
                ZONES[device],
                t,
                {"lamp_on": True, "power_w": 40.0, "energy_wh": energy, "dim_pct": 80},
            )
        )
        t += interval_ms + (t // 7919) % 9000 - 4500
    return out


def test_in_order_readings_are_vouched_for_once_each_device_has_been_seen() -> None:
    """Steady state: after the hours a device's first reading since start may reach back into,
    every hour is tallied (none read back), and equal to the build."""
    readings = sorted(
        _steady("a", START, 24, Q, 1000.0)
        + _steady("b", START + 7 * M, 24, Q, 2.0**32 - 50)  # wraps
        + _steady("c", START + 3 * M, 24, MS_PER_H, 0.0),
        key=lambda r: r[2],
    )
    writes = [(i, min(i + 5, len(readings)), False) for i in range(0, len(readings), 5)]
    # close each hour as the readings reach 20 minutes past its end
    closes = [floor_hour(readings[b - 1][2] - 20 * M) for _, b, _ in writes]
    checked = _run(readings, writes, closes, START - MS_PER_H, START)
    # hours before START + MAX_INTERVAL + 1 h: the first reading's reach; the last hour stays open
    assert checked >= 24 - 2 - MAX_INTERVAL // MS_PER_H - 1


def test_out_of_order_duplicates_replays_and_strangers_are_not_vouched_for() -> None:
    base = _steady("a", START, 4, Q, 10.0) + _steady("b", START, 4, Q, 10.0)
    base += _steady("c", START, 4, MS_PER_H, 10.0)
    base.sort(key=lambda r: r[2])
    last = START + 3 * MS_PER_H

    def fed(*writes: tuple[Sequence[Reading], bool]) -> RollupTally:
        tally = _tally(START - MS_PER_H, START)
        for chunk, replayed in writes:
            tally.feed([_line(*r) for r in chunk], replayed)
        return tally

    # the first hour: every device's first reading since start (its previous one unknown)
    assert [fed((base, False)).vouches(START + h * MS_PER_H) for h in range(4)] == [
        False,
        True,
        True,
        True,
    ]
    late = ("a", "north", last + 3 * M, {"lamp_on": True, "power_w": 40.0, "energy_wh": 11.0})
    tally = fed((base, False), ([late], False))  # older than a's latest reading
    assert not tally.vouches(last)
    assert not tally.vouches(last - MS_PER_H)  # within max_interval before it
    assert fed((base, False), (base[-1:], False)).vouches(last)  # the same point: stored once
    other = (*base[-1][:3], {**base[-1][3], "power_w": 1.0})  # merged: other values
    assert not fed((base, False), ([other], False)).vouches(last)
    assert not fed((base[:-3], False), (base[-3:], True)).vouches(last)  # replayed (spool)
    odd = f'telemetry,device_id=a,zone=north power_w=1.0,note="x" {last + 50 * M}'
    tally = fed((base, False))
    tally.feed([odd])
    assert not tally.vouches(last)  # not luxtel's own shape: read back around it
    moved = ("c", "west", last + 50 * M, base[-1][3])  # another zone: another series
    assert not fed((base, False), ([moved], False)).vouches(last)
    beyond = [(d, z, t + 4 * MS_PER_H, f) for d, z, t, f in base]  # no close: 4 open hours
    tally = fed((base, False), (beyond, False))
    assert not tally.vouches(last + 2 * MS_PER_H)  # its slot still holds an open hour


def test_every_device_of_a_large_inventory_is_found_by_its_id() -> None:
    """The C index of device ids (open addressing: many ids share probe runs) finds each of
    3,000 devices by its line, and no id outside the inventory (a prefix, an extension, one
    not there); an id that is not ASCII is skipped and its hours read back."""
    inventory = {f"lum-{i}": _lum(f"lum-{i}", "north", 900, 100) for i in range(3000)}
    tally = RollupTally(
        inventory,
        gap_factor=GAP_FACTOR,
        max_interval_ms=MAX_INTERVAL,
        started_ms=START - MS_PER_H,
        closed_ms=START,
        max_bytes=1 << 26,
    )
    tally.history(None)
    fields: Fields = {"lamp_on": True, "power_w": 40.0, "energy_wh": 10.0}
    lines = [
        _line(device, "north", START + k * Q + i, {**fields, "energy_wh": 10.0 + k})
        for k in range(2)
        for i, device in enumerate(inventory)
    ]
    strangers = ["lum-", "lum-30000", "lum-1x", "um-1", "x"]
    tally.feed(lines + [_line(d, "north", START + 40 * M, fields) for d in strangers])
    assert tally.native.stats()["skipped"] == 0
    assert tally.vouches(START)
    assert [row.readings for row in tally.rows(START)] == [2] * 3000
    tally.feed([_line("lüm-1", "north", START + MS_PER_H + 40 * M, fields)])
    assert tally.native.stats()["skipped"] == 1
    assert not tally.vouches(START + MS_PER_H)


def test_hours_before_the_first_whole_hour_after_start_are_read_back() -> None:
    tally = _tally(START + 10 * M, START - MS_PER_H)
    assert not tally.vouches(START)
    assert tally.since_ms == START + MS_PER_H


def test_memory_is_bounded_by_the_setting() -> None:
    assert needed_bytes(3) < 3 * 1024  # under a KiB a luminaire
    with pytest.raises(MemoryError, match="needs"):
        RollupTally(
            INVENTORY,
            gap_factor=GAP_FACTOR,
            max_interval_ms=MAX_INTERVAL,
            started_ms=START,
            closed_ms=START,
            max_bytes=needed_bytes(3) - 1,
        )


def test_closed_hours_take_nothing_more() -> None:
    base = sorted(_steady("a", START, 8, Q, 10.0), key=lambda r: r[2])
    tally = _tally(START - MS_PER_H, START)
    tally.feed([_line(*r) for r in base[:20]])
    tally.close(START + 5 * MS_PER_H)
    assert not tally.vouches(START + 4 * MS_PER_H)
    tally.feed([_line(*r) for r in base[20:]])
    rows: Mapping[str, Rollup] = {r.device_id: r for r in tally.rows(START + 6 * MS_PER_H)}
    assert rows["a"].readings == 4


def test_closed_hours_a_reading_changes_are_handed_back() -> None:
    """A reading late for a closed hour names it; so does one whose device was silent past the
    close of the hours before it (within max_interval): the interval across them is known now."""
    tally = _tally(START - MS_PER_H, START)
    tally.feed([_line(*r) for r in _steady("a", START, 2, Q, 10.0)])
    tally.close(START + 3 * MS_PER_H)
    after = ("a", "north", START + 3 * MS_PER_H + 5 * M, {"lamp_on": True, "energy_wh": 99.0})
    assert tally.feed([_line(*after)]) == {START + MS_PER_H, START + 2 * MS_PER_H}
    late = ("b", "south", START + 2 * MS_PER_H + 7 * M, {"lamp_on": False, "power_w": 0.0})
    assert tally.feed([_line(*late)]) == {START + 2 * MS_PER_H}
    far = ("a", "north", START + 9 * MS_PER_H, {"lamp_on": True, "energy_wh": 100.0})
    assert tally.feed([_line(*far)]) == set()  # a break: nothing known across it


@settings(max_examples=500, deadline=None)
@given(
    st.floats(0, 1e12, allow_nan=False, allow_infinity=False),
    st.floats(0, 1e12, allow_nan=False, allow_infinity=False),
    st.sampled_from(["repr", "fixed", "int"]),
)
def test_numbers_are_read_as_python_and_influxdb_read_them(a: float, b: float, form: str) -> None:
    """The C side reads a decimal of ≤ 15 digits itself (one correctly rounded division) and
    anything else with strtod: the same double as ``float(text)`` either way."""

    def text(x: float) -> str:
        return {"repr": repr(x), "fixed": f"{x:.3f}", "int": f"{int(x)}"}[form]

    first, second = text(a), text(b)
    tally = _tally(START - MS_PER_H, START)
    tally.history(None)
    t0 = START + MS_PER_H
    tally.feed(
        [
            f"telemetry,device_id=a,zone=north energy_wh={first},lamp_on=true {t0}",
            f"telemetry,device_id=a,zone=north energy_wh={second},lamp_on=true {t0 + Q}",
        ]
    )
    row = tally.rows(t0)[0]
    x, y = milli(float(first)), milli(float(second))
    assert row.counter_mwh == (y - x if y >= x else y)


_PIECES = st.sampled_from(
    [
        "a",
        "b",
        "north",
        ",",
        " ",
        "=",
        "zone=",
        "energy_wh=",
        "power_w=",
        "lamp_on=",
        "dim_pct=",
        "true",
        "false",
        "1",
        "0",
        "-",
        ".",
        "5i",
        "1e-5",
        '"',
        "\\",
        "é",
        "99999999999999999999",
        str(START),
        str(START + MS_PER_H),
        "telemetry,device_id=",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(_PIECES, max_size=14).map("".join), max_size=20))
def test_any_text_is_taken_or_read_back_never_a_crash(texts: list[str]) -> None:
    """The C parser on arbitrary lines: nothing raises, what it cannot read is a fallback, and
    the hours it vouches for still take."""
    tally = _tally(START - MS_PER_H, START)
    tally.history(None)
    tally.feed([f"telemetry,device_id={t}" for t in texts] + texts)
    for h in range(3):
        hour = START + h * MS_PER_H
        if tally.vouches(hour):
            assert len(tally.lines(hour)) == len(INVENTORY)


_OPTIONAL = st.one_of(st.none(), st.floats(0, 50, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.floats(0, 5000, allow_nan=False),
            st.floats(0, 1e9, allow_nan=False),
            st.one_of(st.none(), st.integers(0, 100)),
            st.tuples(_OPTIONAL, _OPTIONAL, _OPTIONAL, _OPTIONAL, _OPTIONAL),
            st.one_of(st.none(), st.integers(0, 2**40)),
        ),
        min_size=2,
        max_size=8,
    )
)
def test_the_sinks_lines_are_tallied_as_their_four_fields(
    values: list[tuple[bool, float, float, int | None, tuple[float | None, ...], int | None]],
) -> None:
    """Lines as the sink writes them (``encode_reading``: every optional field or none, in its
    order, which the parser expects) give the same rollups as lines of only the four fields
    the rollups read."""
    full, bare = _tally(START - MS_PER_H, START), _tally(START - MS_PER_H, START)
    full.history(None)
    bare.history(None)
    lines, fours = [], []
    for k, (lamp, power, energy, dim, (volts, amps, pf, temp, lux), seq) in enumerate(values):
        t = START + MS_PER_H + k * Q
        reading = SinkReading(
            lamp_on=lamp,
            power_w=power,
            energy_wh=energy,
            dim_pct=dim,
            voltage_v=volts,
            current_a=amps,
            power_factor=None if pf is None else pf / 50,
            driver_temp_c=temp,
            lux=lux,
            seq=seq,
        )
        lines.append(encode_reading("north", "a", reading, t))
        fields: Fields = {"lamp_on": lamp, "power_w": power, "energy_wh": energy}
        if dim is not None:
            fields["dim_pct"] = dim
        fours.append(_line("a", "north", t, fields))
    full.feed(lines)
    bare.feed(fours)
    hour = START + MS_PER_H
    assert full.vouches(hour)
    assert bare.vouches(hour)
    assert full.lines(hour) == bare.lines(hour)
