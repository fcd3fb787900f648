"""One inventory parser (`models.inventory`) for energy, rules and dashboards: a CSV written by
Excel (a byte-order mark first) loads in each, and every error carries its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboards.inventory import read_inventory as dashboards_inventory
from energy.inventory import read_inventory as energy_inventory
from models.inventory import INVENTORY_COLUMNS, InventoryError, parse_inventory, read_inventory
from rules.evaluation.inventory import load_inventory
from rules.language.errors import RuleFileError

GOOD = [
    "lum-1,north,C01,31.2,121.4,60,100,900,LX,2024-01-01",
    "lum-2,north,C01,31.3,121.5,60,150,900,LX,",
    "lum-3,south,C02,31.1,121.3,40,100,600,,",
]


def write(path: Path, rows: list[str], *, bom: bool) -> Path:
    text = ",".join(INVENTORY_COLUMNS) + "\r\n" + "\r\n".join(rows) + "\r\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def test_an_excel_inventory_with_a_byte_order_mark_loads_everywhere(tmp_path: Path) -> None:
    path = write(tmp_path / "inventory.csv", GOOD, bom=True)
    assert sorted(energy_inventory(path)) == ["lum-1", "lum-2", "lum-3"]
    rules = load_inventory(path)
    assert (rules.circuit_sizes, rules.zone_sizes) == (
        {"C01": 2, "C02": 1},
        {"north": 2, "south": 1},
    )
    dashboards = dashboards_inventory(path)
    assert [p.device_id for p in dashboards.places] == ["lum-1", "lum-2", "lum-3"]
    assert dashboards.circuits == {"C01": ("lum-1", "lum-2"), "C02": ("lum-3",)}
    assert dashboards.mean_baseline_w == 116.7
    assert dashboards.report_interval_s == 900


def test_a_byte_order_mark_in_text_already_decoded_is_ignored() -> None:
    text = "\ufeff" + ",".join(INVENTORY_COLUMNS) + "\n" + GOOD[0] + "\n"
    assert list(parse_inventory(text.splitlines(keepends=True))) == ["lum-1"]


@pytest.mark.parametrize(
    ("row", "line", "column", "reason"),
    [
        ("lum-4,north,C01,95,121.4,60,100,900,LX,", 5, "lat", "lat: "),
        ("lum-1,north,C01,31.2,121.4,60,100,900,LX,", 5, "device_id", "appears twice"),
        ("bad id,north,C01,31.2,121.4,60,100,900,LX,", 5, "device_id", "device_id: "),
    ],
)
def test_errors_carry_their_line_and_column(
    tmp_path: Path, row: str, line: int, column: str, reason: str
) -> None:
    path = write(tmp_path / "inventory.csv", [*GOOD, row], bom=True)
    with pytest.raises(InventoryError) as caught:
        read_inventory(path)
    error = caught.value
    assert (error.source, error.line, error.column) == (str(path), line, column)
    assert reason in error.reason
    assert str(error) == f"{path}: line {line}: {error.reason}"
    with pytest.raises(RuleFileError) as in_rules:
        load_inventory(path)
    (problem,) = in_rules.value.problems
    assert (problem.path, problem.line, problem.message) == (path, line, error.reason)
    with pytest.raises(InventoryError, match=f"line {line}"):
        dashboards_inventory(path)


def test_a_missing_column_is_line_1_and_an_unreadable_file_line_0(tmp_path: Path) -> None:
    path = tmp_path / "inventory.csv"
    path.write_text("device_id,zone\na,b\n")
    with pytest.raises(InventoryError) as caught:
        read_inventory(path)
    assert (caught.value.line, caught.value.column) == (1, "circuit")
    with pytest.raises(InventoryError) as missing:
        read_inventory(tmp_path / "nowhere.csv")
    assert missing.value.line == 0
    assert "cannot read" in str(missing.value)


@given(st.text(max_size=200))
def test_any_text_loads_or_fails_with_an_inventory_error_at_a_line(text: str) -> None:
    """Nothing else escapes the parser (no KeyError, no csv.Error), and a text's error is at
    a line of it."""
    line = None
    try:
        parse_inventory(text.splitlines(keepends=True))
    except InventoryError as error:
        line = error.line
    assert line is None or 1 <= line <= max(1, len(text.splitlines()))
