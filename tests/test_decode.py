"""Decoding: every kind of bad input in the contract has its own reason; good input becomes the
right line. A function of the message and of the receive stamps it has given (`Limits.stamps`),
so these are tables, with fresh limits where a receive stamp is looked at."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.decode import Limits, decode
from models import Reason

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
NOW_MS = 1795521600000
LIMITS = Limits(topic_root="lighting", max_payload_bytes=4096, max_clock_skew_s=300)
TELEMETRY = "lighting/north/lum-1/telemetry"
GOOD: dict[str, Any] = {"lamp_on": True, "power_w": 42.5, "energy_wh": 1000}


def body(**changes: Any) -> bytes:
    reading = {**GOOD, **changes}
    return json.dumps({k: v for k, v in reading.items() if v is not ...}).encode()


def only_reason(topic: str, payload: bytes) -> Reason:
    decoded = decode(topic, payload, NOW, LIMITS)
    assert decoded.points == []
    assert len(decoded.dead_letters) == 1
    record = decoded.dead_letters[0]
    assert record.topic == topic
    assert record.detail
    return record.reason


def test_a_full_reading_becomes_one_line_with_fixed_types() -> None:
    payload = body(
        device_id="lum-1",
        ts="2026-11-24T19:30:00.123+08:00",
        seq=7,
        dim_pct=50,
        voltage_v=230,
        current_a=0.2,
        power_factor=0.93,
        driver_temp_c=-5,
        lux=0,
    )
    decoded = decode(TELEMETRY, payload, NOW, LIMITS)
    assert decoded.dead_letters == []
    assert [p.line for p in decoded.points] == [
        "telemetry,device_id=lum-1,zone=north lamp_on=true,power_w=42.5,energy_wh=1000.0,"
        "voltage_v=230.0,current_a=0.2,power_factor=0.93,driver_temp_c=-5.0,lux=0.0,"
        "seq=7i,dim_pct=50i 1795519800123"
    ]


def fresh() -> Limits:
    """Limits with nothing stamped yet."""
    return Limits(topic_root="lighting", max_payload_bytes=4096, max_clock_skew_s=300)


def test_missing_ts_is_the_receive_time_and_epoch_seconds_are_seconds() -> None:
    assert decode(TELEMETRY, body(), NOW, fresh()).points[0].line.endswith(f" {NOW_MS}")
    line = decode(TELEMETRY, body(ts=1795521000.5), NOW, LIMITS).points[0].line
    assert line.endswith(" 1795521000500")


def test_unknown_fields_are_ignored_and_counted() -> None:
    decoded = decode(TELEMETRY, body(colour="blue", rssi=-70), NOW, LIMITS)
    assert len(decoded.points) == 1
    assert "colour" not in decoded.points[0].line
    assert decoded.unknown_fields == 2


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (body(power_w="5"), Reason.WRONG_TYPE),
        (body(lamp_on=1), Reason.WRONG_TYPE),
        (body(dim_pct=50.5), Reason.WRONG_TYPE),
        (body(dim_pct=True), Reason.WRONG_TYPE),
        (body(seq="1"), Reason.WRONG_TYPE),
        (body(ts=True), Reason.WRONG_TYPE),
        (body(ts=[1]), Reason.WRONG_TYPE),
        (body(power_w=...), Reason.MISSING_FIELD),
        (body(lamp_on=...), Reason.MISSING_FIELD),
        (body(energy_wh=...), Reason.MISSING_FIELD),
        (body(power_w=5000.01), Reason.OUT_OF_RANGE),
        (body(power_w=-1), Reason.OUT_OF_RANGE),
        (body(energy_wh=-0.5), Reason.OUT_OF_RANGE),
        (body(voltage_v=601), Reason.OUT_OF_RANGE),
        (body(current_a=51), Reason.OUT_OF_RANGE),
        (body(power_factor=1.01), Reason.OUT_OF_RANGE),
        (body(dim_pct=101), Reason.OUT_OF_RANGE),
        (body(driver_temp_c=-61), Reason.OUT_OF_RANGE),
        (body(lux=-1), Reason.OUT_OF_RANGE),
        (body(seq=-1), Reason.OUT_OF_RANGE),
        (body(seq=2**63), Reason.OUT_OF_RANGE),
        (b'{"lamp_on": true, "power_w": NaN, "energy_wh": 1}', Reason.PAYLOAD_NOT_JSON),
        (b'{"lamp_on": true, "power_w": 1e400, "energy_wh": 1}', Reason.PAYLOAD_NOT_JSON),
        (body(ts="2026-11-24T12:00:00"), Reason.NAIVE_TIMESTAMP),
        (body(ts="2026-11-24 12:00:00"), Reason.NAIVE_TIMESTAMP),
        (body(ts="yesterday"), Reason.INVALID_TIMESTAMP),
        (body(ts="1795521000"), Reason.INVALID_TIMESTAMP),
        (body(ts="2026-13-24T12:00:00Z"), Reason.INVALID_TIMESTAMP),
        (body(ts=1e30), Reason.INVALID_TIMESTAMP),
        (body(ts="9999-12-31T23:59:59-01:00"), Reason.INVALID_TIMESTAMP),
        (body(ts="0001-01-01T00:00:00+01:00"), Reason.INVALID_TIMESTAMP),
        (body(ts="2026-11-24T12:05:01Z"), Reason.TIMESTAMP_IN_FUTURE),
        (body(ts=0), Reason.TIMESTAMP_TOO_OLD),
        (body(ts="1970-01-01T00:00:00Z"), Reason.TIMESTAMP_TOO_OLD),
        (body(device_id="lum-2"), Reason.DEVICE_ID_MISMATCH),
        (body(device_id="lum 1"), Reason.INVALID_DEVICE_ID),
        (b"\xff\xfe{}", Reason.PAYLOAD_NOT_UTF8),
        (b"{not json", Reason.PAYLOAD_NOT_JSON),
        (b"", Reason.PAYLOAD_NOT_JSON),
        (b"[1, 2]", Reason.PAYLOAD_NOT_OBJECT),
        (b'"text"', Reason.PAYLOAD_NOT_OBJECT),
        (b"x" * 4097, Reason.PAYLOAD_TOO_LARGE),
    ],
)
def test_bad_telemetry_is_rejected_with_its_own_reason(payload: bytes, reason: Reason) -> None:
    assert only_reason(TELEMETRY, payload) is reason


def test_clock_skew_within_the_limit_is_accepted() -> None:
    assert decode(TELEMETRY, body(ts="2026-11-24T12:04:59Z"), NOW, LIMITS).points


def test_non_utf8_payload_is_kept_as_base64() -> None:
    record = decode(TELEMETRY, b"\xff\x00", NOW, LIMITS).dead_letters[0]
    assert record.payload is None
    assert record.payload_b64 == "/wA="


def test_in_a_batch_each_element_stands_alone() -> None:
    elements = [
        {**GOOD, "device_id": "lum-1", "ts": 1795521000},
        {**GOOD, "device_id": "lum-2", "power_w": "high"},
        7,
        {**GOOD},
        {**GOOD, "device_id": "lum-5", "ts": 1795521000},
    ]
    decoded = decode("lighting/north/gw-1/batch", json.dumps(elements).encode(), NOW, LIMITS)
    assert [p.line.split(" ")[0] for p in decoded.points] == [
        "telemetry,device_id=lum-1,zone=north",
        "telemetry,device_id=lum-5,zone=north",
    ]
    rejected = [(r.index, r.reason) for r in decoded.dead_letters]
    assert rejected == [
        (1, Reason.WRONG_TYPE),
        (2, Reason.PAYLOAD_NOT_OBJECT),
        (3, Reason.MISSING_FIELD),
    ]
    assert json.loads(decoded.dead_letters[0].payload or "")["power_w"] == "high"
    assert all(r.topic == "lighting/north/gw-1/batch" for r in decoded.dead_letters)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"{}", Reason.BATCH_NOT_ARRAY), (b"[]", Reason.BATCH_EMPTY)],
)
def test_bad_batches(payload: bytes, reason: Reason) -> None:
    assert only_reason("lighting/north/gw-1/batch", payload) is reason


@pytest.mark.parametrize(
    ("payload", "line"),
    [
        (b'{"online": false}', f"status,device_id=lum-1,zone=north online=false {NOW_MS}"),
        (
            b'{"online": true, "faults": ["lamp_failure", "driver_overtemp"], '
            b'"firmware": "2.3.1", "ts": "2026-11-24T11:00:00Z"}',
            'status,device_id=lum-1,zone=north online=true,faults="lamp_failure,driver_overtemp",'
            'firmware="2.3.1" 1795518000000',
        ),
        (b'{"faults": []}', f'status,device_id=lum-1,zone=north faults="" {NOW_MS}'),
    ],
)
def test_status_points(payload: bytes, line: str) -> None:
    decoded = decode("lighting/north/lum-1/status", payload, NOW, fresh())
    assert [p.line for p in decoded.points] == [line]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{}", Reason.STATUS_EMPTY),
        (b'{"online": "no"}', Reason.WRONG_TYPE),
        (b'{"faults": ["Lamp Failure"]}', Reason.INVALID_VALUE),
        (b'{"faults": "lamp_failure"}', Reason.WRONG_TYPE),
        (b'{"firmware": "2.3\\n1"}', Reason.INVALID_VALUE),
        (b'{"online": true, "ts": "2026-11-24T11:00:00"}', Reason.NAIVE_TIMESTAMP),
    ],
)
def test_bad_status(payload: bytes, reason: Reason) -> None:
    assert only_reason("lighting/north/lum-1/status", payload) is reason


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)
READING_LIKE = st.fixed_dictionaries(
    {},
    optional={
        name: JSON_VALUES | st.floats(min_value=-10, max_value=6000)
        for name in ("lamp_on", "power_w", "energy_wh", "dim_pct", "ts", "seq", "device_id")
    },
)


@given(
    topic=st.sampled_from([TELEMETRY, "lighting/n/g/batch", "lighting/n/d/status", "x"]),
    payload=st.one_of(
        st.binary(max_size=200),
        READING_LIKE.map(lambda d: json.dumps(d).encode()),
        st.lists(READING_LIKE, max_size=4).map(lambda d: json.dumps(d).encode()),
    ),
)
def test_decode_never_raises_and_accounts_for_everything(topic: str, payload: bytes) -> None:
    decoded = decode(topic, payload, NOW, LIMITS)
    assert decoded.points or decoded.dead_letters
    for record in decoded.dead_letters:
        assert record.reason in Reason
        assert record.detail


def stamp_of(line: str) -> int:
    return int(line.rpartition(" ")[2])


def test_readings_without_ts_are_stamped_unique_per_device_in_the_order_received() -> None:
    """One receive time for a whole socket read: each device's readings get it, then one ms
    more each (issue 13: they overwrote each other); a device's own `ts` is never changed."""
    limits = fresh()
    topics = [TELEMETRY, TELEMETRY, "lighting/north/lum-2/telemetry", TELEMETRY]
    stamps = [stamp_of(decode(t, body(), NOW, limits).points[0].line) for t in topics]
    assert stamps == [NOW_MS, NOW_MS + 1, NOW_MS, NOW_MS + 2]
    with_ts = decode(TELEMETRY, body(ts=NOW_MS / 1000), NOW, limits).points[0].line
    assert stamp_of(with_ts) == NOW_MS
    status = decode("lighting/north/lum-1/status", b'{"online": true}', NOW, limits)
    assert stamp_of(status.points[0].line) == NOW_MS + 3
    later = datetime.fromtimestamp((NOW_MS + 10) / 1000, UTC)
    assert stamp_of(decode(TELEMETRY, body(), later, limits).points[0].line) == NOW_MS + 10


def test_a_batch_stamps_each_element_without_ts_and_rejected_ones_take_no_stamp() -> None:
    elements = [
        {**GOOD, "device_id": "lum-1"},
        {**GOOD, "device_id": "lum-1", "power_w": -1},
        {**GOOD, "device_id": "lum-2"},
        {**GOOD, "device_id": "lum-1"},
        {**GOOD, "device_id": "lum-1", "ts": NOW_MS / 1000},
        {**GOOD, "device_id": "lum-1"},
    ]
    for fast in (True, False):
        payload = json.dumps(elements).encode()
        decoded = decode("lighting/north/gw/batch", payload, NOW, fresh(), fast=fast)
        assert [stamp_of(p.line) for p in decoded.points] == [
            NOW_MS,
            NOW_MS,
            NOW_MS + 1,
            NOW_MS,
            NOW_MS + 2,
        ], fast
        assert [d.index for d in decoded.dead_letters] == [1]


def test_a_retained_message_writes_what_has_ts_and_counts_what_has_not() -> None:
    limits = Limits(topic_root="lighting", max_clock_skew_s=300, observe=True)
    batch = json.dumps(
        [{**GOOD, "device_id": "a", "ts": NOW_MS / 1000 - 1}, {**GOOD, "device_id": "b"}]
    ).encode()
    decoded = decode("lighting/north/gw/batch", batch, NOW, limits, retained=True)
    assert [stamp_of(p.line) for p in decoded.points] == [NOW_MS - 1000]
    assert decoded.retained_skipped == 1
    assert [(o.device_id, o.retained) for o in decoded.observations] == [("a", True), ("b", True)]
    assert decoded.observations[1].at == NOW
    for payload, written in ((b'{"online": true}', 0), (b'{"online": true, "ts": 1795521000}', 1)):
        status = decode("lighting/north/lum-1/status", payload, NOW, limits, retained=True)
        assert (len(status.points), status.retained_skipped) == (written, 1 - written)
    assert decode(TELEMETRY, body(), NOW, limits).points[0].line.endswith(f" {NOW_MS}")
