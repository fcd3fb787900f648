"""A chunk of observations evaluated column-wise: which devices' observations can change
anything, so only those go through the evaluator's scalar path (`evaluator._observe`).

A reading of a device without alerts changes nothing but the device's view (`DeviceView`) when
every verdict of the reading rules on it is false or null (`evaluator._observe`'s hot path). The
view's evolution does not depend on the verdicts: which readings are stale (at or before the
device's newest judged `ts`), the lamp history, the previous reading, the contact time. So a
chunk is taken in three steps:

1. The views' evolution, per device in arrival order, as arrays: stale readings, `history`,
   `previous`, and the variables the verdicts read (`reading`, `device`, `sun`) per judged row.
2. The verdicts of the reading rules over those rows (`rules.language.vectorised`), answered
   exactly as the native functions would, or `ask` where they would not.
3. A device with a status in the chunk, a row whose verdict is true or asked, or a value the
   columns do not hold exactly (a field of another type, a lamp state that is not a boolean, a
   polar day) goes through the scalar path, all its rows, in order; every other device only
   gets its final view. Those produce no transitions, so the scalar devices' transitions keep
   their order.

A device with alerts takes the scalar path too, unless every one of them is a reading rule's,
pending or firing, not cleared (`held`): then its rows keep them as they are when each verdict
of those rules is true or null, every other verdict false or null, and no row of a pending
alert is at or past its `active_at + for` (where it would fire). A true or null verdict then
moves the alert by nothing (`advance`: a pending one is not due, a firing one not cleared),
and a true one sets its `value` and `summary` from that reading and `cleared_at` to None,
which it already is; so only the last true verdict of each rule shows, and it is taken from
the columns (`raised`): the rule's `value` expression vectorised as its verdict is, at that
row. No transition, no error counted. (The scalar path took some 20 µs per such row: a fleet
with a few percent of its luminaires in alert spent a fifth of the rules process on them,
`bench.rules_loop`.)

Times are the observations' own (`at`, `received_at`), as integers of epoch microseconds, which
the datetimes are exactly; floats only where the scalar path computes floats (the sun's
minutes, `previous.minutes_ago`), with the same operations in the same order.

`python -m bench.rules_loop` gives what it costs against the scalar path.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from models import Observation
from models.timestamps import EPOCH
from rules.evaluation.field_values import BOOLS, FieldValues
from rules.evaluation.rows import Rows
from rules.evaluation.sun import FAR_MIN, tables_of
from rules.evaluation.views import DeviceView
from rules.language.expressions import (
    HISTORY_READINGS,
    READING_FIELDS,
    device_map,
)
from rules.language.loader import Rule
from rules.language.vectorised import Column, Frame, Vectorised, reads, vectorise_all

if TYPE_CHECKING:
    from rules.evaluation.evaluator import Rulebook

MIN_ROWS = 512
"""Chunks smaller than this go through the scalar path: the columns' fixed costs, per chunk (some
hundred numpy calls) and per luminaire (its view, its sun table), are more than they save. On
`bench.rules_loop`'s readings (1000 luminaires, about one reading each in a small chunk), CPU per
observation, scalar → columns: chunks of 128 17.5 → 26.5 µs, 256 16.5 → 19.4, 512 16.9 → 16.3,
1024 17.5 → 14.0 (best of 2, busy machine)."""

HELD = np.iinfo(np.int64).max
"""`settle`'s `held` time of a firing alert: no reading fires it again."""

_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000
_SUN_FIELDS = (
    "last_sunset",
    "next_sunrise",
    "last_sunrise",
    "next_sunset",
)


@dataclass(frozen=True, slots=True)
class ChunkRules:
    """The reading rules' verdicts vectorised, and what they read."""

    verdicts: tuple[Vectorised, ...]
    reads: frozenset[tuple[str, str]]
    wanted: Mapping[str, frozenset[str] | None]
    values: tuple[Vectorised | None, ...] | None = None
    """Each rule's `value` expression vectorised (None: it has none); None when one is outside
    what is mirrored (then a device in alert always takes the scalar path)."""

    @classmethod
    def of(
        cls, rules: tuple[Rule, ...], wanted: Mapping[str, frozenset[str] | None]
    ) -> "ChunkRules | None":
        """None when a verdict is outside what `vectorise` mirrors."""
        verdicts: list[Vectorised] = []
        values: list[Vectorised | None] | None = []
        read: set[tuple[str, str]] = set()
        sources = [rule.verdict.source for rule in rules if rule.verdict is not None]
        with_value = [rule.value.source for rule in rules if rule.value is not None]
        functions = iter(vectorise_all([*sources, *with_value]))
        for rule in rules:
            assert rule.verdict is not None
            function = next(functions)
            if function is None:
                return None
            verdicts.append(function)
            read |= reads(rule.verdict.source)
        for rule in rules:
            if rule.value is not None and values is not None:
                value = next(functions)
                if value is None:
                    values = None
                else:
                    values.append(value)
                    read |= reads(rule.value.source)
            elif values is not None:
                values.append(None)
        return cls(
            tuple(verdicts), frozenset(read), wanted, None if values is None else tuple(values)
        )


def settle(
    book: "Rulebook",
    rules: ChunkRules,
    observations: Sequence[Observation],
    view_of: Callable[[str], DeviceView | None],
    alerted: set[str],
    held: "Mapping[str, Mapping[int, int]] | None" = None,
) -> tuple[Sequence[Observation], dict[str, DeviceView], dict[tuple[str, int], float]]:
    """The observations for the scalar path (in order), the final views of the devices whose
    observations change nothing else, and the values their held alerts take (`raised`, by
    device and rule index). `held`: the devices of `alerted` whose alerts are all pending or
    firing, not cleared, of reading rules: by rule index (in `ChunkRules.verdicts`' order),
    the epoch microseconds from which a reading would fire the alert (`HELD`: firing).
    `observations` may be `Rows` already (the rules process's chunks): then only the scalar
    path's observations are made."""
    rows = observations if isinstance(observations, Rows) else Rows.of(observations)
    dev = rows.device
    forced = np.zeros(len(rows.names), dtype=bool)
    forced[dev[~rows.reading]] = True
    code_of = rows.code_of()
    held = held if held is not None and rules.values is not None else {}
    for device_id in alerted.intersection(code_of):
        if device_id not in held:
            forced[code_of[device_id]] = True
    candidates = np.flatnonzero(~forced[dev])
    if not len(candidates):
        return observations, {}, {}
    chunk = ChunkColumns(book, rules, rows, candidates, view_of)
    quiet = chunk.quiet_devices(held)
    forced[chunk.devices[~quiet]] = True
    scalar = rows.take(np.flatnonzero(forced[dev]).tolist())
    raised = {
        (chunk.ids[number], rule): value
        for (number, rule), value in chunk.raised.items()
        if quiet[number]
    }
    return scalar, chunk.settled(quiet), raised


def _us(at: datetime) -> int:
    return (at - EPOCH) // _US


class ChunkColumns:
    """The candidate rows (readings of devices without alerts or statuses) as columns."""

    def __init__(
        self,
        book: "Rulebook",
        rules: ChunkRules,
        rows: Rows,
        candidates: np.ndarray,
        view_of: Callable[[str], DeviceView | None],
    ) -> None:
        """`candidates`: the rows (indices into `rows`, in order) taken here, all readings."""
        self.book, self.rules = book, rules
        self.rows, self.candidates = rows, candidates
        self.devices, local = np.unique(rows.device[candidates], return_inverse=True)
        self.local = local.astype(np.int64)
        names = rows.names
        self.ids = [names[number] for number in self.devices.tolist()]
        self.views = [view_of(device_id) for device_id in self.ids]
        self.kept: dict[str, FieldValues] = {}
        self.raised: dict[tuple[int, int], float] = {}
        """`quiet_devices`' values of held alerts, by device number and rule index."""
        """The fields a view keeps of its latest reading (`only_reading`), per judged row."""
        self.bad = np.zeros(len(self.ids), dtype=bool)
        """Devices whose rows the columns cannot hold exactly: the scalar path takes them."""
        self.at_us = rows.at_us[candidates]
        self.heard_us = rows.heard_us[candidates]
        self._stale()
        self._history()

    def _stale(self) -> None:
        """`judged`: the rows after the device's newest judged `ts` so far (its view's, then its
        earlier rows'), in device order (`order`), with the previous judged row of each."""
        count = len(self.ids)
        newest = [v.last_reading_at if v is not None else None for v in self.views]
        has_newest = np.array([t is not None for t in newest], dtype=bool)
        newest_us = np.array([_us(t) if t is not None else 0 for t in newest], dtype=np.int64)
        values = np.concatenate([newest_us, self.at_us])
        _, rank = np.unique(values, return_inverse=True)
        rank = rank.astype(np.int64) + 1
        rank[:count][~has_newest] = 0
        width = len(values) + 1
        devices = np.concatenate([np.arange(count, dtype=np.int64), self.local])
        key = devices * width + rank
        order = np.argsort(devices, kind="stable")
        running = np.maximum.accumulate(key[order])
        before = np.empty_like(running)
        before[1:] = running[:-1]
        before[0] = -1
        stale_sorted = key[order] <= before
        stale = np.empty(len(values), dtype=bool)
        stale[order] = stale_sorted
        self.stale = stale[count:]
        self.newest_us, self.has_newest = newest_us, has_newest
        judged = np.flatnonzero(~self.stale)
        self.order = judged[np.argsort(self.local[judged], kind="stable")]
        """The judged rows, by device, each device's in arrival order."""
        device = self.local[self.order]
        self.first = np.ones(len(self.order), dtype=bool)
        self.first[1:] = device[1:] != device[:-1]
        self.prior = np.empty(len(self.order), dtype=np.int64)
        self.prior[1:] = self.order[:-1]
        self.prior[self.first] = -1
        """Per judged row (in `order`), the previous judged row of its device (-1: none)."""

    def _history(self) -> None:
        """`history.switches` and `.readings` per judged row (in `order`), and each device's
        final lamp history, from its view's and its judged rows' lamp states."""
        histories = [() if view is None else view.lamp_history for view in self.views]
        kept = list(chain.from_iterable(histories))
        if not set(map(type, kept)) <= BOOLS:
            for number, history in enumerate(histories):
                if not set(map(type, history)) <= BOOLS:
                    self.bad[number] = True
        lengths = np.fromiter(map(len, histories), dtype=np.int64, count=len(histories))
        initial = np.repeat(np.arange(len(histories), dtype=np.int64), lengths)
        lamps = np.fromiter(map(bool, kept), dtype=bool, count=len(kept))
        judged = self.candidates[self.order]
        lamp_on = self.rows.fields({"lamp_on"})["lamp_on"].take(judged).resolved()
        self.bad[self.local[self.order][~lamp_on.is_bool]] = True  # not a boolean
        device = np.concatenate([initial, self.local[self.order]])
        # A lamp state that is not a boolean makes its device the scalar path's; as bool() of
        # it meanwhile (a number's truth), as in the rows held here before.
        states = np.where(lamp_on.is_bool, lamp_on.bools, lamp_on.is_float & (lamp_on.floats != 0))
        lamp = np.concatenate([lamps, states])
        order = np.argsort(device, kind="stable")
        device, lamp = device[order], lamp[order]
        change = np.zeros(len(lamp), dtype=np.int64)
        change[1:] = (device[1:] == device[:-1]) & (lamp[1:] != lamp[:-1])
        changes = np.cumsum(change)
        start = np.searchsorted(device, device, side="left")
        position = np.arange(len(lamp))
        low = np.maximum(start, position - (HISTORY_READINGS - 1))
        sorted_at = np.empty(len(lamp), dtype=np.int64)
        sorted_at[order] = position
        judged = sorted_at[len(initial) :]  # where each judged row (in `order`) went
        self.switches = (changes - changes[low]).astype(float)[judged]
        self.readings = (position - low + 1).astype(float)[judged]
        self.lamp_device, self.lamp_state = device, lamp

    def quiet_devices(self, held: "Mapping[str, Mapping[int, int]] | None" = None) -> np.ndarray:
        """Per candidate device: whether none of its judged rows has a verdict that is not a
        boolean or null, or not answered here, or true (false, for a rule whose alert it
        holds: `held`, or at or past when that alert is due), and its values are held
        exactly. Fills `raised`: per quiet device holding alerts and rule, the `value` of its
        last true verdict."""
        frame, bad_rows = self.frame()
        interesting = bad_rows.copy()
        rows = len(self.order)
        device = self.local[self.order]
        shape = (len(self.ids), len(self.rules.verdicts))
        holding = np.zeros(shape, dtype=bool)
        due = np.full(shape, HELD, dtype=np.int64)
        for number, device_id in enumerate(self.ids):
            for rule, until in (held or {}).get(device_id, {}).items():
                holding[number, rule] = True
                due[number, rule] = until
        at = self.at_us[self.order]
        held_rules = [bool(holding[:, rule].any()) for rule in range(shape[1])]
        true_rows: list[tuple[int, np.ndarray]] = []
        for rule, verdict in enumerate(self.rules.verdicts):
            result = verdict(frame)
            ask, null = _mask(result.ask, rows), _mask(result.null, rows)
            if ask is not None:
                interesting |= ask
            if not held_rules[rule]:
                # No device holds this rule's alert (most chunks): a true verdict or a value
                # that is not a boolean or null is all that changes anything.
                if result.kind is bool:
                    changes = np.asarray(result.value, dtype=bool)
                    interesting |= changes if null is None else changes & ~null
                elif result.kind is not type(None):
                    interesting |= True if null is None else ~null
                continue
            null = np.broadcast_to(False if null is None else null, rows)
            holds = holding[device, rule]
            interesting |= holds & (at >= due[device, rule])  # a pending alert fires
            if result.kind is bool:
                value = np.broadcast_to(np.asarray(result.value, dtype=bool), rows)
                # True opens an alert, false drops or clears a held one: both change it.
                interesting |= ~null & (value != holds)
                true_rows.append((rule, holds & ~null & value))
            elif result.kind is not type(None):
                interesting |= ~null  # not a boolean: the scalar path counts an error
        self.raised = self._raised(frame, true_rows, interesting)
        noisy = self.bad.copy()
        noisy[device[interesting]] = True
        return ~noisy

    def _raised(
        self, frame: Frame, true_rows: list[tuple[int, np.ndarray]], interesting: np.ndarray
    ) -> dict[tuple[int, int], float]:
        """Per (device, rule) with a true verdict on a held alert, the `value` of the last one
        (`evaluator._observe`: the expression's number as a float, else 1.0); a row where the
        columns cannot tell it is marked `interesting` (the scalar path takes its device)."""
        out: dict[tuple[int, int], float] = {}
        values = self.rules.values
        assert values is not None or not true_rows
        device = self.local[self.order]
        rows = len(self.order)
        for rule, true in true_rows:
            positions = np.flatnonzero(true)
            if not len(positions):
                continue
            last = np.full(len(self.ids), -1, dtype=np.int64)
            np.maximum.at(last, device[positions], positions)  # `order` is by device, by time
            at = last[last >= 0]
            function = values[rule] if values is not None else None
            if function is None:
                numbers = np.ones(len(at))
            else:
                result = function(frame)
                ask = np.broadcast_to(np.asarray(result.ask | False, dtype=bool), rows)
                null = np.broadcast_to(np.asarray(result.null | False, dtype=bool), rows)
                if result.kind is not float:
                    interesting[at] = True  # a boolean, text or null: left to the scalar path
                    continue
                interesting[at[(ask | null)[at]]] = True
                numbers = np.broadcast_to(np.asarray(result.value, dtype=float), rows)[at]
            for number, value in zip(device[at].tolist(), numbers.tolist(), strict=True):
                out[(number, rule)] = value
        return out

    def frame(self) -> tuple[Frame, np.ndarray]:
        """The judged rows' variables, and the rows holding a value the columns do not."""
        rows = len(self.order)
        columns: dict[tuple[str, str], Column] = {}
        present: dict[tuple[str, str], Any] = {}
        exists: dict[str, Any] = {}
        bad = np.zeros(rows, dtype=bool)
        read = self.rules.reads
        wanted = self.rules.wanted
        device = self.local[self.order]
        reading_names = {f for v, f in read if v == "reading"}
        previous_names = {f for v, f in read if v == "previous"}
        sent = _sent_fields(wanted)
        judged = self.candidates[self.order]
        values = {
            name: got.take(judged).resolved()
            for name, got in self.rows.fields(reading_names | sent).items()
        }
        for got in values.values():
            bad |= got.bad
        self.kept = {name: values[name] for name in sent}
        exists["reading"] = True
        for name in reading_names:
            present[("reading", name)] = values[name].present
            columns[("reading", name)] = values[name].column()
        if "previous" in wanted:
            exists["previous"] = True
            self._previous(previous_names, values, columns, present, sent)
        if "history" in wanted:
            exists["history"] = True
            for name, column in (("switches", self.switches), ("readings", self.readings)):
                present[("history", name)] = True
                columns[("history", name)] = Column(float, column)
        if "device" in wanted:
            exists["device"] = True
            self._device({f for v, f in read if v == "device"}, device, columns, present)
        if "sun" in wanted:
            bad |= self._sun({f for v, f in read if v == "sun"}, device, columns, present, exists)
        return Frame(rows, columns, present, exists), bad

    def _previous(
        self,
        names: set[str],
        values: "dict[str, FieldValues]",
        columns: dict[tuple[str, str], Column],
        present: dict[tuple[str, str], Any],
        sent: frozenset[str],
    ) -> None:
        """`previous` per judged row: the prior judged row's reading (the fields `sent`), or the
        view's kept reading for a device's first, and `minutes_ago`."""
        first = self.first
        prior = np.maximum(np.arange(len(first)) - 1, 0)  # the prior judged row's position
        kept = [
            None if v is None or v.last_reading is None or v.last_reading_at is None else v
            for v in self.views
        ]
        device = self.local[self.order]
        at = self.at_us[self.order]
        firsts = np.flatnonzero(first)
        before = first_else(firsts, device, self.newest_us, at, prior)
        has_kept = np.array([v is not None for v in kept], dtype=bool)
        ago = (at - before) / 1e6 / 60
        exists_ago = ~first | has_kept[device]
        for name in names:
            if name == "minutes_ago":
                present[("previous", name)] = exists_ago
                columns[("previous", name)] = Column(float, ago, ~exists_ago)
                continue
            if name not in sent:
                present[("previous", name)] = False
                columns[("previous", name)] = Column(float, 0.0, True)
                continue
            own = values[name]
            start = FieldValues.of(
                [{} if v is None else v.last_reading for v in kept],  # type: ignore[misc]
                name,
                exact=True,
            )
            kind = own.kind if own.present.any() else start.kind
            value = first_else(firsts, device, start.value_of(kind), own.value_of(kind), prior)
            is_there = first_else(firsts, device, start.present, own.present, prior)
            wrong = ~first_else(firsts, device, start.is_kind(kind), own.is_kind(kind), prior)
            present[("previous", name)] = is_there
            columns[("previous", name)] = Column(kind, value, ~is_there | wrong)

    def _device(
        self,
        names: set[str],
        device: np.ndarray,
        columns: dict[tuple[str, str], Column],
        present: dict[tuple[str, str], Any],
    ) -> None:
        maps = []
        for number, device_id in enumerate(self.ids):
            place = self.book.place(device_id)
            if place is not None:
                maps.append(place.device)
            else:
                # Its zone is each observation's: none of the float fields the columns hold.
                first = int(np.flatnonzero(self.local == number)[0])
                zone = self.rows.zone(int(self.candidates[first]))
                maps.append(device_map(None, device_id, zone))
        for name in names:
            got = FieldValues.of(maps, name, exact=True)
            kind = got.kind
            present[("device", name)] = got.present[device]
            wrong = ~got.is_kind(kind)[device]
            columns[("device", name)] = Column(kind, got.value_of(kind)[device], wrong)

    def _sun(
        self,
        names: set[str],
        device: np.ndarray,
        columns: dict[tuple[str, str], Column],
        present: dict[tuple[str, str], Any],
        exists: dict[str, Any],
    ) -> np.ndarray:
        """The sun facts per judged row (`SunClock.facts`, from the same events); the rows
        where the sun's elevation would decide (no event within three dates) are bad."""
        rows = len(device)
        places = [self.book.place(device_id) for device_id in self.ids]
        with_place = np.array([p is not None for p in places], dtype=bool)[device]
        exists["sun"] = with_place
        at = self.at_us[self.order]
        day = at // _DAY_US
        key = device * (1 << 40) + (day - day.min() if rows else day)
        group, first = groups_of(key)
        times = np.full((len(first), 6), np.inf)
        is_day = np.full((len(first), 7), 2, dtype=np.int8)
        events = np.full((len(first), 4, 7), np.nan)
        found, clocks, starts = [], [], []
        for g, (number, start) in enumerate(
            zip(device[first].tolist(), (day[first] * 86_400).tolist(), strict=True)
        ):
            place = places[number]
            if place is not None:
                found.append(g)
                clocks.append(place.sun)
                starts.append(float(start))
        if found:
            packed = np.stack([t.packed for t in tables_of(clocks, starts)])
            times[found] = packed[:, :6]
            is_day[found] = packed[:, 6:13]
            events[found] = packed[:, 13:].reshape(-1, 4, 7)
        t = at / 1e6
        # Each row's span: how many of its table's times are at or before it; gathered a
        # column at a time, and the facts by flat index (a third of the 2-D indexing's time).
        span = np.zeros(rows, dtype=np.int64)
        for column in np.ascontiguousarray(times.T):
            span += column[group] <= t
        flat = group * is_day.shape[1] + span
        facts = {"is_day": is_day.ravel()[flat]}
        for j, name in enumerate(_SUN_FIELDS):
            facts[name] = np.ascontiguousarray(events[:, j, :]).ravel()[flat]
        minutes = {
            "minutes_after_sunset": _minutes(t - facts["last_sunset"]),
            "minutes_before_sunrise": _minutes(facts["next_sunrise"] - t),
            "minutes_after_sunrise": _minutes(t - facts["last_sunrise"]),
            "minutes_before_sunset": _minutes(facts["next_sunset"] - t),
        }
        polar: np.ndarray = with_place & (facts["is_day"] == 2)
        for name in names:
            present[("sun", name)] = with_place
            if name == "is_day":
                columns[("sun", name)] = Column(bool, facts["is_day"] == 1, ~with_place)
            elif name in minutes:
                columns[("sun", name)] = Column(float, minutes[name], ~with_place)
            else:
                present[("sun", name)] = False
                columns[("sun", name)] = Column(float, 0.0, True)
        return polar

    def settled(self, quiet: np.ndarray) -> dict[str, DeviceView]:
        """The final view of each quiet device."""
        out: dict[str, DeviceView] = {}
        count = len(self.ids)
        heard = np.full(count, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(heard, self.local, self.heard_us)
        last = np.full(count, -1, dtype=np.int64)
        np.maximum.at(last, self.local[self.order], self.order)  # the latest judged row
        lamp_end = np.searchsorted(self.lamp_device, np.arange(count), side="right")
        lamp_low = np.maximum(
            np.searchsorted(self.lamp_device, np.arange(count), side="left"),
            lamp_end - HISTORY_READINGS,
        )
        keeps = "previous" in self.rules.wanted
        states = self.lamp_state.tolist()
        numbers = np.flatnonzero(quiet)
        position = np.empty(len(self.at_us), dtype=np.int64)
        position[self.order] = np.arange(len(self.order))
        latest = last[numbers]
        # The kept reading's fields of each quiet device's latest judged row only, in the order
        # of `numbers` (those with one): the k-th such device reads item k.
        places = position[latest[latest >= 0]]
        kept_columns = [
            (name, taken.present.tolist(), taken.python_values())
            for name, got in sorted(self.kept.items(), key=lambda item: _ORDER[item[0]])
            for taken in (got.take(places),)
        ]
        heard_list, last_list = heard.tolist(), last.tolist()
        low_list, end_list = lamp_low.tolist(), lamp_end.tolist()
        views, ids, rows, candidates = self.views, self.ids, self.rows, self.candidates.tolist()
        k = -1
        for number in numbers.tolist():
            view = views[number]
            seen = EPOCH + timedelta(microseconds=heard_list[number])
            if view is not None and view.last_seen_at > seen:
                seen = view.last_seen_at
            row = last_list[number]
            if row < 0:
                assert view is not None  # every row stale: the device has a judged reading
                out[ids[number]] = replace(view, last_seen_at=seen)
                continue
            k += 1
            zone, at = rows.zone(candidates[row]), rows.at(candidates[row])
            history = tuple(states[low_list[number] : end_list[number]])
            if keeps:
                kept = {name: values[k] for name, sent, values in kept_columns if sent[k]}
            else:
                kept = None if view is None else view.last_reading  # type: ignore[assignment]
            if view is None:
                out[ids[number]] = DeviceView(zone, seen, history, kept, at)
            else:
                out[ids[number]] = DeviceView(
                    zone, seen, history, kept, at, view.status_at, view.status_ts_at
                )
        return out


def first_else(
    firsts: np.ndarray, device: np.ndarray, start: np.ndarray, own: np.ndarray, prior: np.ndarray
) -> np.ndarray:
    """`np.where(first, start[device], own[prior])` with `firsts` the rows where `first` is
    true: `start` (one value per device) gathered at a device's first row only, not at every
    row (a chunk holds ~50 rows of a device)."""
    out: np.ndarray = own[prior].astype(np.result_type(start, own), copy=False)
    out[firsts] = start[device[firsts]]
    return out


def groups_of(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group (the rank of its key among the distinct keys) and each group's first
    row; without a sort when the keys are in order already (the judged rows are by device,
    and a device's mostly of one date)."""
    if len(key) and bool((key[1:] >= key[:-1]).all()):
        change = np.empty(len(key), dtype=bool)
        change[0] = True
        np.not_equal(key[1:], key[:-1], out=change[1:])
        return np.cumsum(change) - 1, np.flatnonzero(change)
    groups, group = np.unique(key, return_inverse=True)
    first = np.zeros(len(groups), dtype=np.int64)
    first[group[::-1]] = np.arange(len(key))[::-1]
    return group, first


def _mask(rows: Any, count: int) -> np.ndarray | None:
    """A column's `ask` or `null` as a boolean array over `count` rows, or None when it is
    false in every row (the verdicts' are mostly a plain False)."""
    if isinstance(rows, np.ndarray) and rows.ndim:
        return np.broadcast_to(rows.astype(bool, copy=False), count)
    return np.full(count, True) if rows else None


def _minutes(delta: np.ndarray) -> np.ndarray:
    """`(t - event) / 60`, or `FAR_MIN` where there is no such event (NaN)."""
    out: np.ndarray = np.where(np.isnan(delta), FAR_MIN, delta / 60)
    return out


def _sent_fields(wanted: Mapping[str, frozenset[str] | None]) -> frozenset[str]:
    """The reading fields a view keeps as its `previous` (`only_reading`)."""
    names = wanted.get("previous", frozenset())
    if names is None:
        return frozenset(READING_FIELDS)
    return frozenset(READING_FIELDS) & names


_ORDER = {name: i for i, name in enumerate(READING_FIELDS)}
"""`reading_map`'s order of the fields (a kept reading's dict is built in it)."""
