"""A journal record read as columns (`rules.runtime.journal_rows`, the C module
`rules.runtime.handed_rows`) holds what `decode_handed` reads of it: the same observations row by
row, the same columns as `Rows.of` makes of those, and the same evaluation, column-wise, as the
scalar path gives the observations decoded one by one; what the C module does not take, it
leaves to `decode_handed` (None)."""

import itertools
import math
from datetime import timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import Observation, SentReading, Status
from rules.evaluation.evaluator import Counters, EngineState, evaluate
from rules.evaluation.rows import Rows
from rules.language.expressions import READING_FIELDS
from rules.runtime.channel import decode_handed, encode_handed
from rules.runtime.handed_rows import parse
from rules.runtime.journal_rows import rows_of
from tests.rules_fixtures import at
from tests.test_rules_columns import cases
from tests.test_rules_journal_handover import rules_view

VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=False),
    st.floats(-1e6, 1e6).map(lambda x: round(x, 2)),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.none(),
    st.just("7"),
)
NESTED = st.sampled_from(["", [1, {"a": "é\\\n"}], {}, [[]], -0.0, 1e300])
"""Values of a field the rules do not read (skipped by the C module)."""
NAMES = st.sampled_from(
    [*READING_FIELDS, "rssi", "device_id", "ts", "x\u00e9", "power", "power_wh", "lamp_o"]
)
"""Fields the rules read, and others: some a field's name cut short or carried on."""
TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=8
) | st.sampled_from(["north", "lum-1", "lum-2"])


@st.composite
def observations(draw: st.DrawFn) -> list[Observation]:
    """Readings of any fields and values (`lamp_on` always sent, as the decoder's), any zone
    and device text, times to the microsecond; statuses among them."""
    out = []
    for _ in range(draw(st.integers(0, 12))):
        zone, device_id = draw(TEXT), draw(TEXT)
        when = at(draw(st.floats(-1e5, 1e5))).replace(microsecond=draw(st.integers(0, 999_999)))
        received = when + timedelta(microseconds=draw(st.integers(-(10**9), 10**9)))
        retained = draw(st.booleans())
        if draw(st.integers(0, 5)) == 0:
            status = Status(online=draw(st.booleans()), faults=draw(st.sampled_from([None, []])))
            out.append(Observation(zone, device_id, when, received, None, status, retained))
            continue
        fields = draw(st.dictionaries(NAMES, VALUES, max_size=6))
        fields["lamp_on"] = draw(VALUES)
        if draw(st.booleans()):
            fields["rssi"] = draw(NESTED)
        fields = {name: fields[name] for name in draw(st.permutations(list(fields)))}
        out.append(
            Observation(zone, device_id, when, received, SentReading(fields), None, retained)
        )
    return out


def columns(rows: Rows) -> tuple[Any, ...]:
    fields = {
        name: got.resolved() for name, got in rows.fields(set(READING_FIELDS) | {"rssi"}).items()
    }
    return (
        [rows.names[d] for d in rows.device.tolist()],
        [rows.zone(i) for i in range(len(rows))],
        [rows.at(i) for i in range(len(rows))],
        rows.at_us.tolist(),
        rows.heard_us.tolist(),
        rows.reading.tolist(),
        {
            name: (
                *(
                    getattr(got, part).tolist()
                    for part in ("present", "is_float", "is_bool", "bools", "bad")
                ),
                np.where(got.is_float, got.floats, 0.0).tobytes(),
            )
            for name, got in fields.items()
        },
    )


def plain(observations: list[Observation]) -> bool:
    """Whether the C module takes the body: strings without escapes, integers of 64 bits."""
    for o in observations:
        texts = [o.zone, o.device_id]
        if any('"' in t or "\\" in t or any(ord(c) < 0x20 for c in t) for t in texts):
            return False
        if o.reading is not None and isinstance(o.reading, SentReading):
            for name, value in o.reading.fields.items():
                if name in READING_FIELDS and isinstance(value, float) and math.isinf(value):
                    return False
                if name in READING_FIELDS and isinstance(value, str):
                    continue
                if isinstance(name, str) and ('"' in name or "\\" in name):
                    return False
    return True


@settings(max_examples=500, deadline=None)
@given(observations())
def test_columns_hold_what_decode_handed_reads(chunk: list[Observation]) -> None:
    body = encode_handed(chunk)
    decoded = decode_handed(body)
    rows = rows_of(body)
    if rows is None:
        assert not plain(chunk)
        return
    assert len(rows) == len(decoded)
    assert [rules_view(o) for o in rows] == [rules_view(o) for o in decoded]
    assert list(rows) == decoded
    assert rows.take(list(range(0, len(rows), 2))) == decoded[::2]
    assert columns(rows) == columns(Rows.of(decoded))


@pytest.mark.parametrize(
    "text",
    [
        "38.24",
        "0.1",
        "-0.0",
        "0.30000000000000004",
        "1e5",
        "1E-7",
        "-2.5e+300",
        "123456789.123456789",
        "0.000000000000000000000001",
        "9007199254740993.0",
        "4.9e-324",
        "1.7976931348623157e308",
        "999999999999999.9",
        "0.1234567890123456",
    ],
)
def test_a_number_reads_as_python_reads_it(text: str) -> None:
    """The fast path for plain decimals (Clinger's) and the general parser, both correctly
    rounded: the double `float(text)` gives, to the bit."""
    body = b'[2,[["z","d",0,"2026-01-01T00:00:00+00:00",false,{"lamp_on":true,"power_w":%s}]]]'
    parsed = parse(body % text.encode(), READING_FIELDS)
    assert parsed is not None
    power = np.frombuffer(parsed[13], np.float64)[READING_FIELDS.index("power_w")]
    assert power.tobytes() == np.float64(float(text)).tobytes()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("9223372036854775807", "int"),
        ("-9223372036854775808", "int"),
        ("-0", "int"),
        ("9223372036854775808", None),
        ("-9223372036854775809", None),
        ("18446744073709551615", None),
        ("18446744073709551616", None),
        ("123456789012345678901234", None),
        ("123456789012345678901.5", "float"),
        ("1234567890123456.5", "float"),
        ("123456789012345.5", "float"),
    ],
)
def test_an_integer_is_read_exactly_or_left_to_decode_handed(text: str, kind: str | None) -> None:
    """An integer literal that fits 64 bits is read (as the double `float()` gives of it); one
    past them leaves the record to `decode_handed`; the integer part of a decimal may be any."""
    body = b'[2,[["z","d",0,"2026-01-01T00:00:00+00:00",false,{"lamp_on":true,"seq":%s}]]]'
    parsed = parse(body % text.encode(), READING_FIELDS)
    if kind is None:
        assert parsed is None
        return
    assert parsed is not None
    f = READING_FIELDS.index("seq")
    assert np.frombuffer(parsed[12], np.int8)[f] == (4 if kind == "int" else 3)  # INT, FLOAT
    value = np.frombuffer(parsed[13], np.float64)[f]
    expected = float(int(text)) if kind == "int" else float(text)
    assert value.tobytes() == np.float64(expected).tobytes()


def test_records_of_any_size_and_fields_read_alike_one_after_another() -> None:
    """The columns are kept from one call to the next and grown as a record needs: records of
    one row, of more than the rows first reserved, past what is kept, and asked for other
    fields, each read as it reads alone (a fresh process's first call is the same code)."""
    entry = (
        b'["z%d","d%d",%d,"2026-01-01T00:00:00+00:00",false,'
        b'{"lamp_on":true,"power_w":%d.5,"lux":%d}]'
    )

    def body(rows: int) -> bytes:
        return b"[2,[%s]]" % b",".join(entry % (i % 7, i % 1000, i, i, -i) for i in range(rows))

    other = ("lux", "lamp_on", 'a"b')
    sizes = [1, 3000, 70_000, 2, 5000]
    bodies = [body(n) for n in sizes]
    first = [parse(b, READING_FIELDS) for b in bodies]
    between = [parse(b, other) for b in bodies]
    again = [parse(b, READING_FIELDS) for b in reversed(bodies)][::-1]
    assert first == again
    for n, parsed, theirs in zip(sizes, first, between, strict=True):
        assert parsed is not None
        assert theirs is not None
        assert parsed[0] == theirs[0] == n
        assert np.frombuffer(parsed[5], np.int64).tolist() == list(range(n))
        power = np.frombuffer(parsed[13], np.float64).reshape(len(READING_FIELDS), n)
        assert power[READING_FIELDS.index("power_w")].tolist() == [i + 0.5 for i in range(n)]
        lux = np.frombuffer(theirs[13], np.float64).reshape(len(other), n)
        assert lux[0].tolist() == [-float(i) for i in range(n)]
        assert np.frombuffer(theirs[12], np.int8).reshape(len(other), n)[2].tolist() == [0] * n


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'[[["z","d","2026-01-01T00:00:00+00:00","2026-01-01T00:00:00+00:00",false,null,null]]]',
        b'[3,[["z","d",0,"2026-01-01T00:00:00+00:00",false,{"lamp_on":true}]]]',
        b'[2,[["z","d\\u0041",0,"2026-01-01T00:00:00+00:00",false,{"lamp_on":true}]]]',
        b'[2,[["z","d\xff",0,"2026-01-01T00:00:00+00:00",false,{"lamp_on":true}]]]',
        b'[2,[["z","d",0,"2026-01-01T00:00:00+00:00",false,{"power_w":1.0}]]]',
        b'[2,[["z","d",0.5,"2026-01-01T00:00:00+00:00",false,{"lamp_on":true}]]]',
        b'[2,[["z","d",99999999999999999999,"2026-01-01T00:00:00+00:00",false,{"lamp_on":true}]]]',
        b'[2,[["z","d",0,"2026-01-01T00:00:00+00:00",0,{"lamp_on":true}]]]',
        b'[2,[["z","d",0,"2026-01-01T00:00:00+00:00",false,{"lamp_on":true,"seq":1e999}]]]',
        b'[2,[["z","d",0,"2026-01-01T00:00:00+00:00",false,{"lamp_on":tru}]]]',
        b'[2,[["z","d",0,"2026-01-01T00:00:00+00:00",false,{"lamp_on":true}]]',
        b'[2,[["z","d",0,"2026-01-01T00:00:00+00:00",false,{"lamp_on":true}]]]x',
        b'[2,[["z","d",0,"2026-01-01T00:00:00+00:00",false,{"lamp_on":true,"x":[1,]}]]]',
        b'[2,[["z","d",0,"2026-01-01T00:00:00+00:00",false,{"lamp_on":true}],["z","d"]]]',
        b'[2,[["z","d",253402300800000000,"2026-01-01T00:00:00+00:00",false,{"lamp_on":true}]]]',
    ],
)
def test_what_is_not_plain_is_left_to_decode_handed(body: bytes) -> None:
    """Another version, escapes, a reading without `lamp_on`, other shapes or types, numbers
    out of range, invalid JSON, a `ts` past what a datetime holds: None."""
    assert rows_of(body) is None


def test_an_empty_record_reads_as_no_rows() -> None:
    rows = rows_of(encode_handed([]))
    assert rows is not None
    assert len(rows) == 0
    assert list(rows) == []


def test_the_columns_read_a_body_orjson_can_read() -> None:
    """Whitespace, duplicate keys (the last one counts, as in a dict), nested unknown fields."""
    body = (
        b' [ 2 , [ [ "z" , "d" , 5 , "2026-01-01T00:00:00+00:00" , true , { "lamp_on" : true ,'
        b' "power_w" : 1 , "power_w" : 2.5 , "rssi" : { "a" : [ 1 , null , "\\" \\u00e9" ] } ,'
        b' "lux" : "dark" } ] ] ] '
    )
    rows = rows_of(body)
    assert rows is not None
    assert list(rows) == decode_handed(body)
    assert columns(rows) == columns(Rows.of(decode_handed(body)))
    assert orjson.loads(body)[1][0][5]["power_w"] == 2.5


def outcome(state: EngineState, transitions: list[Any], counters: Counters) -> tuple[Any, ...]:
    return dict(state.devices), state.alerts, state.resolved, transitions, counters.errors


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(0, 3))
def test_a_record_read_as_columns_evaluates_as_the_scalar_path(
    case: tuple[Any, EngineState, list[Observation], int], cut: int
) -> None:
    """The chunks of `tests/test_rules_columns.py`, journaled, read back as columns (in up to
    four records gathered into one chunk, as the engine gathers them) and evaluated
    column-wise, give what the scalar path gives the observations `decode_handed` reads."""
    rulebook, state, chunk, least = case
    bounds = sorted({0, len(chunk), *(len(chunk) * k // 4 for k in range(1, cut + 1))})
    parts: list[Rows] = []
    decoded: list[Observation] = []
    for low, high in itertools.pairwise(bounds):
        body = encode_handed(chunk[low:high])
        part = rows_of(body)
        assert part is not None, "the fixtures' bodies are plain"
        parts.append(part)
        decoded += decode_handed(body)
    rows = Rows.concat(parts) if parts else Rows.of([])
    assert rows.take(list(range(1, len(rows), 3))) == decoded[1::3]
    counters, scalar_counters = Counters(), Counters()
    got = evaluate(rulebook, state, at(900), rows, counters, deadman=False, columnar_from=least)
    expected = evaluate(
        rulebook, state, at(900), decoded, scalar_counters, deadman=False, columnar_from=None
    )
    assert outcome(*got, counters) == outcome(*expected, scalar_counters)


@settings(max_examples=500, deadline=None)
@given(observations(), st.data())
def test_a_damaged_body_is_read_as_decode_handed_reads_it_or_left_to_it(
    chunk: list[Observation], data: st.DataObject
) -> None:
    """A byte changed anywhere, or the body cut short: the C module reads what orjson reads
    there, or leaves it to `decode_handed` (never reads past the body, never guesses)."""
    body = encode_handed(chunk)
    at_byte = data.draw(st.integers(0, len(body) - 1))
    damaged = (
        body[:at_byte]
        if data.draw(st.booleans())
        else body[:at_byte] + bytes([data.draw(st.integers(0, 255))]) + body[at_byte + 1 :]
    )
    got: list[Observation] | str | None
    try:
        rows = rows_of(damaged)
        got = None if rows is None else list(rows)
    except ValueError:  # a receive time that is no longer one
        got = "unreadable"  # as the journal reader takes any error of a record's decoding
    expected: list[Observation] | str
    try:
        expected = decode_handed(damaged)
    except Exception:  # whatever orjson or the entries raise: the record is unreadable
        expected = "unreadable"
    if got is not None:  # None: left to decode_handed, which decides
        assert got == expected
