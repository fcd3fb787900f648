"""Per-luminaire rollup points read as plain rows and summed by luxtel
(``energy.rollup_rows.DeviceSums``): what InfluxDB's ``sum``/``max`` ``GROUP BY "device_id"``
answers, whatever the order of the rows, how they are chunked, the order of the columns, nulls;
a figure that is not an integer refused. The reports reading it are compared with the raw ones
on a real InfluxDB in ``tests/test_energy_rollup_groups.py``, ``tests/test_energy_rollup_months.py``
and ``tests/test_energy_group_sums.py``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from energy.rollup import SUMMED
from energy.rollup_rows import FLAGS, READ, DeviceSums

COLUMNS = ["time", "device_id", *READ]

figure = st.one_of(st.none(), st.integers(min_value=0, max_value=2**40))
flag = st.one_of(st.none(), st.integers(min_value=0, max_value=1))
row = st.tuples(
    st.sampled_from(["lum-1", "lum-2", "lum-3", "a:b", "z.9"]),
    st.tuples(*[figure for _ in SUMMED]),
    st.tuples(*[flag for _ in FLAGS]),
)


def _influx(rows: list[tuple[str, tuple[Any, ...], tuple[Any, ...]]]) -> dict[str, dict[str, Any]]:
    """What ``sum(<SUMMED>), max(<FLAGS>) … GROUP BY "device_id"`` answers: per device, each
    aggregate over the non-null values (null when there are none)."""
    out: dict[str, dict[str, Any]] = {}
    for device, figures, flags in rows:
        got = out.setdefault(device, dict.fromkeys(READ))
        for name, value in zip(READ, (*figures, *flags), strict=True):
            if value is None:
                continue
            old = got[name]
            if name in FLAGS:
                got[name] = value if old is None else max(old, value)
            else:
                got[name] = value if old is None else old + value
    return out


def _same(ours: dict[str, int], influx: dict[str, Any]) -> bool:
    """Equal as the report reads them (``energy.rollup.integer``: a null sum is 0; a method
    counts when its max is truthy)."""
    return all(ours[name] == (influx[name] or 0) for name in READ)


@given(
    st.lists(row, max_size=60),
    st.randoms(use_true_random=False),
    st.integers(min_value=1, max_value=7),
    st.permutations(COLUMNS),
)
def test_rows_sum_as_influxdb_sums_them_per_device(
    rows: list[tuple[str, tuple[Any, ...], tuple[Any, ...]]],
    random: Any,
    chunk: int,
    columns: list[str],
) -> None:
    shuffled = list(rows)
    random.shuffle(shuffled)
    kept = DeviceSums()
    records = []
    for t, (device, figures, flags) in enumerate(shuffled):
        values = dict(zip(READ, (*figures, *flags), strict=True))
        by_name = {"time": t, "device_id": device, **values}
        records.append([by_name[c] for c in columns])
    for i in range(0, len(records), chunk):
        kept.add(columns, records[i : i + chunk])
    expected = _influx(rows)
    got = dict(kept.sums())
    assert sorted(got) == sorted(expected)
    assert all(_same(got[d], expected[d]) for d in expected)
    assert kept.rows == len(rows)


def test_a_column_not_asked_for_counts_as_null() -> None:
    kept = DeviceSums()
    kept.add(["time", "device_id", "readings"], [[0, "a", 4], [1, "a", 5]])
    ((device, sums),) = kept.sums()
    assert device == "a"
    assert sums == {**dict.fromkeys(READ, 0), "readings": 9}


@pytest.mark.parametrize("value", [1.5, 2.0, True, "3"])
def test_a_figure_that_is_not_an_integer_is_refused(value: object) -> None:
    kept = DeviceSums()
    with pytest.raises(ValueError, match="counter_mwh"):
        kept.add(["device_id", "counter_mwh"], [["a", 1], ["a", value]])


def test_a_row_without_a_device_is_refused() -> None:
    with pytest.raises(ValueError, match="device_id"):
        DeviceSums().add(["device_id", "readings"], [[None, 4]])


H = 3_600_000
point = st.tuples(
    st.integers(min_value=0, max_value=5 * H),  # time
    st.sampled_from(["lum-1", "lum-2", "lum-3"]),
    st.one_of(st.none(), st.integers(min_value=0, max_value=H)),  # burning_ms
    st.one_of(st.none(), st.integers(min_value=0, max_value=25)),  # hours
)


@given(st.lists(point, max_size=40), st.randoms(use_true_random=False))
def test_each_hour_is_found_as_influxdb_counts_it(
    points: list[tuple[int, str, int | None, int | None]], random: Any
) -> None:
    """``found``: ``count("burning_ms"), min("hours") … GROUP BY time(1h)`` per UTC hour (the
    count over the points holding ``burning_ms``, the least ``hours`` among those), 0 for none."""
    shuffled = list(points)
    random.shuffle(shuffled)
    kept = DeviceSums()
    kept.add(["time", "device_id", "burning_ms", "hours"], [list(p) for p in shuffled])
    for hour in range(0, 6 * H, H):
        inside = [p for p in points if hour <= p[0] < hour + H and p[2] is not None]
        hours = [p[3] for p in inside if p[3] is not None]
        assert kept.found(hour + 17) == (len(inside), min(hours, default=0))
