"""Whatever the encoder accepts reads back identical from a real InfluxDB: no tag or field
injection, no silent change of type or value. Hypothesis drives the inputs; InfluxDB judges."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from influx.line_protocol import EncodeError, FieldValue, encode_line
from servers import InfluxDBServer, query, write_points

RESERVED = {"case", "label", "time"}
field_keys = st.text(min_size=1, max_size=20).filter(lambda k: k not in RESERVED)
field_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=100),
)
cases = itertools.count()
INFLUX_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string"}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    label=st.text(min_size=1, max_size=40),
    fields=st.dictionaries(field_keys, field_values, min_size=1, max_size=4),
    ts_ms=st.integers(min_value=946684800000, max_value=2208988800000),
)
def test_accepted_points_read_back_exactly(
    influxdb: InfluxDBServer,
    influx_db: str,
    label: str,
    fields: dict[str, FieldValue],
    ts_ms: int,
) -> None:
    case = str(next(cases))
    try:
        line = encode_line("roundtrip", {"case": case, "label": label}, fields, ts_ms)
    except EncodeError:
        assume(False)
        return
    measurement = f"m{case}"
    line = line.replace("roundtrip", measurement, 1)
    write_points(influxdb.url, influx_db, line)
    answer = query(influxdb.url, f'SELECT * FROM "{measurement}"', db=influx_db, epoch="ms")  # noqa: S608
    series = answer["results"][0]["series"][0]
    assert len(series["values"]) == 1
    row = dict(zip(series["columns"], series["values"][0], strict=True))
    assert row.pop("time") == ts_ms
    assert row.pop("case") == case
    assert row.pop("label") == label
    # InfluxDB's JSON writes a whole float as its shortest decimal without a fraction (5e16 as
    # 50000000000000000), which Python reads as an int: compare it as the float it denotes, and
    # read the stored type from the schema rather than from the JSON value.
    for key, value in fields.items():
        if isinstance(value, float) and isinstance(row.get(key), int):
            row[key] = float(row[key])
    assert row == fields
    schema = query(influxdb.url, f'SHOW FIELD KEYS FROM "{measurement}"', db=influx_db)
    stored = dict(schema["results"][0]["series"][0]["values"])
    assert stored == {key: INFLUX_TYPES[type(value)] for key, value in fields.items()}
