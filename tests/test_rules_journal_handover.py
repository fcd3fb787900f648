"""What the rules process gets back from the journal is what the decoder made (issue 15: the
hand-over without models). For any messages — telemetry and gateway batches, through the C fast
path or the pydantic path, readings with and without `ts`, fields sent as null, unknown fields,
statuses, retained messages, floats of every magnitude, ids of every allowed character —
every observation `luxtel run` hands over (`Limits.hand_over`: the fast path's readings as
journal entries the C module wrote as JSON), appended to a real journal and read back, gives
the rules the same zone, device, times, retained flag, `lamp_on` and `reading_map` (entries,
order and every float's exact double, its sign included), and the same status, as the
decoder's own observation of the same message (`Limits.observe`, with models); a record of the
previous format (version 1) is still read, one of a later format set aside."""

import asyncio
import json
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import reading_lines
from ingest.decode import Decoded, Limits, decode_into
from ingest.messages import Inbound
from ingest.metrics import IngestMetrics
from ingest.stages import decode_chunk
from models import Handed, JournalRun, Observation, Reading, SentReading
from models.identifiers import ID_PATTERN
from models.timestamps import epoch_ms
from rules.language.expressions import reading_map
from rules.runtime.channel import encode_observations, handed_count
from rules.runtime.journal import START, Body
from rules.runtime.journal_reader import JournalReader
from rules.runtime.journal_writer import JournalWriter
from tests.rules_fixtures import reading

NOW = datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC)
SKEW_S = 300.0

ANY_MAGNITUDE = st.floats(0, allow_infinity=False) | st.floats(0, 1e-300) | st.floats(1e15, 1e25)
"""Non-negative finite doubles of every magnitude: subnormals, the exponent forms repr writes
(`1e-05`, `1e+16`), up to the largest double."""

OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "voltage_v": st.floats(0, 600) | st.integers(0, 600),
    "current_a": st.floats(0, 50) | st.floats(0, 1e-5),
    "power_factor": st.floats(0, 1) | st.sampled_from([0, 1, 0.0, 5e-324, 1e-7]),
    "dim_pct": st.integers(0, 100),
    "driver_temp_c": st.floats(-60, 200) | st.integers(-60, 200) | st.sampled_from([-0.0, 0.0]),
    "lux": st.floats(0, 1e6) | st.integers(0, 10**6) | ANY_MAGNITUDE,
    "seq": st.integers(0, 2**63 - 1) | st.integers(0, 9),
}
TIMESTAMPS = (
    st.integers(-3 * 86_400_000_000, int(SKEW_S * 1e6)).map(
        lambda us: (NOW + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")
    )
    | st.integers(-86_400_000, 0).map(lambda ms: (NOW + timedelta(milliseconds=ms)).timestamp())
    | st.sampled_from(["2026-11-24T19:59:00.250+08:00", "2026-11-24T11:59:00.1234567Z"])
)
IDENTIFIERS = st.from_regex(ID_PATTERN.rstrip("$"), fullmatch=True)
"""Zones and ids of every allowed character (letters, digits, `_.:-`, 1 to 64)."""
DEVICES = st.sampled_from(["lum-1", "lum-2", "lum-3"]) | IDENTIFIERS
ZONES = st.sampled_from(["north", "south"]) | IDENTIFIERS


@st.composite
def reading_bodies(draw: st.DrawFn, device: str | None) -> dict[str, Any]:
    """A valid reading of `device` (None: no `device_id`, or null): each optional field left
    out, sent as null or sent; `ts` left out, null, a string or epoch seconds; now and then an
    unknown field (the fast path leaves those to the pydantic path)."""
    body: dict[str, Any] = {
        "lamp_on": draw(st.booleans()),
        "power_w": draw(st.floats(0, 5000) | st.integers(0, 5000)),
        "energy_wh": draw(st.floats(0, 1e12) | st.integers(0, 10**12) | ANY_MAGNITUDE),
    }
    for name, values in OPTIONAL.items():
        choice = draw(st.integers(0, 2))
        if choice:
            body[name] = None if choice == 1 else draw(values)
    choice = draw(st.integers(0, 3))
    if choice:
        body["ts"] = None if choice == 1 else draw(TIMESTAMPS)
    if device is not None:
        body["device_id"] = device
    elif draw(st.integers(0, 4)) == 0:
        body["device_id"] = None
    if draw(st.integers(0, 7)) == 0:
        body["rssi"] = draw(st.integers(-120, 0) | st.none())
    return {name: body[name] for name in draw(st.permutations(list(body)))}


@st.composite
def status_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"online": draw(st.booleans())}
    if draw(st.booleans()):
        body["faults"] = draw(st.lists(st.sampled_from(["lamp_failure", "driver_overtemp"])))
    if draw(st.booleans()):
        body["firmware"] = "2.3.1"
    if draw(st.booleans()):
        body["ts"] = draw(TIMESTAMPS)
    return body


STEPS_US = st.sampled_from([0, 0, 0, 300, 1000, 2500, 60_000, -1000])
"""How the receive time moves from one message to the next (as in tests/test_fast_path.py)."""


@st.composite
def message_lists(draw: st.DrawFn) -> list[tuple[str, bytes, int, bool]]:
    """(topic, payload, receive-time step in µs, retained): telemetry, batches and statuses."""
    messages = []
    for _ in range(draw(st.integers(1, 10))):
        step, retained = draw(STEPS_US), draw(st.integers(0, 7)) == 0
        device = draw(DEVICES)
        kind = draw(st.sampled_from(["telemetry", "telemetry", "batch", "status"]))
        body: Any
        zone = draw(ZONES)
        if kind == "telemetry":
            body = draw(reading_bodies(None if draw(st.booleans()) else device))
            topic = f"lighting/{zone}/{device}/telemetry"
        elif kind == "batch":
            body = [draw(reading_bodies(draw(DEVICES))) for _ in range(draw(st.integers(1, 4)))]
            topic = f"lighting/{zone}/gw-1/batch"
        else:
            body = draw(status_bodies())
            topic = f"lighting/{zone}/{device}/status"
        messages.append((topic, json.dumps(body).encode(), step, retained))
    return messages


def decoded(messages: list[tuple[str, bytes, int, bool]], fast: bool, hand_over: bool) -> Decoded:
    """The messages decoded in order as the ingester decodes them, with fresh limits (so both
    decodings stamp readings without `ts` alike)."""
    limits = Limits(
        topic_root="lighting", max_clock_skew_s=SKEW_S, observe=True, hand_over=hand_over
    )
    out = Decoded()
    received_at = NOW
    for topic, payload, step_us, retained in messages:
        received_at += timedelta(microseconds=step_us)
        decode_into(
            out, topic, payload, received_at, epoch_ms(received_at), limits, None, fast, retained
        )
    return out


def through_journal(directory: Path, chunks: list[list[Handed]]) -> list[Observation]:
    """Appended to a real journal, as the sink does, and read back as the rules process does."""
    journal = JournalWriter(directory, 64 << 20)

    async def append() -> None:
        for handed in chunks:
            await journal.append(handed)

    asyncio.run(append())
    journal.close()
    reader = JournalReader(directory, START)
    out: list[Observation] = []
    while records := reader.read(journal.end.offset):
        for record in records:
            out += reader.decode(record)
    return out


def exactly(value: Any) -> Any:
    """A value compared exactly: a float as its type and repr (-0.0 is not 0.0 here)."""
    return (float, repr(value)) if isinstance(value, float) else value


def rules_view(observation: Observation) -> tuple[Any, ...]:
    """What the rules read of an observation (`rules.evaluation.evaluator`), floats exactly."""
    got = observation.reading
    seen = (
        None
        if got is None
        else (got.lamp_on, [(k, exactly(v)) for k, v in reading_map(got).items()])
    )
    return (
        observation.zone,
        observation.device_id,
        observation.at,
        observation.at.utcoffset(),
        observation.received_at,
        observation.retained,
        seen,
        observation.status,
    )


@settings(
    max_examples=300,
    deadline=None,  # a real journal, fsynced: no timed assertion
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(messages=message_lists(), fast=st.booleans(), split=st.integers(0, 10))
def test_the_rules_get_back_what_the_decoder_made(
    tmp_path_factory: pytest.TempPathFactory,
    messages: list[tuple[str, bytes, int, bool]],
    fast: bool,
    split: int,
) -> None:
    made = decoded(messages, fast, hand_over=False)
    handed = decoded(messages, fast, hand_over=True)
    assert handed.observations == [], "with hand_over, everything is in `handed`"
    assert [p.line for p in handed.points] == [p.line for p in made.points]
    assert handed_count(handed.handed) == len(made.observations)
    if not fast:
        assert all(isinstance(h, Observation) for h in handed.handed), "models on the full path"
    for run in handed.handed:
        if isinstance(run, JournalRun):  # the C module's entries, comma-separated
            assert len(orjson.loads(b"[" + run + b"]")) == run.readings
    got = through_journal(
        tmp_path_factory.mktemp("journal"), [handed.handed[:split], handed.handed[split:]]
    )
    assert [rules_view(o) for o in got] == [rules_view(o) for o in made.observations]
    assert got == made.observations, "equal, a SentReading to the Reading that sent its fields"
    for before, after in zip(made.observations, got, strict=True):
        assert isinstance(after.reading, SentReading) == (before.reading is not None)
        assert isinstance(before.reading, Reading) == (before.reading is not None)


def test_the_fast_path_hands_plain_data_and_the_full_path_observations_in_order() -> None:
    """Plain readings are handed as their journal entries, JSON the C module wrote into one
    run (no Python object per reading); one the fast path leaves (an unknown field) and a
    status as Observations, and the plain reading after them in a run of its own: one list, in
    the messages' order."""
    limits = Limits(topic_root="lighting", observe=True, hand_over=True)
    plain = b'{"lamp_on": true, "power_w": 40.0, "energy_wh": 1.5, "lux": null}'
    batch = b'[{"device_id": "d2", "lamp_on": true, "power_w": 9, "energy_wh": 3}]'
    odd = b'{"lamp_on": false, "power_w": 0, "energy_wh": 2, "rssi": -80}'
    chunk = [
        Inbound("lighting/z/d1/telemetry", plain, False, NOW, None),
        Inbound("lighting/z/gw/batch", batch, False, NOW, None),
        Inbound("lighting/z/d1/telemetry", odd, False, NOW, None),
        Inbound("lighting/z/d1/status", b'{"online": true}', False, NOW, None),
        Inbound("lighting/z/d1/telemetry", plain, False, NOW, None),
    ]
    handed: list[Handed] = []
    decode_chunk(chunk, limits, IngestMetrics(), handed=handed)
    first, second, third, fourth = handed
    assert isinstance(first, JournalRun), "the readings' journal entries, written by the C module"
    assert first.readings == 2
    received = NOW.isoformat()
    at_us = epoch_ms(NOW) * 1000
    assert orjson.loads(b"[" + first + b"]") == [
        ["z", "d1", at_us, received, False, {**json.loads(plain)}],
        ["z", "d2", at_us, received, False, {"lamp_on": True, "power_w": 9.0, "energy_wh": 3.0}],
    ]
    assert isinstance(second, Observation)
    assert isinstance(second.reading, Reading)
    assert isinstance(third, Observation)
    assert third.status is not None
    assert isinstance(fourth, JournalRun)
    assert fourth.readings == 1
    # d1's fourth receive stamp: its reading, reading and status before took the ms before it.
    assert orjson.loads(b"[" + fourth + b"]")[0][:3] == ["z", "d1", at_us + 3000]


@settings(max_examples=300)
@given(
    bodies=st.lists(reading_bodies(None), min_size=1, max_size=4),
    devices=st.lists(DEVICES, min_size=4, max_size=4),
    before=st.sampled_from([b"", b'["z","d0",1,"t",false,{}]']),
    batch=st.booleans(),
)
def test_a_run_holds_the_entries_the_c_module_hands_one_by_one(
    bodies: list[dict[str, Any]], devices: list[str], before: bytes, batch: bool
) -> None:
    """Appended to a run, the C module's entries are exactly the ones it hands back one by
    one (`Entry`), comma-separated after what the run held; the lines are the same; and a
    batch it leaves to the full path (an element it does not take) leaves the run as it
    was."""
    ms, skew_ms, received = epoch_ms(NOW), int(SKEW_S * 1000), orjson.dumps(NOW)
    run = JournalRun.empty()
    run += before
    if batch:
        payload = json.dumps(
            [{**body, "device_id": device} for body, device in zip(bodies, devices, strict=False)]
        ).encode()
        pairs = reading_lines.batch(payload, "z", ms, skew_ms, received, reading_lines.Stamps())
        lines = reading_lines.batch(
            payload, "z", ms, skew_ms, received, reading_lines.Stamps(), run
        )
    else:
        payload = json.dumps(bodies[0]).encode()
        pair = reading_lines.telemetry(
            payload, "z", "d1", ms, skew_ms, received, reading_lines.Stamps()
        )
        line = reading_lines.telemetry(
            payload, "z", "d1", ms, skew_ms, received, reading_lines.Stamps(), run
        )
        pairs = None if pair is None else [pair]
        lines = None if line is None else [line]
    assert (pairs is None) == (lines is None), "the same readings taken"
    if pairs is None or lines is None:
        assert bytes(run) == before, "left as it was"
        return
    assert lines == [line for line, _ in pairs]
    assert bytes(run) == b",".join(
        [before, *(entry for _, entry in pairs)] if before else [entry for _, entry in pairs]
    )


@pytest.mark.parametrize("messages", [3, 40, 300])
def test_a_record_of_many_pieces_reads_back(tmp_path: Path, messages: int) -> None:
    """Runs of entries and the full path's observations alternating: a record written in its
    pieces (few) or joined first (more than `journal.MAX_PIECES`) reads back the same."""
    plain = b'{"lamp_on": true, "power_w": 40.0, "energy_wh": 1.5}'
    listed = [
        ("lighting/z/d1/telemetry", plain, 1000, False)
        if i % 2 == 0
        else ("lighting/z/d1/status", b'{"online": true}', 1000, False)
        for i in range(messages)
    ]
    made = decoded(listed, True, hand_over=False)
    handed = decoded(listed, True, hand_over=True)
    assert len(Body.of(handed.handed).pieces) == (1 if messages == 300 else 2 * messages + 1)
    got = through_journal(tmp_path, [handed.handed])
    assert [rules_view(o) for o in got] == [rules_view(o) for o in made.observations]


def test_a_record_of_the_previous_format_is_still_read(tmp_path: Path) -> None:
    """A journal an earlier luxtel left (version 1, every observation with its models) is read
    after an upgrade: nothing it held is lost."""
    old = [reading("d1", 0.0, power_w=3.0), reading("d2", 60.0, power_w=0.0)]
    body = encode_observations(old)
    journal = JournalWriter(tmp_path, 64 << 20)

    async def main() -> None:
        await journal.append_encoded(Body(body, zlib.crc32(body), len(old)))
        await journal.append(old)

    asyncio.run(main())
    reader = JournalReader(tmp_path, START)
    first, second = (reader.decode(record) for record in reader.read(journal.end.offset))
    assert list(first) == old
    assert [type(o.reading) for o in first] == [Reading, Reading]
    assert list(second) == old
    assert [type(o.reading) for o in second] == [SentReading, SentReading]
    assert [rules_view(o) for o in second] == [rules_view(o) for o in old]


def test_a_record_of_a_later_format_is_set_aside(tmp_path: Path) -> None:
    later = b'[3, [["north", "d1"]]]'
    journal = JournalWriter(tmp_path, 64 << 20)

    async def main() -> None:
        await journal.append_encoded(Body(later, zlib.crc32(later), 1))
        await journal.append([reading("d1", 0.0)])

    asyncio.run(main())
    reader = JournalReader(tmp_path, START)
    got = [reader.decode(record) for record in reader.read(journal.end.offset)]
    assert [len(c) for c in got] == [0, 1]
    (kept,) = tmp_path.glob("*.unreadable")
    assert kept.read_bytes() == later


@settings(max_examples=500)
@given(
    body=reading_bodies(None),
    zone=ZONES,
    device=DEVICES,
    step_us=st.integers(0, 10**9),
    batch=st.booleans(),
)
def test_the_c_entry_reads_back_as_the_values_the_c_module_checked(
    body: dict[str, Any], zone: str, device: str, step_us: int, batch: bool
) -> None:
    """The journal entry the C module writes (hand-over mode) is, read by orjson, exactly the
    entry `encode_handed` made of the same reading's checked values (`with_values=True`): zone,
    device, `at` in µs, the receive time, and every value with its type, floats to the bit."""
    body.pop("rssi", None)  # the fast path leaves unknown fields to the full path
    received_at = NOW + timedelta(microseconds=step_us)
    received_ms, skew_ms = epoch_ms(received_at), int(SKEW_S * 1000)
    received = orjson.dumps(received_at)
    if batch:
        payload = json.dumps([{**body, "device_id": device}]).encode()
        checked = reading_lines.batch(
            payload, zone, received_ms, skew_ms, True, reading_lines.Stamps()
        )
        entries = reading_lines.batch(
            payload, zone, received_ms, skew_ms, received, reading_lines.Stamps()
        )
    else:
        payload = json.dumps(body).encode()
        one = reading_lines.telemetry(
            payload, zone, device, received_ms, skew_ms, True, reading_lines.Stamps()
        )
        pair = reading_lines.telemetry(
            payload, zone, device, received_ms, skew_ms, received, reading_lines.Stamps()
        )
        checked = None if one is None else [one]
        entries = None if pair is None else [pair]
    assert (checked is None) == (entries is None), "both modes take the same readings"
    if checked is None or entries is None:
        return
    for (line, sent_id, ts_us, values, stamp_ms), (entry_line, entry) in zip(
        checked, entries, strict=True
    ):
        assert entry_line == line
        at_us = ts_us if ts_us is not None else (stamp_ms or 0) * 1000
        expected = [zone, sent_id or device, at_us, received_at, False, values]
        got = orjson.loads(entry)
        assert [exactly(v) for v in got[:5]] == orjson.loads(orjson.dumps(expected[:5]))
        assert [(k, type(v), exactly(v)) for k, v in got[5].items()] == [
            (k, type(v), exactly(v)) for k, v in values.items()
        ]


@pytest.mark.parametrize(
    "zone",
    ['a"b', "a\\b", "tab\there", "\x00\x08\x0c\n\r\x1f\x7f"],
)
def test_a_zone_needing_escapes_is_written_as_valid_json(zone: str) -> None:
    """Zones and ids are validated identifiers on this path, but the C module escapes what
    JSON needs escaped rather than assume it: the entry still reads back (the string exact).
    (Not beyond ASCII: the line is ASCII, and such a zone never reaches the fast path.)"""
    payload = b'{"lamp_on": true, "power_w": 1.0, "energy_wh": 2.0}'
    pair = reading_lines.telemetry(
        payload, zone, "d1", epoch_ms(NOW), 1000, orjson.dumps(NOW), reading_lines.Stamps()
    )
    assert pair is not None
    assert orjson.loads(pair[1])[0] == zone


NUMBER_TEXTS = (
    st.from_regex(r"(0|[1-9][0-9]{0,17})(\.[0-9]{1,24})?", fullmatch=True)
    | st.from_regex(r"(0|[1-9][0-9]{0,3})\.[0-9]{1,3}0{0,20}", fullmatch=True)
    | st.from_regex(r"[1-9](\.[0-9]{1,20})?[eE][+-]?[0-9]{1,3}", fullmatch=True)
    | st.integers(2**53 - 3, 10**18 - 1).map(str)
)
"""JSON numbers as a device may send them (not only as Python writes floats): decimals of any
number of digits, trailing zeros, exponents, integers around and beyond 2**53."""


@settings(max_examples=1000)
@given(lux=NUMBER_TEXTS, temperature=NUMBER_TEXTS, negative=st.booleans())
def test_a_number_sent_in_any_form_reads_back_as_the_double_checked(
    lux: str, temperature: str, negative: bool
) -> None:
    """The entry keeps a number's text only when no parser can round it otherwise; whatever the
    form sent, orjson reads back the very double the C module checked (and the line wrote)."""
    temperature = f"-{temperature}" if negative else temperature
    fields = f'"energy_wh": {lux}, "lux": {lux}, "driver_temp_c": {temperature}'
    payload = ('{"lamp_on": true, "power_w": 1.5, ' + fields + "}").encode()
    ms = epoch_ms(NOW)
    checked = reading_lines.telemetry(payload, "z", "d1", ms, 1000, True, reading_lines.Stamps())
    pair = reading_lines.telemetry(
        payload, "z", "d1", ms, 1000, orjson.dumps(NOW), reading_lines.Stamps()
    )
    assert (checked is None) == (pair is None)
    if checked is None or pair is None:
        return
    values = checked[3]
    got = orjson.loads(pair[1])[5]
    assert [(k, exactly(v)) for k, v in got.items()] == [(k, exactly(v)) for k, v in values.items()]
    assert exactly(got["lux"]) == exactly(float(lux))
