"""A reading's variables for the rules (`reading_map`) and the fields a device keeps for
`previous.NAME` (`only_reading`): the hot-path forms give what their plain definitions give,
entries and order alike, for readings the real decoder builds (the fast path's and the full
path's)."""

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ingest.decode import Limits, decode
from models import Reading
from rules.language.expressions import READING_FIELDS, only, only_reading, reading_map

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
LIMITS = Limits(topic_root="lighting", max_clock_skew_s=1e9, observe=True)
UPPER = {"voltage_v": 600, "current_a": 50, "power_factor": 1, "driver_temp_c": 200, "lux": 1e5}
"""The optional numbers and their models' upper bounds (the lower ones are 0 here)."""


def defined_map(reading: Reading) -> dict[str, Any]:
    """`reading_map` as its docstring defines it: the sent fields, numbers as doubles."""
    out: dict[str, Any] = {}
    for name in READING_FIELDS:
        value = getattr(reading, name)
        if value is not None:
            out[name] = value if isinstance(value, bool) else float(value)
    return out


@given(
    values=st.fixed_dictionaries(
        {
            "power_w": st.floats(min_value=0, max_value=5000),
            "energy_wh": st.floats(min_value=0, max_value=1e9),
        },
        optional={
            **{name: st.floats(min_value=0, max_value=top) for name, top in UPPER.items()},
            "dim_pct": st.integers(min_value=0, max_value=100),
            "seq": st.integers(min_value=0, max_value=2**63 - 1),
        },
    ),
    lamp_on=st.booleans(),
    fast=st.booleans(),
    names=st.one_of(
        st.none(),
        st.frozensets(st.sampled_from([*READING_FIELDS, "minutes_ago", "unknown"])),
    ),
)
def test_the_hot_path_forms_give_what_the_definitions_give(
    values: dict[str, Any], lamp_on: bool, fast: bool, names: frozenset[str] | None
) -> None:
    payload = {"ts": "2026-12-04T11:59:00Z", "lamp_on": lamp_on, **values}
    decoded = decode(
        "lighting/north/lum-1/telemetry", json.dumps(payload).encode(), NOW, LIMITS, fast=fast
    )
    [observation] = decoded.observations
    reading = observation.reading
    assert isinstance(reading, Reading)
    mapped = reading_map(reading)
    assert list(mapped.items()) == list(defined_map(reading).items())
    assert list(only_reading(mapped, names).items()) == list(only(mapped, names).items())
