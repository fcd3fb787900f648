"""One field of a chunk's observations as arrays (`rules.evaluation.columns`): sent or not, its
value as a double or a boolean, and the rows holding a value the columns cannot hold exactly.
"""

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from rules.language.expressions import READING_FIELDS
from rules.language.vectorised import Column


class FieldValues:
    """One field over a list of dicts: sent or not, and its value as a float or a bool."""

    __slots__ = ("bad", "bools", "floats", "is_bool", "is_float", "kind", "present")

    def __init__(
        self,
        present: np.ndarray,
        is_float: np.ndarray,
        is_bool: np.ndarray,
        floats: np.ndarray,
        bools: np.ndarray,
        bad: np.ndarray,
    ) -> None:
        self.present, self.is_float, self.is_bool = present, is_float, is_bool
        self.floats, self.bools, self.bad = floats, bools, bad
        self.kind: type = bool if is_bool.any() and not is_float.any() else float

    @classmethod
    def of(
        cls, maps: Sequence[Mapping[str, Any]], name: str, *, exact: bool = False
    ) -> "FieldValues":
        """With `exact`, the values as they are (ints are not doubles, None is a value); else as
        `reading_map` makes them: None is not sent, ints become doubles, and a value of
        another type (or an int too large for a double) is `bad`."""
        if not exact and name not in READING_FIELDS:
            return cls.absent(len(maps))
        try:
            raw = list(map(itemgetter(name), maps))  # every row sent it, as a rule
        except KeyError:
            raw = [m.get(name, _ABSENT) for m in maps]
        return cls.of_values(raw, exact=exact)

    @classmethod
    def many(cls, maps: Sequence[Mapping[str, Any]], names: set[str]) -> "dict[str, FieldValues]":
        """`of` each of `names`, from one pass over `maps` when every one holds every reading
        field of them (as a rule): each dict is visited once rather than once a name."""
        fields = sorted(name for name in names if name in READING_FIELDS)
        out = {name: cls.of(maps, name) for name in names if name not in READING_FIELDS}
        if len(fields) < 2 or not maps:
            return out | {name: cls.of(maps, name) for name in fields}
        try:
            table = list(map(itemgetter(*fields), maps))
        except KeyError:
            return out | {name: cls.of(maps, name) for name in fields}
        for name, raw in zip(fields, zip(*table, strict=True), strict=True):
            out[name] = cls.of_values(raw)
        return out

    @classmethod
    def of_values(cls, raw: Sequence[Any], *, exact: bool = False) -> "FieldValues":
        """`of` from the values (`_ABSENT`: not in the dict)."""
        count = len(raw)
        seen = set(map(type, raw))
        if len(seen) == 1 and (float in seen or bool in seen):
            # The common case, every row sent a value of one type.
            every, nothing = np.ones(count, dtype=bool), np.zeros(count, dtype=bool)
            if float in seen:
                return cls(every, every, nothing, np.fromiter(raw, float, count), nothing, nothing)
            return cls(
                every, nothing, every, np.zeros(count), np.fromiter(raw, bool, count), nothing
            )
        objects = np.fromiter(raw, dtype=object, count=count)
        kinds = np.fromiter(map(type, raw), dtype=object, count=count)
        present = ~_of_type(kinds, _Absent)
        if not exact:
            present &= ~_of_type(kinds, type(None))
        is_bool = present & _of_type(kinds, bool)
        is_float = present & _of_type(kinds, float)
        is_int = present & _of_type(kinds, int)
        bad = np.zeros(count, dtype=bool)
        floats = np.zeros(count, dtype=float)
        bools = np.zeros(count, dtype=bool)
        if is_float.any():
            floats[is_float] = objects[is_float].astype(float)
        if is_bool.any():
            bools[is_bool] = objects[is_bool].astype(bool)
        if not exact:
            if is_int.any():
                try:
                    floats[is_int] = objects[is_int].astype(float)  # float(), as reading_map
                    is_float = is_float | is_int
                except OverflowError:
                    bad |= is_int
            bad |= present & ~is_bool & ~is_float
        return cls(present, is_float, is_bool, floats, bools, bad)

    @classmethod
    def absent(cls, count: int) -> "FieldValues":
        """A field no row sent."""
        nothing = np.zeros(count, dtype=bool)
        return cls(nothing, nothing, nothing, np.zeros(count), nothing, nothing)

    @classmethod
    def of_kinds(cls, kinds: np.ndarray, values: np.ndarray) -> "FieldValues":
        """From a field's kinds and values as `rules.runtime.handed_rows` gives them (`KINDS`),
        as `of` makes them from the same values."""
        is_bool = kinds == KIND_BOOL
        is_float = (kinds == KIND_FLOAT) | (kinds == KIND_INT)
        other = kinds == KIND_OTHER
        floats = np.where(is_float, values, 0.0)
        return cls(
            is_bool | is_float | other, is_float, is_bool, floats, is_bool & (values != 0), other
        )

    @classmethod
    def concat(cls, parts: "Sequence[FieldValues]") -> "FieldValues":
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in _ARRAYS))

    def take(self, rows: np.ndarray) -> "FieldValues":
        """These rows' values (an array of indices), in that order."""
        return FieldValues(*(getattr(self, name)[rows] for name in _ARRAYS))

    def resolved(self) -> "FieldValues":
        return self

    def python_values(self) -> list[Any]:
        """Each row's value as `reading_map` gives it (a float or a bool; where sent)."""
        if not self.is_bool.any():
            return self.floats.tolist()  # type: ignore[no-any-return]
        if not self.is_float.any():
            return self.bools.tolist()  # type: ignore[no-any-return]
        mixed = np.where(self.is_bool, self.bools.astype(object), self.floats.astype(object))
        return mixed.tolist()  # type: ignore[no-any-return]

    def is_kind(self, kind: type) -> np.ndarray:
        return self.is_bool if kind is bool else self.is_float

    def value_of(self, kind: type) -> np.ndarray:
        return self.bools if kind is bool else self.floats

    def column(self) -> Column:
        kind = self.kind
        return Column(kind, self.value_of(kind), ~self.present | ~self.is_kind(kind))


class FieldKinds:
    """One field as `rules.runtime.handed_rows` gives it, each row's kind and value: its rows
    taken and joined as two arrays (rather than `FieldValues`' six), then `resolved()`."""

    __slots__ = ("kinds", "values")

    def __init__(self, kinds: np.ndarray, values: np.ndarray) -> None:
        self.kinds, self.values = kinds, values

    def take(self, rows: np.ndarray) -> "FieldKinds":
        return FieldKinds(self.kinds[rows], self.values[rows])

    @classmethod
    def concat(cls, parts: "Sequence[FieldKinds]") -> "FieldKinds":
        return cls(
            np.concatenate([p.kinds for p in parts]), np.concatenate([p.values for p in parts])
        )

    def resolved(self) -> FieldValues:
        return FieldValues.of_kinds(self.kinds, self.values)


AnyField = FieldValues | FieldKinds
"""A field over rows, in either form."""


def concat_fields(parts: "Sequence[AnyField]") -> AnyField:
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, FieldKinds) for p in parts):
        return FieldKinds.concat(parts)  # type: ignore[arg-type]
    return FieldValues.concat([p.resolved() for p in parts])


_ARRAYS = ("present", "is_float", "is_bool", "floats", "bools", "bad")
"""`__init__`'s arguments, in order."""
KIND_ABSENT, KIND_NULL, KIND_BOOL, KIND_FLOAT, KIND_INT, KIND_OTHER = range(6)
"""A field's kind in a row, as `rules.runtime.handed_rows` gives it: not sent, null, a boolean
(value 0 or 1), a double, an integer (value: its nearest double), any other JSON value."""
BOOLS = frozenset({bool})
_FLOAT = frozenset({float})
_NUMBERS = frozenset({float, int})


def _of_type(kinds: np.ndarray, cls: type) -> np.ndarray:
    """Where the array of types `kinds` holds `cls`."""
    target: Any = cls
    out: np.ndarray = kinds == target
    return out


class _Absent:
    pass


_ABSENT = _Absent()
