"""A chunk of observations as columns (`Rows`), what `rules.evaluation.columns` evaluates: each
row's device and zone (as codes into their names), `ts` and contact time in epoch microseconds,
whether it is a reading, and each reading field as a `FieldValues` — built from `Observation`s
(`Rows.of`) or, in the rules process, straight from a journal record's bytes
(`rules.runtime.journal_rows`), so that a chunk whose devices only need their views settled
builds no Python object per reading. A row's `Observation` is made only when it is asked for
(`rows[i]`): the scalar path's rows, a few in a hundred.
"""

import bisect
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import overload

import numpy as np

from models import Observation, SentReading
from models.timestamps import EPOCH
from rules.evaluation.field_values import AnyField, FieldValues, concat_fields

_US = timedelta(microseconds=1)


class Rows(Sequence[Observation]):
    """Observations as columns; `rows[i]` is the i-th `Observation` (made when asked for).

    A status row's `at_us` and `heard_us` hold its own times too, but nothing column-wise reads
    them: a device with a status in the chunk goes through the scalar path."""

    __slots__ = (
        "_at",
        "_field_source",
        "_fields",
        "_index",
        "_make",
        "_take",
        "_zone_of",
        "at_us",
        "device",
        "heard_us",
        "names",
        "reading",
    )

    def __init__(
        self,
        names: list[str],
        device: np.ndarray,
        at_us: np.ndarray,
        heard_us: np.ndarray,
        reading: np.ndarray,
        fields: Callable[[set[str]], Mapping[str, AnyField]],
        make: Callable[[int], Observation],
        zone_of: Callable[[int], str],
        at: Callable[[int], datetime] | None = None,
        take: Callable[[list[int]], list[Observation]] | None = None,
    ) -> None:
        """`names`: the device ids, `device` each row's index into them; `fields(names)`: those
        reading fields over every row (a status row: not sent); `make(i)`: the i-th
        observation; `zone_of(i)` its zone and `at(i)` its `ts` (by default from `at_us`);
        `take(rows)` those rows' observations at once (by default `make` each)."""
        self.names, self.device = names, device
        self.at_us, self.heard_us, self.reading = at_us, heard_us, reading
        self._fields: dict[str, AnyField] = {}
        self._make, self._zone_of = make, zone_of
        self._at = at
        self._take = take
        self._index: dict[str, int] | None = None
        self._field_source = fields

    @classmethod
    def of(cls, observations: Sequence[Observation]) -> "Rows":
        """The columns of `observations` (each row's observation is the one given)."""
        index: dict[str, int] = {}
        device = np.fromiter(
            (index.setdefault(o.device_id, len(index)) for o in observations),
            dtype=np.int64,
            count=len(observations),
        )
        epoch, us = EPOCH, _US
        at_us = np.fromiter(
            ((o.at - epoch) // us for o in observations), dtype=np.int64, count=len(observations)
        )
        received: list[int] = []
        last: datetime | None = None
        last_us = 0
        for o in observations:
            if o.received_at is not last:
                last, last_us = o.received_at, (o.received_at - epoch) // us
            received.append(last_us)
        retained = np.fromiter((o.retained for o in observations), dtype=bool)
        reading = np.fromiter((o.reading is not None for o in observations), dtype=bool)
        heard = np.maximum(at_us, np.array(received, dtype=np.int64))
        heard_us = np.where(retained, at_us, heard)

        def fields(names: set[str]) -> Mapping[str, AnyField]:
            maps = [
                {}
                if (r := o.reading) is None
                else r.fields
                if r.__class__ is SentReading
                else r.__dict__
                for o in observations
            ]
            return FieldValues.many(maps, names)

        return cls(
            list(index),
            device,
            at_us,
            heard_us,
            reading,
            fields,
            observations.__getitem__,
            lambda i: observations[i].zone,
            lambda i: observations[i].at,
        )

    @classmethod
    def concat(cls, parts: Sequence["Rows"]) -> "Rows":
        """One `Rows` of `parts`, in order."""
        if len(parts) == 1:
            return parts[0]
        index: dict[str, int] = {}
        devices = []
        for part in parts:
            codes = np.array([index.setdefault(n, len(index)) for n in part.names], np.int64)
            devices.append(codes[part.device] if len(part) else part.device)
        starts = [0]
        for part in parts:
            starts.append(starts[-1] + len(part))

        def where(i: int) -> tuple["Rows", int]:
            k = bisect.bisect_right(starts, i) - 1
            return parts[k], i - starts[k]

        def fields(names: set[str]) -> Mapping[str, AnyField]:
            got = [part.fields(names) for part in parts]
            return {name: concat_fields([g[name] for g in got]) for name in names}

        def make(i: int) -> Observation:
            part, j = where(i)
            return part[j]

        def take(rows: list[int]) -> list[Observation]:
            out: list[Observation] = []
            for k, part in enumerate(parts):
                low, high = (
                    bisect.bisect_left(rows, starts[k]),
                    bisect.bisect_left(rows, starts[k + 1]),
                )
                if low < high:
                    out += part.take([i - starts[k] for i in rows[low:high]])
            return out

        def zone_of(i: int) -> str:
            part, j = where(i)
            return part.zone(j)

        def at(i: int) -> datetime:
            part, j = where(i)
            return part.at(j)

        return cls(
            list(index),
            np.concatenate(devices),
            np.concatenate([p.at_us for p in parts]),
            np.concatenate([p.heard_us for p in parts]),
            np.concatenate([p.reading for p in parts]),
            fields,
            make,
            zone_of,
            at,
            take,
        )

    def __len__(self) -> int:
        return len(self.device)

    @overload
    def __getitem__(self, i: int) -> Observation: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Observation]: ...

    def __getitem__(self, i: int | slice) -> Observation | Sequence[Observation]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._make(i)

    def __iter__(self) -> Iterator[Observation]:
        make = self._make
        return (make(i) for i in range(len(self)))

    def take(self, rows: list[int]) -> list[Observation]:
        """The observations of `rows` (indices, ascending), in that order."""
        if self._take is not None:
            return self._take(rows)
        make = self._make
        return [make(i) for i in rows]

    def fields(self, names: set[str]) -> Mapping[str, AnyField]:
        """Those reading fields over every row (computed once each; `resolved()` gives their
        `FieldValues`)."""
        missing = names - self._fields.keys()
        if missing:
            self._fields.update(self._field_source(missing))
        return {name: self._fields[name] for name in names}

    def zone(self, i: int) -> str:
        return self._zone_of(i)

    def at(self, i: int) -> datetime:
        """The i-th row's `ts` (its observation's `at`)."""
        if self._at is not None:
            return self._at(i)
        return EPOCH + timedelta(microseconds=int(self.at_us[i]))

    def device_ids(self) -> list[str]:
        """The devices of the rows (each once)."""
        return self.names

    def code_of(self) -> dict[str, int]:
        """Each device id's index into `names`."""
        if self._index is None:
            self._index = {name: i for i, name in enumerate(self.names)}
        return self._index
