"""Types of the C module `ingest/reading_lines.c`: plain valid readings to line protocol."""

from typing import Literal, TypeAlias, final, overload

from models import JournalRun

Checked: TypeAlias = tuple[
    str, str | None, int | None, dict[str, bool | int | float | None], int | None
]
"""A reading's line, the `device_id` it sent (None when it sent none), its `ts` in epoch
microseconds (None when it had none), the measured fields it sent with their values — None
for a field sent as null, and `device_id`/`ts` too when sent as null (so the `Reading` built
from it knows every field sent, as pydantic's does) — and, for a reading without `ts`, the
receive stamp it was written with (epoch ms; None when it had a `ts`)."""

Entry: TypeAlias = tuple[str, bytes]
"""Hand-over mode (`with_values` given as the receive time's JSON text): a reading's line and
its entry of the rules' journal as JSON text — `[zone, device_id, at_us, received, false,
{field: value}]`, what `rules.runtime.channel.encode_handed` writes for a reading, the values as
`Checked` has them, floats as Python's repr of the double. Given a `run` after `stamps`, the
entries are appended to it instead (comma-separated; a batch left to the full path leaves it
as it was), and the lines are returned as with `with_values` False."""

@final
class Stamps:
    """Receive times for readings without `ts`, unique per device and strictly increasing at
    the precision written (ms): `stamp` gives max(the receive clock, the device's last stamp
    + 1).

    The clock is the receive time — the wall clock read once per socket read
    (`ingest.mqtt_source`), in epoch ms — made never to go back: the latest receive ms seen
    (the floor) is used while the clock is behind it, so a step back of the clock (NTP) still
    stamps each device strictly later. A step back of more than 10 s is taken as a correction
    of a clock that was wrong: the floor follows it and the memory is emptied (a device's next
    stamp could then, in principle, land on a ms it was stamped with during the wrong time).

    Bounded: a device's entry matters only while its last stamp is at or after the floor
    (otherwise its next stamp is the floor anyway), so the memory is emptied whenever the floor
    passes every entry (as a rule, at the next millisecond), and swept of stale entries whenever
    it has grown past twice what the last sweep kept + 64 (amortised O(1) a stamp): it holds
    the devices stamped in the current millisecond window, and at most twice the most devices
    ever ahead of the clock at once (a burst of one device's readings) + 65 — about 120 bytes
    each."""

    def stamp(self, device_id: str, received_ms: int, /) -> int:
        """The epoch ms to write a reading of `device_id` received at `received_ms` with."""
    def remembered(self) -> int:
        """How many devices the memory holds now."""

@overload
def telemetry(
    payload: bytes,
    zone: str,
    device_id: str,
    received_ms: int,
    skew_ms: int,
    with_values: Literal[False],
    stamps: Stamps,
) -> str | None: ...
@overload
def telemetry(
    payload: bytes,
    zone: str,
    device_id: str,
    received_ms: int,
    skew_ms: int,
    with_values: Literal[True],
    stamps: Stamps,
) -> Checked | None: ...
@overload
def telemetry(
    payload: bytes,
    zone: str,
    device_id: str,
    received_ms: int,
    skew_ms: int,
    with_values: bytes,
    stamps: Stamps,
) -> Entry | None: ...
@overload
def telemetry(
    payload: bytes,
    zone: str,
    device_id: str,
    received_ms: int,
    skew_ms: int,
    with_values: bytes,
    stamps: Stamps,
    run: JournalRun,
) -> str | None: ...
@overload
def batch(
    payload: bytes,
    zone: str,
    received_ms: int,
    skew_ms: int,
    with_values: Literal[False],
    stamps: Stamps,
) -> list[str] | None: ...
@overload
def batch(
    payload: bytes,
    zone: str,
    received_ms: int,
    skew_ms: int,
    with_values: Literal[True],
    stamps: Stamps,
) -> list[Checked] | None: ...
@overload
def batch(
    payload: bytes,
    zone: str,
    received_ms: int,
    skew_ms: int,
    with_values: bytes,
    stamps: Stamps,
) -> list[Entry] | None: ...
@overload
def batch(
    payload: bytes,
    zone: str,
    received_ms: int,
    skew_ms: int,
    with_values: bytes,
    stamps: Stamps,
    run: JournalRun,
) -> list[str] | None: ...
