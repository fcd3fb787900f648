"""Line protocol: escaping, fixed field types, and refusing what cannot be carried faithfully.

That what the encoder accepts reads back identical from a real InfluxDB is checked in
test_line_protocol_roundtrip.py."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from influx.line_protocol import (
    EncodeError,
    encode_line,
    encode_reading,
    format_field,
    reading_fields,
)
from models import Reading


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (5, "5i"),
        (-(2**63), "-9223372036854775808i"),
        (5.0, "5.0"),
        (0.1, "0.1"),
        (1e16, "1e+16"),
        ('say "hi" \\o/', '"say \\"hi\\" \\\\o/"'),
        ("", '""'),
    ],
)
def test_field_formats(value: bool | int | float | str, text: str) -> None:
    assert format_field(value) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 2**63, "a\nb", "x" * 70000])
def test_unencodable_fields_are_refused(value: float | int | str) -> None:
    with pytest.raises(EncodeError):
        format_field(value)


def test_line_escapes_names_and_sorts_tags() -> None:
    line = encode_line(
        "my meas,x", {"zone": "a b", "device_id": "c,d=e"}, {"f k": 1.5, "n": 2}, 1700000000000
    )
    assert line == r"my\ meas\,x,device_id=c\,d\=e,zone=a\ b f\ k=1.5,n=2i 1700000000000"


@pytest.mark.parametrize(
    ("measurement", "tags", "fields"),
    [
        ("", {}, {"a": 1}),
        ("m", {}, {}),
        ("m", {"t": ""}, {"a": 1}),
        ("m", {"t": "ends\\"}, {"a": 1}),
        ("m", {"time": "x"}, {"a": 1}),
        ("m", {}, {"time": 1}),
        ("m\n", {}, {"a": 1}),
        ("#m", {}, {"a": 1}),
    ],
)
def test_unencodable_points_are_refused(
    measurement: str, tags: dict[str, str], fields: dict[str, int]
) -> None:
    with pytest.raises(EncodeError):
        encode_line(measurement, tags, fields, 0)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_are_never_written_as_integers(value: float) -> None:
    text = format_field(value)
    assert not text.endswith("i")
    assert float(text) == value


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_integers_are_always_written_as_integers(value: int) -> None:
    assert format_field(value) == f"{value}i"


readings = st.builds(
    Reading,
    lamp_on=st.booleans(),
    power_w=st.floats(min_value=0, max_value=5000),
    energy_wh=st.floats(min_value=0, allow_infinity=False),
    seq=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    voltage_v=st.none() | st.floats(min_value=0, max_value=600),
    current_a=st.none() | st.floats(min_value=0, max_value=50),
    power_factor=st.none() | st.floats(min_value=0, max_value=1),
    dim_pct=st.none() | st.integers(min_value=0, max_value=100),
    driver_temp_c=st.none() | st.floats(min_value=-60, max_value=200),
    lux=st.none() | st.floats(min_value=0, allow_infinity=False),
)


@given(reading=readings, ts_ms=st.integers(min_value=0, max_value=2**62))
def test_the_fast_reading_encoder_writes_what_the_general_one_does(
    reading: Reading, ts_ms: int
) -> None:
    general = encode_line(
        "telemetry", {"zone": "north", "device_id": "lum-1"}, reading_fields(reading), ts_ms
    )
    assert encode_reading("north", "lum-1", reading, ts_ms) == general
