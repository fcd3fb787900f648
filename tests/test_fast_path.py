"""The fast path (`ingest/reading_lines.c`) must decide exactly as the full pydantic path:
same lines, same dead letters, same observations — for near-valid input above all, where the two
could disagree."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest import fast_path
from ingest.decode import Decoded, Limits, decode, decode_into
from models import Reading
from models.timestamps import epoch_ms, from_epoch_ms
from servers import InfluxDBServer, query, write_points

NOW = datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC)


def fresh(observe: bool = True) -> Limits:
    """Limits with nothing stamped yet: each path of a comparison stamps from the same state."""
    return Limits(
        topic_root="lighting", max_payload_bytes=4096, max_clock_skew_s=300, observe=observe
    )


TELEMETRY = "lighting/north/lum-1/telemetry"
BATCH = "lighting/north/gw-1/batch"

EDGE_NUMBERS = st.sampled_from(
    [
        0,
        -0.0,
        1,
        5000,
        5000.0,
        5000.000001,
        600,
        600.5,
        50,
        1,
        1.0,
        0.999,
        100,
        101,
        -60,
        -61,
        200,
        2**63 - 1,
        2**63,
        2**64,
        1e308,
        1.7976931348623157e308,
        -1,
        1e-320,
    ]
)
NUMBERS = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=-100, max_value=6000)
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.integers(min_value=-5, max_value=120)
    | EDGE_NUMBERS
)
ODD = st.none() | st.booleans() | st.text(max_size=5) | st.just([1]) | st.just({"a": 1})
TIMESTAMPS = st.sampled_from(
    [
        "2026-11-24T11:59:00Z",
        "2026-11-24T11:59:00.5Z",
        "2026-11-24T11:59:00.123456Z",
        "2026-11-24T11:59:00.1234567Z",
        "2026-11-24T19:59:00+08:00",
        "2026-11-24T19:59:00.250+08:00",
        "2026-11-24t11:59:00z",
        "2026-11-24 11:59:00Z",
        "2026-11-24T11:59:00",
        "2026-13-24T11:59:00Z",
        "2026-11-24T24:00:00Z",
        "2026-11-24T12:04:59.123Z",
        "2026-11-24T12:05:00.123Z",
        "2026-11-24T12:05:00.124Z",
        "2026-11-24T12:10:00Z",
        "1999-12-31T23:59:59.999Z",
        "2000-01-01T00:00:00Z",
        "2000-01-01T00:00:00.001Z",
        "1970-01-01T00:00:00Z",
        "2026-11-24T11:59:00+8:00",
        "٢٠٢٦-11-24T11:59:00Z",
        "",
    ]
) | st.sampled_from([1795521540, 1795521540.25, 946684800, 946684800.0005, 0, -1, 10**12])
DEVICES = st.sampled_from(["lum-1", "lum-2", "Lum_2.a:b", "lum-1\n", "-bad", "x" * 65, "", 7])

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "lamp_on": st.booleans() | ODD,
    "power_w": NUMBERS | ODD,
    "energy_wh": NUMBERS | ODD,
    "voltage_v": NUMBERS | ODD,
    "current_a": NUMBERS | ODD,
    "power_factor": NUMBERS | ODD,
    "dim_pct": NUMBERS | ODD,
    "driver_temp_c": NUMBERS | ODD,
    "lux": NUMBERS | ODD,
    "seq": NUMBERS | ODD,
    "ts": TIMESTAMPS | ODD,
    "device_id": DEVICES | ODD,
    "rssi": NUMBERS,
}
VALID = {"lamp_on": True, "power_w": 42.5, "energy_wh": 1000.0}


def _around(low: float, high: float) -> st.SearchStrategy[Any]:
    """Values at, just inside and just outside a range, as ints and floats."""
    edges = [low, high, low - 1, high + 1, low - 1e-9, high + 1e-9, low + 1e-9, high - 1e-9]
    return (
        st.sampled_from(edges)
        | st.sampled_from([int(low), int(high), int(high) + 1])
        | (st.floats(min_value=low - 2, max_value=high + 2))
    )


NEAR: dict[str, st.SearchStrategy[Any]] = {
    "power_w": _around(0, 5000),
    "energy_wh": _around(0, 1e12) | st.sampled_from([1e308, 2**64, 2**64 - 1, 2**63]),
    "voltage_v": _around(0, 600),
    "current_a": _around(0, 50),
    "power_factor": _around(0, 1),
    "driver_temp_c": _around(-60, 200),
    "lux": _around(0, 1e6),
    "dim_pct": st.integers(-2, 102) | st.sampled_from([50.0, 100.0, True]),
    "seq": st.sampled_from([0, -1, 2**63 - 1, 2**63, 5.0, True, None]),
    "ts": TIMESTAMPS,
    "device_id": DEVICES,
}


@st.composite
def readings(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly valid readings with one or two fields changed, added or removed: where the two
    paths could disagree. Each changed field is drawn from its own near-boundary values as
    often as from anything at all."""
    reading: dict[str, Any] = dict(VALID) if draw(st.integers(0, 4)) else {}
    for name in draw(
        st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=2, unique=True)
    ):
        if name in reading and draw(st.integers(0, 5)) == 0:
            del reading[name]
        else:
            near = NEAR.get(name) if draw(st.integers(0, 3)) else None
            reading[name] = draw(near if near is not None else FIELDS[name])
    return reading


def fields_of(line: str) -> tuple[str, dict[str, bool | int | float], str]:
    """A reading's line as (series, fields with their typed values, time): the fast path
    copies a plain decimal as it was sent (`42.50`), the full path writes Python's repr."""
    series, fields, time = line.split(" ")
    values: dict[str, bool | int | float] = {}
    for pair in fields.split(","):
        name, text = pair.split("=")
        if text in ("true", "false"):
            values[name] = text == "true"
        elif text.endswith("i"):
            values[name] = int(text[:-1])
        else:
            assert "." in text or "e" in text, f"a float field must read as a float: {pair}"
            values[name] = float(text)
    return series, values, time


def names(line: str) -> list[str]:
    return [pair.split("=")[0] for pair in line.split(" ")[1].split(",")]


def same(fast: Decoded, full: Decoded) -> None:
    assert [fields_of(p.line) for p in fast.points] == [fields_of(p.line) for p in full.points]
    assert [names(p.line) for p in fast.points] == [names(p.line) for p in full.points]
    assert [p.topic for p in fast.points] == [p.topic for p in full.points]
    assert [(d.reason, d.detail, d.index) for d in fast.dead_letters] == [
        (d.reason, d.detail, d.index) for d in full.dead_letters
    ]
    assert fast.unknown_fields == full.unknown_fields
    assert len(fast.observations) == len(full.observations)
    for a, b in zip(fast.observations, full.observations, strict=True):
        assert (a.zone, a.device_id, a.at, a.received_at) == (
            b.zone,
            b.device_id,
            b.at,
            b.received_at,
        )
        assert isinstance(a.reading, Reading)
        assert isinstance(b.reading, Reading)
        assert a.reading.model_dump() == b.reading.model_dump()
        assert a.reading.model_fields_set == b.reading.model_fields_set


def both(topic: str, payload: bytes) -> None:
    same(decode(topic, payload, NOW, fresh()), decode(topic, payload, NOW, fresh(), fast=False))


@settings(max_examples=1500)
@given(reading=readings())
@example(reading={**VALID, "power_w": 1, "energy_wh": 2**64 - 1})
@example(reading={**VALID, "ts": "2026-11-24T12:05:00.123Z"})
@example(reading={**VALID, "device_id": "lum-1\n"})
@example(reading={**VALID, "power_w": 5000.5})
@example(reading={**VALID, "ts": "2026-11-24T12:05:00.124Z"})
def test_a_telemetry_message_is_decided_the_same_on_both_paths(reading: dict[str, Any]) -> None:
    both(TELEMETRY, json.dumps(reading).encode())


@settings(max_examples=800)
@given(
    changed=readings(),
    plain=st.integers(0, 3),
    position=st.integers(0, 3),
    device=st.just("lum-9") | DEVICES,
)
def test_a_batch_is_decided_the_same_on_both_paths(
    changed: dict[str, Any], plain: int, position: int, device: Any
) -> None:
    """Plain valid elements around one changed element (which may name no device)."""
    changed.setdefault("device_id", device)
    elements = [{**VALID, "device_id": f"lum-{i}"} for i in range(plain)]
    elements.insert(min(position, plain), changed)
    both(BATCH, json.dumps(elements).encode())


def test_raw_json_the_encoder_would_not_write_is_decided_the_same() -> None:
    """Duplicate keys (last wins in both), big exponents, whitespace, a BOM, invalid UTF-8."""
    for raw in (
        b'{"lamp_on":true,"power_w":1,"power_w":2,"energy_wh":3}',
        b'{"lamp_on":true,"power_w":9999,"power_w":2,"energy_wh":3}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1e400}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1E2}',
        b' {"lamp_on" : true , "power_w":1,"energy_wh":3} \n',
        b'\xef\xbb\xbf{"lamp_on":true,"power_w":1,"energy_wh":3}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":3,"ts":"\xff"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":3,"ts":"\\ud800"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":3}\x00',
        b'{"lamp_on":true,"power_w":1,"energy_wh":3,"lux":-0.0}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":100000000000000000000000000000}',
    ):
        both(TELEMETRY, raw)
        both(BATCH, b'[{"device_id":"lum-1",' + raw.strip()[1:] + b"]")


def test_the_fast_lines_floats_read_back_from_a_real_influxdb_as_sent(
    influxdb: InfluxDBServer, influx_db: str
) -> None:
    """The fast path copies plain decimals as sent and writes exponent forms as Python's repr:
    InfluxDB must read each back as the float the models hold."""
    texts = [
        *(json.dumps(value) for value in (1e16, 1e-7, 5e-324, 1.7976931348623157e308)),
        *(json.dumps(value) for value in (123456789.125, 0.1 + 0.2, -0.0, 2.0**64)),
        "42.50",
        "0.1000000000000000055511151231257827021181583404541015625",
        "123456789012345678.5",
        "9007199254740993.0",
        "1E2",
        "1e-400",
        "18",
        "999999999999999999",
        "0.30000000000000001665334536937734810635447502136230468750",
    ]
    lines = []
    for index, text in enumerate(texts):
        payload = b'{"lamp_on":true,"power_w":1,"seq":%d,"energy_wh":%s}' % (index, text.encode())
        taken = fast_path.telemetry(
            payload, "x", f"lum-{index}", epoch_ms(NOW), 300_000, False, fast_path.Stamps()
        )
        assert taken is not None, f"the fast path left {text} to the full path"
        decoded = decode(f"lighting/x/lum-{index}/telemetry", payload, NOW, fresh())
        assert len(decoded.points) == 1
        lines.append(decoded.points[0].line)
    write_points(influxdb.url, influx_db, lines)
    answer = query(
        influxdb.url, "SELECT energy_wh, seq FROM telemetry GROUP BY device_id", db=influx_db
    )
    stored = {  # float(): InfluxDB's JSON writes 2.0**64 as the integer 18446744073709552000
        series["tags"]["device_id"]: float(series["values"][0][1])
        for series in answer["results"][0]["series"]
    }
    assert stored == {f"lum-{index}": abs(float(text)) for index, text in enumerate(texts)}


STEPS_US = st.sampled_from([0, 0, 0, 300, 999, 1000, 2500, 60_000, -1000, -2_000_000])
"""How the receive time moves from one message to the next: mostly not at all (one socket read),
by less or more than a ms, or back (a clock stepped back by NTP, by less than `Stamps` follows)."""
DEVICE_IDS = st.sampled_from(["lum-1", "lum-2", "lum-3"])


@st.composite
def ts_less_reading(draw: st.DrawFn, device: str | None) -> dict[str, Any]:
    """A reading of `device` (None: leave `device_id` out), mostly without `ts`, now and then
    with one or near-valid (then either path may refuse it)."""
    reading: dict[str, Any] = {**VALID, "seq": draw(st.integers(0, 9))}
    if device is not None:
        reading["device_id"] = device
    choice = draw(st.integers(0, 9))
    if choice == 0:
        reading["ts"] = draw(TIMESTAMPS)
    elif choice == 1:
        reading.update(draw(readings()))
    return reading


@st.composite
def ts_less_messages(draw: st.DrawFn) -> list[tuple[str, bytes, int, bool]]:
    """(topic, payload, receive-time step in µs, retained): telemetry and batches of three
    devices, mostly without `ts`, received in bursts."""
    messages = []
    for _ in range(draw(st.integers(1, 12))):
        step, retained = draw(STEPS_US), draw(st.integers(0, 9)) == 0
        if draw(st.booleans()):
            device = draw(DEVICE_IDS)
            body: Any = draw(ts_less_reading(None if draw(st.booleans()) else device))
            topic = f"lighting/north/{device}/telemetry"
        else:
            size = draw(st.integers(1, 5))
            body = [draw(ts_less_reading(draw(DEVICE_IDS))) for _ in range(size)]
            topic = BATCH
        messages.append((topic, json.dumps(body).encode(), step, retained))
    return messages


@settings(max_examples=600)
@given(messages=ts_less_messages())
def test_readings_without_ts_are_stamped_alike_on_both_paths_and_never_share_a_ms(
    messages: list[tuple[str, bytes, int, bool]],
) -> None:
    """A sequence of messages decoded on each path with its own memory, as the ingester does
    (one `Decoded` and receive time a chunk): the same lines, times included, and the same
    observations, whose time is the stored one; the lines-only mode of the C module writes the
    same; and no device has two readings without `ts` stored at the same ms."""
    paths = {
        "fast": (fresh(), True),
        "full": (fresh(), False),
        "lines": (fresh(observe=False), True),
    }
    decoded = {name: Decoded() for name in paths}
    received_at = NOW
    for topic, payload, step_us, retained in messages:
        received_at += timedelta(microseconds=step_us)
        for name, (limits, fast) in paths.items():
            decode_into(
                decoded[name],
                topic,
                payload,
                received_at,
                epoch_ms(received_at),
                limits,
                None,
                fast,
                retained,
            )
    same(decoded["fast"], decoded["full"])
    assert [p.line for p in decoded["lines"].points] == [p.line for p in decoded["fast"].points]
    assert decoded["fast"].retained_skipped == decoded["full"].retained_skipped
    stamped: dict[str, list[int]] = {}
    written = iter(decoded["full"].points)
    for seen in decoded["full"].observations:
        assert isinstance(seen.reading, Reading)
        if seen.retained and seen.reading.ts is None:
            continue  # observed, not written
        point = next(written)
        if seen.reading.ts is None:
            ms = int(point.line.rpartition(" ")[2])
            assert seen.at == from_epoch_ms(ms)
            stamped.setdefault(seen.device_id, []).append(ms)
    for device, stamps in stamped.items():
        assert stamps == sorted(set(stamps)), f"{device}: {stamps}"
