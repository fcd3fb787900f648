"""The C module `ingest/reading_lines.c` on its own: what it must take (or the fast path is
useless), what it must leave to the full path, its timestamps against Python's, and arbitrary
bytes — which must never crash it, and whatever it takes must be what the models take."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest import fast_path
from ingest.decode import Limits, decode
from ingest.fast_path import Stamps
from models import Reading
from models.timestamps import EPOCH, epoch_ms, parse_timestamp
from tests.test_fast_path import fields_of, names

NOW = datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC)
NOW_MS = epoch_ms(NOW)
SKEW_MS = 300_000


def fresh() -> Limits:
    """Limits with nothing stamped yet: each path of a comparison stamps from the same state."""
    return Limits(topic_root="lighting", max_payload_bytes=4096, max_clock_skew_s=300)


TOPIC = "lighting/north/lum-1/telemetry"
PLAIN = b'{"lamp_on":true,"power_w":42.5,"energy_wh":1000}'


def line(payload: bytes) -> str | None:
    return fast_path.telemetry(payload, "north", "lum-1", NOW_MS, SKEW_MS, False, Stamps())


def full_line(payload: bytes) -> str:
    decoded = decode(TOPIC, payload, NOW, fresh(), fast=False)
    assert not decoded.dead_letters, decoded.dead_letters
    return decoded.points[0].line


@pytest.mark.parametrize(
    "payload",
    [
        PLAIN,
        b' \r\n\t{ "lamp_on" : false , "power_w" : 0 , "energy_wh" : 0.0 }\n ',
        b'{"energy_wh":1,"power_w":5000,"lamp_on":true}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1E2,"lux":1e-7,"voltage_v":2.3e+2}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"voltage_v":null,"ts":null,"device_id":null}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"device_id":"lum-1","seq":0,"dim_pct":100}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"seq":999999999999999999}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"driver_temp_c":-60,"power_factor":1}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24T11:59:00Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24T11:59:00.5Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24T19:59:00.123456+08:00"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24T05:59:00-06:00"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2000-01-01T00:00:00.001Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2024-02-29T00:00:00Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":1795521540}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":1795521540.25}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":1.79552154e9}',
    ],
)
def test_a_plain_valid_reading_takes_the_fast_path_and_writes_the_full_paths_line(
    payload: bytes,
) -> None:
    fast = line(payload)
    assert fast is not None, "left to the full path"
    assert fields_of(fast) == fields_of(full_line(payload))
    assert names(fast) == names(full_line(payload))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{}",
        b"[]",
        b'{"lamp_on":true,"power_w":1}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"rssi":-70}',
        b'{"lamp_on":true,"power_w":1,"power_w":2,"energy_wh":1}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"lamp_on":null}',
        b'{"lamp_on":null,"power_w":1,"energy_wh":1}',
        b'{"lamp_on":1,"power_w":1,"energy_wh":1}',
        b'{"lamp_on":true,"power_w":"1","energy_wh":1}',
        b'{"lamp_on":true,"power_w":-0,"energy_wh":1}',
        b'{"lamp_on":true,"power_w":01,"energy_wh":1}',
        b'{"lamp_on":true,"power_w":1.,"energy_wh":1}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1e400}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1000000000000000000}',
        b'{"lamp_on":true,"power_w":5000.1,"energy_wh":1}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"seq":-1}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"seq":5.0}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"dim_pct":101}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"device_id":"lum-2"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"device_id":"lum\\u002d1"}',
        b'{"lamp_\\u006fn":true,"power_w":1,"energy_wh":1}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24t11:59:00z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24 11:59:00Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24T11:59:00"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24T11:59:00.1234567Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24T11:59:00.Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2025-02-29T00:00:00Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24T11:59:60Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24T11:59:00+24:00"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24T12:05:00.124Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24T12:05:00.123999Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"2026-11-24T12:05:00.123Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"1999-12-31T23:59:59.999Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"\xd9\xa2026-11-24T11:59:00Z"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":true}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,"ts":"1795521540"}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1} x',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1}\x00',
        b'\xef\xbb\xbf{"lamp_on":true,"power_w":1,"energy_wh":1}',
        b'{"lamp_on":true,"power_w":1,"energy_wh":1,}',
        b'{"lamp_on":true "power_w":1,"energy_wh":1}',
        b'[{"lamp_on":true,"power_w":1,"energy_wh":1}]',
    ],
)
def test_anything_else_is_left_to_the_full_path(payload: bytes) -> None:
    assert line(payload) is None


def test_a_batch_is_taken_whole_or_left_whole() -> None:
    element = b'{"device_id":"lum-%d","lamp_on":true,"power_w":1,"energy_wh":2}'
    plain = b"[" + b",".join(element % i for i in range(3)) + b"]"
    lines = fast_path.batch(plain, "north", NOW_MS, SKEW_MS, False, Stamps())
    assert lines is not None
    assert [fields_of(x)[0] for x in lines] == [
        f"telemetry,device_id=lum-{i},zone=north" for i in range(3)
    ]
    for refused in (
        b"[]",
        b"[" + element % 1 + b",]",
        b"[" + element % 1 + b',{"lamp_on":true,"power_w":1,"energy_wh":2}]',
        b"[" + element % 1 + b',{"device_id":"lum-2","lamp_on":true,"power_w":1}]',
        b"[" + element % 1 + b"] x",
        element % 1,
    ):
        assert fast_path.batch(refused, "north", NOW_MS, SKEW_MS, False, Stamps()) is None, refused


def test_the_values_it_hands_the_rules_are_the_models() -> None:
    payload = (
        b'{"device_id":"lum-1","ts":"2026-11-24T19:59:00.25+08:00","seq":3,"lamp_on":false,'
        b'"power_w":0,"energy_wh":12.5,"dim_pct":40,"lux":null}'
    )
    checked = fast_path.telemetry(payload, "north", "lum-1", NOW_MS, SKEW_MS, True, Stamps())
    assert checked is not None
    reading, when = fast_path.reading_of(checked)
    expected = Reading.model_validate_json(payload)
    assert reading.model_dump() == expected.model_dump()
    assert when == expected.ts == datetime(2026, 11, 24, 11, 59, 0, 250000, tzinfo=UTC)
    assert type(reading.power_w) is float
    assert type(reading.seq) is int


def ts_us(value: Any) -> int | None:
    payload = json.dumps({"lamp_on": True, "power_w": 1, "energy_wh": 1, "ts": value}).encode()
    checked = fast_path.telemetry(payload, "north", "lum-1", 2**62, 0, True, Stamps())
    return None if checked is None else checked[2]


def python_us(value: Any) -> int:
    moment = parse_timestamp(value)
    return (moment - EPOCH) // timedelta(microseconds=1)


@settings(max_examples=3000)
@given(seconds=st.floats(min_value=946684801, max_value=4e9))
@example(seconds=946684801.0000005)
@example(seconds=946684801.0000015)
@example(seconds=1795521540.9999995)
@example(seconds=1795521540.0000025)
@example(seconds=1795521540.0078125)  # x 1e6 = 7812.5 exactly: a tie, to even
@example(seconds=1795521540.0234375)
def test_epoch_seconds_round_to_microseconds_as_python_does(seconds: float) -> None:
    assert ts_us(seconds) == python_us(seconds)


@settings(max_examples=2000)
@given(
    moment=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(9999, 12, 30)),
    offset_minutes=st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
    digits=st.integers(min_value=0, max_value=6),
)
def test_rfc3339_reads_as_python_reads_it(
    moment: datetime, offset_minutes: int, digits: int
) -> None:
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    offset = "Z" if offset_minutes == 0 and digits % 2 else f"{sign}{hours:02}:{minutes:02}"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{moment.microsecond:06}"[:digits]
    text += offset
    assert ts_us(text) == python_us(text)


VALID_TELEMETRY = json.dumps(
    {
        "device_id": "lum-1",
        "ts": "2026-11-24T11:59:00.250Z",
        "seq": 12,
        "lamp_on": True,
        "power_w": 42.5,
        "energy_wh": 123456.75,
        "voltage_v": 231.2,
        "current_a": 0.19,
        "power_factor": 0.97,
        "dim_pct": 80,
        "driver_temp_c": 41.5,
        "lux": 3.25,
    }
).encode()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid payload with a few bytes replaced, inserted or deleted: where a hand-written
    parser goes wrong (bounds, truncation, a digit more or less)."""
    data = bytearray(VALID_TELEMETRY)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.integers(0, 2))
        byte = draw(st.sampled_from(b'0159.-+eE"\\,:{}[] n\x00\xff') | st.integers(0, 255))
        if action == 0 and at < len(data):
            data[at] = byte
        elif action == 1:
            data.insert(at, byte)
        elif at < len(data):
            del data[at]
    return bytes(data)


def agree(payload: bytes, topic: str) -> None:
    fast = decode(topic, payload, NOW, fresh())
    full = decode(topic, payload, NOW, fresh(), fast=False)
    assert [fields_of(p.line) for p in fast.points] == [fields_of(p.line) for p in full.points]
    assert [(d.reason, d.detail) for d in fast.dead_letters] == [
        (d.reason, d.detail) for d in full.dead_letters
    ]


@settings(max_examples=3000)
@given(payload=mutated())
def test_a_mutated_payload_is_decided_as_the_full_path_decides(payload: bytes) -> None:
    agree(payload, TOPIC)
    agree(b"[" + VALID_TELEMETRY + b"," + payload + b"]", "lighting/north/gw/batch")


@settings(max_examples=2000)
@given(payload=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_it(payload: bytes) -> None:
    for cut in (payload, PLAIN[: len(payload) % len(PLAIN)], VALID_TELEMETRY[: len(payload)]):
        taken = fast_path.telemetry(cut, "north", "lum-1", NOW_MS, SKEW_MS, True, Stamps())
        if taken is not None:
            assert fields_of(taken[0]) == fields_of(full_line(cut))
        assert fast_path.batch(b"[" + cut, "north", NOW_MS, SKEW_MS, True, Stamps()) is None


@st.composite
def decimals(draw: st.DrawFn) -> str:
    """Decimal literals as JSON writes them: up to 25 digits either side of the point,
    leading and trailing zeros, an exponent now and then."""
    whole = draw(st.sampled_from(["0", ""]) | st.from_regex(r"[1-9][0-9]{0,24}", fullmatch=True))
    fraction = draw(st.from_regex(r"[0-9]{1,25}", fullmatch=True))
    text = f"{whole or '0'}.{fraction}"
    if draw(st.integers(0, 5)) == 0:
        text += draw(st.sampled_from(["e", "E", "e+", "e-"])) + str(draw(st.integers(0, 30)))
    return text


@settings(max_examples=3000)
@given(text=decimals())
@example(text="0.1")
@example(text="9007199254740993.0")
@example(text="999999999999999.9")
@example(text="0.0000000000000000000001")
@example(text="0." + "0" * 20 + "12345")  # 25 digits after the point: past 1e22
@example(text="123456789012345.6")
def test_a_decimal_reads_as_the_double_python_reads(text: str) -> None:
    payload = b'{"lamp_on":true,"power_w":1,"energy_wh":%s}' % text.encode()
    checked = fast_path.telemetry(payload, "north", "lum-1", NOW_MS, SKEW_MS, True, Stamps())
    assert checked is not None
    assert checked[3]["energy_wh"] == float(text)
    assert fields_of(checked[0])[1]["energy_wh"] == float(text)
