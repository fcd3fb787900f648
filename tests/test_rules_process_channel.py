"""The channel between `luxtel run` and its rules process: observations decoded by the real
decoder cross it unchanged (models, fields sent, extra fields, time zones), frames end cleanly
at the end of the stream, and metrics arrive as the child's registry collected them."""

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel

from ingest.decode import Limits, decode
from models import BatchReading, Observation, Reading, Status
from rules.runtime.channel import (
    ChannelError,
    Kind,
    decode_alert,
    decode_log,
    decode_metrics,
    decode_observations,
    encode_alert,
    encode_log,
    encode_metrics,
    encode_observations,
    frame,
    read_frame,
)

NOW = datetime(2026, 11, 24, 12, 0, 0, 250_001, tzinfo=UTC)
LIMITS = Limits(topic_root="lighting", max_clock_skew_s=1e9, observe=True)


def observed(topic: str, payload: Any) -> list[Observation]:
    decoded = decode(topic, json.dumps(payload).encode(), NOW, LIMITS)
    assert decoded.observations, decoded.dead_letters
    return decoded.observations


def assert_same(sent: list[Observation], received: list[Observation]) -> None:
    assert received == sent
    for before, after in zip(sent, received, strict=True):
        for model_before, model_after in (
            (before.reading, after.reading),
            (before.status, after.status),
        ):
            if model_before is None:
                assert model_after is None
                continue
            assert isinstance(model_before, BaseModel)
            assert isinstance(model_after, BaseModel)
            assert type(model_after) is type(model_before)
            assert model_after.model_fields_set == model_before.model_fields_set
            assert model_after.model_extra == model_before.model_extra
            assert model_after.model_dump() == model_before.model_dump()


def test_readings_statuses_and_batches_cross_unchanged() -> None:
    sent = [
        *observed(
            "lighting/north/lum-1/telemetry",
            {
                "ts": "2026-11-24T19:30:00.123456+08:00",
                "lamp_on": True,
                "power_w": 42.5,
                "energy_wh": 1000,
                "voltage_v": None,
                "driver_temp_c": 61.0,
                "vendor_field": {"nested": [1, 2.5, "x"]},
                "huge": 123456789012345678901234567890,
            },
        ),
        *observed(
            "lighting/north/lum-2/telemetry", {"lamp_on": False, "power_w": 0, "energy_wh": 5}
        ),
        *observed(
            "lighting/south/gw-1/batch",
            [
                {
                    "device_id": "lum-3",
                    "ts": 1795521600.5,
                    "lamp_on": True,
                    "power_w": 9.0,
                    "energy_wh": 1.0,
                },
                {"device_id": "lum-4", "lamp_on": True, "power_w": 9.0, "energy_wh": 2.0, "seq": 7},
            ],
        ),
        *observed(
            "lighting/north/lum-1/status",
            {"online": True, "faults": ["driver_overtemp"], "firmware": "2.3.1", "extra": 1},
        ),
        *observed("lighting/north/lum-1/status", {"online": False}),
    ]
    sent[1] = replace(sent[1], retained=True)
    batch_element = BatchReading(device_id="lum-5", lamp_on=True, power_w=1.0, energy_wh=2.0)
    sent.append(replace(sent[0], device_id="lum-5", reading=batch_element))
    assert {type(o.reading) for o in sent if o.reading} == {Reading, BatchReading}
    assert any(isinstance(o.status, Status) for o in sent)
    assert_same(sent, decode_observations(encode_observations(sent)))


@given(
    temp=st.floats(min_value=-60, max_value=200),
    seq=st.integers(min_value=0, max_value=2**63 - 1),
    dim=st.one_of(st.none(), st.integers(min_value=0, max_value=100)),
    micros=st.integers(min_value=0, max_value=999_999),
    extra=st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda k: k not in Reading.model_fields),
        st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text()),
        max_size=3,
    ),
)
def test_any_valid_reading_crosses_unchanged(
    temp: float, seq: int, dim: int | None, micros: int, extra: dict[str, Any]
) -> None:
    payload: dict[str, Any] = {
        **extra,
        "ts": f"2026-11-24T12:00:00.{micros:06d}Z",
        "lamp_on": True,
        "power_w": 40.0,
        "energy_wh": 10.0,
        "driver_temp_c": temp,
        "seq": seq,
    }
    if dim is not None:
        payload["dim_pct"] = dim
    sent = observed("lighting/north/lum-1/telemetry", payload)
    assert_same(sent, decode_observations(encode_observations(sent)))


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def test_frames_in_order_then_the_end() -> None:
    async def main() -> None:
        alert = encode_alert("luxtel/alerts/north/lum-1", b'{"state":"firing"}')
        reader = reader_of(frame(Kind.ALERT, alert) + frame(Kind.LOG, encode_log({"event": "x"})))
        first = await read_frame(reader)
        assert first is not None
        assert first[0] is Kind.ALERT
        assert decode_alert(first[1]) == ("luxtel/alerts/north/lum-1", b'{"state":"firing"}')
        second = await read_frame(reader)
        assert second is not None
        assert (second[0], decode_log(second[1])) == (Kind.LOG, {"event": "x"})
        assert await read_frame(reader) is None

    asyncio.run(main())


def test_a_frame_cut_short_is_the_end_and_garbage_is_an_error() -> None:
    async def main() -> None:
        assert await read_frame(reader_of(frame(Kind.METRICS, b"[]")[:-1])) is None
        with pytest.raises(ChannelError):
            await read_frame(reader_of(b"\x00\x00\x00\x02\x63x"))
        with pytest.raises(ChannelError):
            await read_frame(reader_of(b"\xff\xff\xff\xff\x01"))

    asyncio.run(main())


def test_a_log_event_with_values_json_cannot_hold_is_still_sent() -> None:
    event: dict[Any, Any] = {"event": "e", "path": NOW, "error": ValueError("bad"), 3: "k"}
    received = decode_log(encode_log(event))
    assert received == {
        "event": "e",
        "path": "2026-11-24T12:00:00.250001+00:00",
        "error": "bad",
        "3": "k",
    }


def test_metrics_arrive_as_the_child_collected_them() -> None:
    child = CollectorRegistry()
    Counter("luxtel_rules_observations", "Evaluated.", registry=child).inc(3)
    Gauge("luxtel_alerts_firing", "Firing.", ["rule", "severity"], registry=child).labels(
        "hot", "major"
    ).set(2)
    Histogram(
        "luxtel_rules_evaluation_seconds", "Cycle.", buckets=(0.1, 1), registry=child
    ).observe(0.5)
    Gauge("luxtel_nan", "Not a number.", registry=child).set(float("nan"))
    parent = CollectorRegistry()
    families = decode_metrics(encode_metrics(list(child.collect())))

    class Forwarded:
        def collect(self) -> list[Any]:
            return families

    parent.register(Forwarded())
    for name, labels in [
        ("luxtel_rules_observations_total", {}),
        ("luxtel_alerts_firing", {"rule": "hot", "severity": "major"}),
        ("luxtel_rules_evaluation_seconds_bucket", {"le": "1.0"}),
        ("luxtel_rules_evaluation_seconds_bucket", {"le": "+Inf"}),
        ("luxtel_rules_evaluation_seconds_sum", {}),
    ]:
        assert parent.get_sample_value(name, labels) == child.get_sample_value(name, labels)
    value = parent.get_sample_value("luxtel_nan")
    assert value is not None
    assert value != value, "NaN arrives as NaN"
