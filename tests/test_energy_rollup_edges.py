"""The pure decisions at a report's edges (``energy.rollup_edges``): which whole hours are edge
hours and who is silent in each, who counts as silent from the group and luminaire hours, and
how the silent luminaires' raw reads are cut into runs and batches."""

from __future__ import annotations

from energy.counters import MS_PER_H
from energy.rollup import inventory_crc
from energy.rollup_edges import (
    DEVICE_BATCH,
    Around,
    Silent,
    around,
    edge_hours,
    edge_ms,
    group_clean,
    group_reported,
    group_usable,
    raw_runs,
    silent_devices,
)
from energy.rollup_groups import expected_groups
from tests.test_energy_rollup import INVENTORY, START

H = MS_PER_H


def test_edge_ms_is_the_longest_gap_of_the_silent_only() -> None:
    assert edge_ms(INVENTORY, [], 1.5) == 0.0
    assert edge_ms(INVENTORY, ["a"], 1.5) == 900 * 1000 * 1.5
    assert edge_ms(INVENTORY, ["a", "c"], 1.5) == 3600 * 1000 * 1.5  # c reports hourly
    assert edge_ms(INVENTORY, ["gone"], 1.5) == 0.0  # not in the inventory


def test_edge_hours_are_those_within_the_edge_of_each_end_with_that_ends_silent() -> None:
    silent = Silent(frozenset({"a"}), frozenset({"b"}))
    day = [START, START + 24 * H]
    got = edge_hours(START + 10 * 60_000, START + 10 * H, [day], 1.5 * H, silent)
    # start 00:10 past: the partial hour is not a whole hour; 01:00 is within 1.5 h (to 01:40),
    # and so are 08:00 and 09:00 of the end (from 08:30)
    assert got.hours == [START + H, START + 8 * H, START + 9 * H]
    assert got.silent == {START + H: {"a"}, START + 8 * H: {"b"}, START + 9 * H: {"b"}}
    short = edge_hours(START, START + 2 * H, [day], 1.5 * H, silent)
    assert short.silent == {START: {"a", "b"}, START + H: {"a", "b"}}  # near both ends
    assert edge_hours(START, START + 10 * H, [day], 0.0, silent).hours == []


def test_an_hour_across_a_bins_edge_is_no_edge_hour() -> None:
    silent = Silent(frozenset({"a"}), frozenset())
    half = START + H + 30 * 60_000  # a bin edge at 01:30
    got = edge_hours(START, START + 10 * H, [[START, half, START + 10 * H]], 2 * H, silent)
    assert got.hours == [START, START + 8 * H, START + 9 * H]


def test_silent_are_those_neither_in_a_group_that_all_reported_nor_reported_themselves() -> None:
    north, south = ("north", "C01"), ("south", "C01")
    crc = dict.fromkeys((north, south), 0)
    for lum in INVENTORY.values():
        crc[(lum.zone, lum.circuit)] += inventory_crc(lum)
    rows = {north: (1, 1, crc[north]), south: (1, 2, crc[south])}  # one of b, c reported
    ok = group_reported(INVENTORY, rows)
    assert ok == {north}
    assert silent_devices(INVENTORY, ok, {"c"}) == {"b"}
    wrong_crc = {north: (1, 1, crc[north] + 1)}  # a point built from another inventory
    assert group_reported(INVENTORY, wrong_crc) == set()
    assert silent_devices(INVENTORY, set(), set()) == {"a", "b", "c"}
    wanted = expected_groups(INVENTORY)
    assert group_usable(wanted, south, 2, crc[south])
    assert not group_usable(wanted, south, 1, crc[south])
    assert not group_usable(wanted, ("east", "C09"), 0, 0)


def test_the_hours_around_a_report_are_outside_and_its_own_first_and_last_whole_ones() -> None:
    twelve = 12 * H
    assert around(START, START + 10 * H, twelve) == Around(
        START - H, START, START + 9 * H, START + 10 * H
    )
    # 00:10 to 09:40: the hours outside are those ending by / beginning from the ends
    assert around(START + 10 * 60_000, START + 9 * H + 40 * 60_000, twelve) == Around(
        START - H, START + H, START + 8 * H, START + 10 * H
    )
    # a look-back under 2 h: a reading in the hour outside may lie beyond it, so it says
    # nothing; the period's own hours still do
    assert around(START, START + 10 * H, 1.5 * H) == Around(None, START, START + 9 * H, None)
    # no whole hour inside (00:10 to 01:50): nothing inside to ask
    assert around(START + 10 * 60_000, START + H + 50 * 60_000, twelve) == Around(
        START - H, None, None, START + 2 * H
    )
    assert around(START, START + H, twelve) == Around(START - H, START, START, START + H)


def test_a_group_is_clean_when_its_hour_flags_nothing_and_holds_the_inventorys_members() -> None:
    north, south = ("north", "C01"), ("south", "C01")
    wanted = expected_groups(INVENTORY)
    rows = {north: (0, *wanted[north]), south: (1, *wanted[south])}  # b or c flagged
    assert group_clean(INVENTORY, rows) == {north}
    assert group_clean(INVENTORY, {south: (0, 1, wanted[south][1])}) == set()  # a point short
    assert group_clean(INVENTORY, {north: (0, 1, wanted[north][1] + 1)}) == set()  # another crc
    assert group_clean(INVENTORY, {("east", "C09"): (0, 0, 0)}) == set()  # not the inventory's


def test_raw_runs_merge_consecutive_hours_with_the_same_luminaires_and_batch_them() -> None:
    hours = [START, START + H, START + 2 * H, START + 8 * H, START + 9 * H]
    raw = {
        START: {"a"},
        START + H: {"a"},
        START + 2 * H: {"a", "b"},
        START + 8 * H: set(),
        START + 9 * H: {"b"},
    }
    assert raw_runs(hours, raw) == [
        (START, START + 2 * H, ["a"]),
        (START + 2 * H, START + 3 * H, ["a", "b"]),
        (START + 9 * H, START + 10 * H, ["b"]),
    ]
    many = {f"d{i:04d}" for i in range(DEVICE_BATCH + 1)}
    runs = raw_runs([START], {START: many})
    assert [len(ids) for _, _, ids in runs] == [DEVICE_BATCH, 1]
    assert sorted(d for _, _, ids in runs for d in ids) == sorted(many)
