"""Sources beyond the contract, as pure functions: the path subset, the sources file, and each
adapter through `decode` — tables for what each maps and rejects, hypothesis for arbitrary input
(never raises; whatever becomes a point is exactly what the contract's full path makes of the
reading the adapter produced)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.adapters import DeviceDirectory, SourceRouter, SourcesError, parse_sources
from ingest.adapters.config import filter_matches
from ingest.adapters.paths import MAX_DEPTH, MISSING, PathError, compile_path, getter, lookup
from ingest.decode import Decoded, Limits, decode
from models import ID_PATTERN, Reading, Reason
from models.deadletter import PAYLOAD_KEPT_BYTES
from tests import adapter_payloads as forms

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
NOW_MS = 1795521600000
TS_MS = NOW_MS - 60_000
SAMPLES = Path(__file__).resolve().parent.parent / "deploy" / "sources"
DIRECTORY = DeviceDirectory(
    zones={"lum-1": "north", "lum-0043": "north", "0024befffe804ff1": "south"},
    by_eui={"0004a30b001c0530": "lum-0043"},
)
ROUTER = SourceRouter(parse_sources(forms.sources_toml("x")), "lighting", DIRECTORY)
LIMITS = Limits(topic_root="lighting", max_payload_bytes=65536, sources=ROUTER)
VALUES: dict[str, Any] = {
    "seq": 7,
    "lamp_on": True,
    "power_w": 42.5,
    "energy_wh": 123456.5,
    "voltage_v": 230.5,
    "dim_pct": 70,
    "driver_temp_c": 41.5,
}
TOPICS = {
    "chirpstack": "x/application/app/device/0101010101010101/event/up",
    "tts": "x/v3/street@city/devices/lum-1/up",
    "senml": "x/lwm2m/lum-1/senml",
    "vendor": "x/vendor/north/lum-1/data",
}


def lines_of(topic: str, payload: bytes) -> Decoded:
    return decode(topic, payload, NOW, LIMITS)


def contract_line(values: dict[str, Any], ts_ms: int, zone: str = "north") -> str:
    decoded = decode(
        f"lighting/{zone}/lum-1/telemetry",
        json.dumps({"ts": ts_ms / 1000, **values}).encode(),
        NOW,
        Limits(topic_root="lighting"),
    )
    assert not decoded.dead_letters
    return decoded.points[0].line


# ---- the path subset -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("$", ()),
        ("$.a", ("a",)),
        ("$.deviceInfo.tags.zone", ("deviceInfo", "tags", "zone")),
        ("$.rx[0].time", ("rx", 0, "time")),
        ("$.a-b.c_d[12]", ("a-b", "c_d", 12)),
    ],
)
def test_paths_compile_to_their_steps(text: str, steps: tuple[str | int, ...]) -> None:
    assert compile_path(text) == steps


@pytest.mark.parametrize(
    "text",
    [
        "a.b",
        "$..a",
        "$.a[*]",
        "$.a[-1]",
        "$.a[?(@.b)]",
        "$['a']",
        "$.a.",
        "$.a[01]",
        "$ .a",
        "$." + ".a" * 3,
        "$" + ".a" * (MAX_DEPTH + 1),
        "$.a[99999]",
    ],
)
def test_anything_outside_the_subset_is_refused(text: str) -> None:
    with pytest.raises(PathError):
        compile_path(text)


def test_lookup_finds_values_and_tells_missing_from_null() -> None:
    doc = {"a": {"b": [1, {"c": None}]}}
    assert lookup(doc, ("a", "b", 0)) == 1
    assert lookup(doc, ("a", "b", 1, "c")) is None
    assert lookup(doc, ("a", "b", 2)) is MISSING
    assert lookup(doc, ("a", 0)) is MISSING
    assert lookup(doc, ("a", "b", "c")) is MISSING
    assert lookup(5, ("a",)) is MISSING


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "object", "d", "0"]), inner, max_size=4)
    ),
    max_leaves=20,
)
steps_strategy = st.lists(
    st.sampled_from(["a", "b", "object", "d", "0"]) | st.integers(0, 5), max_size=MAX_DEPTH
)


@given(json_values, steps_strategy)
def test_lookup_never_raises_and_agrees_with_walking(doc: Any, steps: list[str | int]) -> None:
    found = lookup(doc, tuple(steps))
    value = doc
    for step in steps:
        in_object = isinstance(step, str) and isinstance(value, dict) and step in value
        in_array = isinstance(step, int) and isinstance(value, list) and step < len(value)
        if in_object or in_array:
            value = value[step]
        else:
            assert found is MISSING
            return
    assert found is value


key_steps = st.lists(st.sampled_from(["a", "b", "object", "d", "0"]), max_size=MAX_DEPTH)


@given(json_values, steps_strategy | key_steps)
def test_a_compiled_getter_finds_what_lookup_finds(doc: Any, steps: list[str | int]) -> None:
    """The getters made once per path (plain indexing for keys-only paths, up to 3 steps
    unrolled) agree with `lookup` on any JSON, the strings and scalars on the way included."""
    assert getter(tuple(steps))(doc) is lookup(doc, tuple(steps))


# ---- the sources file ----------------------------------------------------------------------


def test_the_example_sources_file_loads() -> None:
    sources = parse_sources((SAMPLES / "sources.example.toml").read_text())
    assert [s.adapter for s in sources] == ["chirpstack", "thethingsstack", "senml", "mapping"]


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        (
            '[[sources]]\nname = "a"\nadapter = "mapping"\ntopic = "v/#"\n',
            "sources:1: sources[0] (a): a mapping must declare device_id, zone, fields.lamp_on",
        ),
        (
            '[[sources]]\nname = "a"\nadapter = "chirpstack"\ntopic = "a/#"\n\n'
            '[[sources]]\nname = "b"\nadapter = "chirpstack"\ntopic = "#"\n',
            "sources:6: sources[1] (b).topic: matches luxtel/deadletter, luxtel's own output",
        ),
        (
            '[[sources]]\nname = "a"\nadapter = "chirpstack"\ntopic = "a/b#"\n',
            "a wildcard must fill its whole level",
        ),
        (
            '[[sources]]\nname = "a"\nadapter = "chirpstack"\ntopic = "a/#"\n'
            'fields.power_w = { path = "$.p", unit = "kWh" }\n',
            "power_w: unit 'kWh' is not one of W, kW, mW",
        ),
        (
            '[[sources]]\nname = "a"\nadapter = "chirpstack"\ntopic = "a/#"\n'
            'fields.power_w = "$.p[*]"\n',
            "only .name and [index] steps",
        ),
        (
            '[[sources]]\nname = "a"\nadapter = "chirpstack"\ntopic = "a/#"\npower = 1\n',
            "sources[0] (a).power: is not a known key",
        ),
        (
            '[[sources]]\nname = "a"\nadapter = "chirpstack"\ntopic = "a/#"\n'
            'fields.dim_pct = { path = "$.d", bit = 1 }\n',
            "bit and nonzero are for lamp_on only",
        ),
        (
            '[[sources]]\nname = "a"\nadapter = "luxtel"\ntopic = "a/+/x"\n',
            "a luxtel source's topic is {mqtt.topic_root}/#",
        ),
        (
            '[[sources]]\nname = "a"\nadapter = "chirpstack"\ntopic = "a/#"\n'
            '[[sources]]\nname = "a"\nadapter = "senml"\ntopic = "b/#"\n',
            "two sources are named",
        ),
        ("[[sources]\n", "not valid TOML"),
        (
            '[[sources]]\nname = "a"\nadapter = "senml"\ntopic = "luxtel/alerts/north/+"\n',
            "matches luxtel/alerts/+/+",
        ),
        (
            '[[sources]]\nname = "a"\nadapter = "senml"\ntopic = "+/deadletter"\n',
            "matches luxtel/deadletter",
        ),
    ],
)
def test_a_bad_sources_file_names_its_line_and_key(text: str, sentence: str) -> None:
    with pytest.raises(SourcesError) as caught:
        parse_sources(text)
    assert sentence.replace("Value error, ", "") in str(caught.value)


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        (
            '[[sources]]\nname = "a"\nadapter = "chirpstack"\ntopic = "a/#"\ndevice_id = "name"\n',
            'device_id = "name" (from record names) is for senml sources only',
        ),
        (
            '[[sources]]\nname = "a"\nadapter = "senml"\ntopic = "a/#"\n'
            'faults.x = { path = "$.s", bit = 1 }\n',
            "a senml source takes no faults",
        ),
    ],
)
def test_a_key_an_adapter_does_not_take_is_refused(text: str, sentence: str) -> None:
    with pytest.raises(SourcesError, match=re.escape(sentence)):
        parse_sources(text)


def test_a_source_under_the_contracts_root_is_refused() -> None:
    sources = parse_sources('[[sources]]\nname = "v"\nadapter = "senml"\ntopic = "lighting/v/#"\n')
    with pytest.raises(SourcesError, match=r"is under mqtt\.topic_root"):
        SourceRouter(sources, "lighting", DIRECTORY)
    luxtel = parse_sources('[[sources]]\nname = "c"\ntopic = "city/#"\n')
    with pytest.raises(SourcesError, match=re.escape("must be lighting/# (mqtt.topic_root)")):
        SourceRouter(luxtel, "lighting", DIRECTORY)
    assert not SourceRouter(
        parse_sources('[[sources]]\nname = "c"\ntopic = "lighting/#"\n'), "lighting"
    )


def test_inventory_sources_need_an_inventory() -> None:
    sources = parse_sources('[[sources]]\nname = "t"\nadapter = "thethingsstack"\ntopic = "v3/#"\n')
    with pytest.raises(SourcesError, match=r"inventory\.path is not set"):
        SourceRouter(sources, "lighting", None)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("+/+", "a/b/c", False),
        ("a/b", "a/b", True),
        ("#", "luxtel/deadletter", True),
    ],
)
def test_topic_filters_match_as_mqtt_does(topic_filter: str, topic: str, matches: bool) -> None:
    assert filter_matches(topic_filter.split("/"), topic.split("/")) is matches


# ---- each adapter: the same line as the contract reading --------------------------------------


def test_a_chirpstack_uplink_is_the_contract_reading() -> None:
    decoded = lines_of(TOPICS["chirpstack"], forms.chirpstack("lum-1", "north", TS_MS, VALUES))
    assert decoded.dead_letters == []
    assert [p.line for p in decoded.points] == [contract_line(VALUES, TS_MS)]
    assert decoded.points[0].topic == TOPICS["chirpstack"]


def test_a_tts_uplink_takes_its_zone_from_the_inventory() -> None:
    decoded = lines_of(TOPICS["tts"], forms.tts("lum-1", TS_MS, VALUES))
    assert [p.line for p in decoded.points] == [contract_line(VALUES, TS_MS)]


def test_a_senml_pack_with_base_values_and_kwh_is_the_contract_reading() -> None:
    decoded = lines_of(TOPICS["senml"], forms.senml("lum-1", TS_MS, VALUES))
    assert decoded.dead_letters == []
    without_seq = {k: v for k, v in VALUES.items() if k != "seq"}
    assert [p.line for p in decoded.points] == [contract_line(without_seq, TS_MS)]


def test_a_vendor_payload_with_kwh_and_tenths_is_the_contract_reading_and_its_faults() -> None:
    fresh = SourceRouter(parse_sources(forms.sources_toml("x")), "lighting", DIRECTORY)
    limits = Limits(topic_root="lighting", sources=fresh)  # no fault flags written before
    decoded = decode(TOPICS["vendor"], forms.vendor(TS_MS, VALUES, faults=0b11000), NOW, limits)
    without_seq = {k: v for k, v in VALUES.items() if k != "seq"}
    assert decoded.dead_letters == []
    assert decoded.points[0].line == contract_line(without_seq, TS_MS)
    assert decoded.points[1].line == (
        f'status,device_id=lum-1,zone=north faults="lamp_failure,driver_overtemp" {TS_MS}'
    )


def test_the_shipped_samples_map() -> None:
    for topic, name in [
        ("x/application/a/device/0101010101010142/event/up", "chirpstack-up.json"),
        ("x/v3/street@city/devices/lum-0043/up", "tts-up.json"),
        ("x/lwm2m/0024befffe804ff1/senml", "senml-pack.json"),
        ("x/vendor/north/lum-9/data", "vendor-data.json"),
    ]:
        received = datetime(2026, 12, 1, tzinfo=UTC)
        decoded = decode(topic, (SAMPLES / name).read_bytes(), received, LIMITS)
        assert decoded.dead_letters == [], name
        assert "power_w=42.5,energy_wh=123456.5" in decoded.points[0].line, name


def test_a_contract_topic_is_never_an_adapters() -> None:
    decoded = lines_of("lighting/north/lum-1/telemetry", forms.vendor(TS_MS, VALUES))
    assert decoded.dead_letters[0].reason == Reason.MISSING_FIELD


def test_a_topic_no_source_takes_is_rejected_as_before() -> None:
    decoded = lines_of("elsewhere/a/b", b"{}")
    assert decoded.dead_letters[0].reason == Reason.TOPIC_MALFORMED


# ---- what does not map -----------------------------------------------------------------------


def _reason(topic: str, payload: bytes | Any) -> tuple[Reason, str]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    decoded = lines_of(topic, raw)
    assert decoded.points == []
    assert len(decoded.dead_letters) >= 1
    record = decoded.dead_letters[0]
    if len(raw) <= PAYLOAD_KEPT_BYTES:
        assert record.payload == raw.decode()
    else:  # the original kept as the dead letter keeps any large payload: its head, size, hash
        assert raw.decode().startswith(record.payload or "")
        assert record.payload_bytes == len(raw)
        assert record.payload_sha256 == hashlib.sha256(raw).hexdigest()
    return record.reason, record.detail


def _cs(**changes: Any) -> Any:
    body = json.loads(forms.chirpstack("lum-1", "north", TS_MS, VALUES))
    for path, value in changes.items():
        node = body
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return body


@pytest.mark.parametrize(
    ("changes", "reason", "detail"),
    [
        (
            {"object__power_w": ...},
            Reason.UNMAPPED_FIELD,
            "chirpstack source 'chirpstack': power_w: path $.object.power_w not found",
        ),
        ({"object": ...}, Reason.UNMAPPED_FIELD, "path $.object.lamp_on not found"),
        ({"object__energy_wh": None}, Reason.UNMAPPED_FIELD, "$.object.energy_wh is null"),
        ({"deviceInfo__tags": {}}, Reason.UNMAPPED_FIELD, "zone: path $.deviceInfo.tags.zone"),
        ({"deviceInfo__tags__zone": "no zone"}, Reason.INVALID_ZONE, "zone 'no zone'"),
        ({"deviceInfo__deviceName": "a,b=c"}, Reason.INVALID_DEVICE_ID, "device_id 'a,b=c'"),
        ({"deviceInfo__deviceName": 5}, Reason.INVALID_DEVICE_ID, "not a string"),
        ({"object__power_w": "42.5"}, Reason.WRONG_TYPE, "power_w"),
        ({"object__lamp_on": 1}, Reason.WRONG_TYPE, "lamp_on"),
        ({"object__power_w": 9000}, Reason.OUT_OF_RANGE, "power_w"),
        ({"time": "2026-11-24T12:00:00"}, Reason.NAIVE_TIMESTAMP, "ts"),
        ({"time": "2026-11-25T12:00:00Z"}, Reason.TIMESTAMP_IN_FUTURE, "ts"),
    ],
)
def test_a_chirpstack_uplink_that_does_not_map_says_what(
    changes: dict[str, Any], reason: Reason, detail: str
) -> None:
    got, sentence = _reason(TOPICS["chirpstack"], _cs(**changes))
    assert got == reason
    assert detail in sentence


def test_a_device_the_inventory_does_not_know_is_not_guessed_into_a_zone() -> None:
    got, sentence = _reason(
        "x/v3/street@city/devices/stranger/up", forms.tts("stranger", TS_MS, VALUES)
    )
    assert got == Reason.UNKNOWN_DEVICE
    assert "'stranger' is not in the inventory" in sentence


def test_an_eui_is_looked_up_in_the_inventory() -> None:
    sources = parse_sources(
        '[[sources]]\nname = "t"\nadapter = "thethingsstack"\ntopic = "v3/#"\n'
        'device_id = "eui:$.end_device_ids.dev_eui"\n'
    )
    limits = Limits(topic_root="lighting", sources=SourceRouter(sources, "lighting", DIRECTORY))
    payload = (SAMPLES / "tts-up.json").read_bytes()
    received = datetime(2026, 12, 1, tzinfo=UTC)
    decoded = decode("v3/a@b/devices/whatever/up", payload, received, limits)
    assert decoded.points[0].line.startswith("telemetry,device_id=lum-0043,zone=north ")
    unknown = payload.replace(b"0004A30B001C0530", b"0004A30B001C0531")
    decoded = decode("v3/a@b/devices/whatever/up", unknown, received, limits)
    assert decoded.dead_letters[0].reason == Reason.UNKNOWN_DEVICE


@pytest.mark.parametrize(
    ("pack", "reason", "detail"),
    [
        ({"n": "x"}, Reason.SENML_INVALID, "JSON array"),
        ([], Reason.SENML_INVALID, "non-empty"),
        ([5], Reason.SENML_INVALID, "record 0 is not an object"),
        ([{"n": "3305/0/5800", "v": "1"}], Reason.SENML_INVALID, "v is '1', not a number"),
        ([{"n": "3305/0/5800", "v": 1, "vb": True}], Reason.SENML_INVALID, "has v, vb"),
        ([{"n": "3305/0/5800"}], Reason.SENML_INVALID, "no value"),
        ([{"n": "3305/0/5800", "v": 1, "x_": 1}], Reason.SENML_INVALID, "must be understood"),
        ([{"bver": 11, "n": "3305/0/5800", "v": 1}], Reason.SENML_INVALID, "bver 11"),
        ([{"n": "9999/0/1", "v": 1}], Reason.UNMAPPED_FIELD, "no record whose name"),
        ([{"n": "3305/0/5800", "v": 1}], Reason.UNMAPPED_FIELD, "lamp_on, energy_wh"),
        ([{"n": "3305/0/5800", "u": "kWh", "v": 1}], Reason.UNIT_MISMATCH, "unit 'kWh'"),
    ],
)
def test_a_senml_pack_that_does_not_map_says_what(pack: Any, reason: Reason, detail: str) -> None:
    got, sentence = _reason(TOPICS["senml"], pack)
    assert got == reason
    assert detail in sentence


def test_senml_relative_times_count_from_the_receive_time_and_devices_from_names() -> None:
    sources = parse_sources(
        '[[sources]]\nname = "s"\nadapter = "senml"\ntopic = "s/#"\ndevice_id = "name"\n'
    )
    limits = Limits(topic_root="lighting", sources=SourceRouter(sources, "lighting", DIRECTORY))
    pack = [
        {"bn": "urn:dev:mac:0024befffe804ff1/", "bt": -60, "n": "3311/0/5850", "vb": True},
        {"n": "3305/0/5800", "v": 40},
        {"n": "3305/0/5805", "u": "J", "v": 36000},
        {"bt": 0, "n": "3311/0/5850", "vb": False},
        {"n": "3305/0/5800", "v": 0},
        {"n": "3305/0/5805", "v": 10.5},
        {"n": "3311/0/5851", "u": "/", "v": 0.5},
    ]
    decoded = decode("s/a", orjson.dumps(pack), NOW, limits)
    assert [p.line for p in decoded.points] == [
        f"telemetry,device_id=0024befffe804ff1,zone=south lamp_on=true,power_w=40.0,"
        f"energy_wh=10.0 {NOW_MS - 60_000}",
        f"telemetry,device_id=0024befffe804ff1,zone=south lamp_on=false,power_w=0.0,"
        f"energy_wh=10.5,dim_pct=50i {NOW_MS}",
    ]


@pytest.mark.parametrize(
    ("data", "reason", "detail"),
    [
        ({"pwr": 1, "kwh": 1, "st": 1.5}, Reason.WRONG_TYPE, "$.d.st holds 1.5, not an integer"),
        ({"pwr": 1, "kwh": 1, "st": 1, "tmp": "415"}, Reason.WRONG_TYPE, "driver_temp_c"),
        ({"pwr": 1, "kwh": 1e308, "st": 1}, Reason.NOT_FINITE, "energy_wh"),
        ({"pwr": 1, "kwh": -0.5, "st": 1}, Reason.OUT_OF_RANGE, "energy_wh"),
        ({"pwr": 1, "st": 1}, Reason.UNMAPPED_FIELD, "energy_wh: path $.d.kwh not found"),
        ({"pwr": 1, "kwh": 1, "st": True}, Reason.WRONG_TYPE, "$.d.st holds True"),
    ],
)
def test_a_vendor_payload_that_does_not_map_says_what(
    data: dict[str, Any], reason: Reason, detail: str
) -> None:
    got, sentence = _reason(TOPICS["vendor"], {"t": TS_MS, "d": data})
    assert got == reason, sentence
    assert detail in sentence


# ---- arbitrary input ---------------------------------------------------------------------------


_ID = ID_PATTERN.strip("^$")
LINE = re.compile(
    rf"(telemetry|status),device_id={_ID},zone={_ID} "
    r"[a-z_]+=[^ \n]*(,[a-z_]+=[^\n]*)* -?\d+"
)


def _reference(decoded: Decoded) -> None:
    """Every line the adapter path wrote is the contract's: measurement, tags, no injection."""
    for point in decoded.points:
        assert LINE.fullmatch(point.line), point.line


payload_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "object",
                    "deviceInfo",
                    "tags",
                    "zone",
                    "deviceName",
                    "time",
                    "power_w",
                    "lamp_on",
                    "energy_wh",
                    "d",
                    "pwr",
                    "kwh",
                    "st",
                    "t",
                    "n",
                    "v",
                    "vb",
                    "bn",
                    "bt",
                    "bv",
                    "u",
                    "uplink_message",
                    "decoded_payload",
                    "end_device_ids",
                    "device_id",
                    "dim_pct",
                ]
            ),
            inner,
            max_size=6,
        )
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(TOPICS)), payload_values)
def test_no_payload_makes_an_adapter_raise(form: str, body: Any) -> None:
    try:
        raw = orjson.dumps(body)
    except (orjson.JSONEncodeError, TypeError):
        raw = json.dumps(body).encode()
    decoded = decode(TOPICS[form], raw, NOW, LIMITS)
    assert decoded.points or decoded.dead_letters
    _reference(decoded)
    for record in decoded.dead_letters:
        assert record.reason
        assert record.detail


reading_values = st.fixed_dictionaries(
    {
        "lamp_on": st.booleans(),
        "power_w": st.floats(0, 5000) | st.integers(0, 5000),
        "energy_wh": st.floats(0, 1e9),
    },
    optional={
        "dim_pct": st.integers(0, 100),
        "voltage_v": st.floats(0, 600),
        "seq": st.integers(0, 2**40),
    },
)


@settings(max_examples=200, deadline=None)
@given(reading_values, st.booleans())
def test_a_mapped_reading_is_what_the_contract_path_makes_of_it(
    values: dict[str, Any], fast: bool
) -> None:
    payload = forms.chirpstack("lum-1", "north", TS_MS, values)
    decoded = decode(TOPICS["chirpstack"], payload, NOW, LIMITS, fast=fast)
    contract = {"ts": TS_MS / 1000, **values}
    expected = decode(
        "lighting/north/lum-1/telemetry",
        json.dumps(contract).encode(),
        NOW,
        Limits(topic_root="lighting"),
        fast=fast,
    )
    assert [_values(p.line) for p in decoded.points] == [_values(p.line) for p in expected.points]
    assert [d.reason for d in decoded.dead_letters] == [d.reason for d in expected.dead_letters]


def _values(line: str) -> tuple[str, dict[str, object], str]:
    """A line's series, field values and time: the C fast path copies a decimal literal as it
    came (`0.00001`) where Python writes `1e-05` — the same double, the same point."""
    series, fields, ts = line.split(" ")
    values: dict[str, object] = {}
    for field in fields.split(","):
        key, text = field.split("=")
        values[key] = text if text.endswith("i") or text in ("true", "false") else float(text)
    return series, values, ts


def test_a_mapping_takes_values_by_index_and_numbers_as_booleans() -> None:
    sources = parse_sources(
        '[[sources]]\nname = "m"\nadapter = "mapping"\ntopic = "m/+/+"\n'
        'device_id = "topic:3"\nzone = "topic:2"\nts = "$.ts"\n'
        'fields.lamp_on = { path = "$.on", nonzero = true }\n'
        'fields.power_w = { path = "$.values[0]", unit = "kW" }\n'
        'fields.energy_wh = "$.values[1]"\n'
        'fields.dim_pct = { path = "$.dim", unit = "/" }\n'
    )
    limits = Limits(topic_root="lighting", sources=SourceRouter(sources, "lighting", None))
    body = {"ts": TS_MS / 1000, "on": 2, "values": [0.0425, 1000], "dim": 0.354}
    decoded = decode("m/north/lum-1", orjson.dumps(body), NOW, limits)
    assert [p.line for p in decoded.points] == [
        f"telemetry,device_id=lum-1,zone=north lamp_on=true,power_w=42.5,energy_wh=1000.0,"
        f"dim_pct=35i {TS_MS}"
    ]
    decoded = decode("m/north/lum-1", orjson.dumps({**body, "values": [0.0425]}), NOW, limits)
    assert decoded.dead_letters[0].reason == Reason.UNMAPPED_FIELD
    assert "energy_wh: path $.values[1] not found" in decoded.dead_letters[0].detail


def test_fault_flags_are_written_when_they_change() -> None:
    router = SourceRouter(parse_sources(forms.sources_toml("x")), "lighting", DIRECTORY)
    limits = Limits(topic_root="lighting", sources=router)

    def statuses(faults: int, ts_ms: int) -> list[str]:
        payload = forms.vendor(ts_ms, VALUES, faults=faults)
        decoded = decode(TOPICS["vendor"], payload, NOW, limits)
        assert decoded.points[0].line.startswith("telemetry,")
        return [p.line for p in decoded.points[1:]]

    assert statuses(0, TS_MS) == [f'status,device_id=lum-1,zone=north faults="" {TS_MS}']
    assert statuses(0, TS_MS + 1) == []
    assert statuses(0b1000, TS_MS + 2) == [
        f'status,device_id=lum-1,zone=north faults="lamp_failure" {TS_MS + 2}'
    ]
    assert statuses(0b1000, TS_MS + 3) == []
    assert statuses(0, TS_MS + 4) == [f'status,device_id=lum-1,zone=north faults="" {TS_MS + 4}']


def test_mapped_readings_are_observed_for_the_rules_and_rate_limited_per_device() -> None:
    from ingest.rate_limit import RateLimiter

    limits = Limits(topic_root="lighting", sources=ROUTER, observe=True)
    payload = forms.chirpstack("lum-1", "north", TS_MS, VALUES)
    decoded = decode(TOPICS["chirpstack"], payload, NOW, limits)
    [seen] = decoded.observations
    assert (seen.zone, seen.device_id, seen.received_at) == ("north", "lum-1", NOW)
    assert seen.at == datetime.fromtimestamp(TS_MS / 1000, UTC)
    assert isinstance(seen.reading, Reading)
    assert seen.reading.power_w == VALUES["power_w"]
    limiter = RateLimiter(1.0, 1)
    first = decode(TOPICS["chirpstack"], payload, NOW, LIMITS, limiter)
    second = decode(TOPICS["chirpstack"], payload, NOW, LIMITS, limiter)
    assert len(first.points) == 1
    assert second.points == []
    assert second.dead_letters[0].reason == Reason.RATE_LIMITED
    assert "'lum-1' sent more than 1 messages/s" in second.dead_letters[0].detail


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        # found by fuzz/fuzz_ingest.py: an integral float far beyond 64 bits for dim_pct
        (
            TOPICS["vendor"],
            b'{"t": 157745, "d": {"pwr": 42.5, "kwh": 1, "st": 31, "dim": 7' + b"6" * 68 + b"0}}",
        ),
        (
            TOPICS["senml"],
            b'[{"n": "3311/0/5851", "u": "/", "v": 1e300}, {"n": "3311/0/5850", "vb": true},'
            b' {"n": "3305/0/5800", "v": 1}, {"n": "3305/0/5805", "v": 1}]',
        ),
        (TOPICS["chirpstack"], forms.chirpstack("lum-1", "north", TS_MS, {**VALUES, "seq": 1e30})),
    ],
)
def test_an_integer_field_far_out_of_range_is_rejected_not_raised(
    topic: str, payload: bytes
) -> None:
    decoded = lines_of(topic, payload)
    assert decoded.points == []
    assert decoded.dead_letters[0].reason == Reason.OUT_OF_RANGE
