"""`ingest.reading_lines.Stamps`, the receive stamps of readings without `ts`: unique per device
and strictly increasing at the precision written (ms), whatever the receive clock does, with a
memory that holds only what can still change a stamp."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.fast_path import Stamps

T = 1_795_521_600_000
STEP_BACK_MAX_MS = 10_000


class Reference:
    """The rule, remembering everything: max(receive clock made monotonic, last + 1)."""

    def __init__(self) -> None:
        self.floor = 0
        self.last: dict[str, int] = {}

    def stamp(self, device: str, received_ms: int) -> int:
        if received_ms > self.floor:
            self.floor = received_ms
        elif received_ms < self.floor - STEP_BACK_MAX_MS:
            self.floor = received_ms
            self.last.clear()
        stamp = max(self.floor, self.last.get(device, self.floor - 1) + 1)
        self.last[device] = stamp
        return stamp

    def useful(self) -> int:
        return sum(last >= self.floor for last in self.last.values())


@settings(max_examples=500)
@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from([f"lum-{i}" for i in range(8)]) | st.text(max_size=3),
            st.sampled_from([0, 0, 0, 1, 2, 5, 100, -1, -3000, -20_000]),
        ),
        max_size=400,
    )
)
def test_stamps_follow_the_rule_and_remember_only_what_matters(
    calls: list[tuple[str, int]],
) -> None:
    """The same stamps as the rule applied with a memory of everything; the memory at most
    twice the most devices that mattered at once (stamped at or after the receive clock), + 65."""
    stamps, reference = Stamps(), Reference()
    received, peak = T, 0
    for device, step in calls:
        received += step
        assert stamps.stamp(device, received) == reference.stamp(device, received)
        peak = max(peak, reference.useful())
        assert stamps.remembered() <= 2 * peak + 64 + 1


def test_one_devices_readings_in_one_ms_get_one_ms_each_and_others_are_not_delayed() -> None:
    stamps = Stamps()
    assert [stamps.stamp("lum-1", T) for _ in range(100)] == list(range(T, T + 100))
    assert stamps.stamp("lum-2", T) == T
    assert stamps.stamp("lum-1", T + 50) == T + 100
    assert stamps.stamp("lum-1", T + 500) == T + 500


def test_a_clock_stepped_back_still_stamps_each_device_later() -> None:
    """NTP steps the wall clock back 2 s: the receive clock holds at its latest until the wall
    clock catches up; a step of more than 10 s is a correction, and is followed."""
    stamps = Stamps()
    assert stamps.stamp("lum-1", T) == T
    assert stamps.stamp("lum-1", T - 2000) == T + 1
    assert stamps.stamp("lum-2", T - 1000) == T
    assert stamps.stamp("lum-1", T + 1) == T + 2
    assert stamps.stamp("lum-1", T - 60_000) == T - 60_000


def test_the_memory_empties_as_the_clock_moves_on() -> None:
    """10,000 devices in one ms are 10,000 entries; one ms later none of them matters."""
    stamps = Stamps()
    for i in range(10_000):
        stamps.stamp(f"lum-{i}", T)
    assert stamps.remembered() == 10_000
    stamps.stamp("lum-0", T + 1)
    assert stamps.remembered() == 1


def test_a_device_ahead_of_the_clock_does_not_make_the_others_pile_up() -> None:
    """One device's burst of 5,000 readings in one ms keeps it ahead of the clock for 5 s;
    meanwhile a thousand others, one ms each, are swept, not kept."""
    stamps = Stamps()
    for _ in range(5000):
        stamps.stamp("burst", T)
    most = 0
    for i in range(1, 1001):
        stamps.stamp(f"lum-{i}", T + i)
        most = max(most, stamps.remembered())
    assert most <= 2 * 2 + 64 + 1
    assert stamps.stamp("burst", T + 1000) == T + 5000


def test_wrong_arguments_are_type_errors() -> None:
    stamps = Stamps()
    with pytest.raises(TypeError):
        stamps.stamp(b"lum-1", T)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        stamps.stamp("lum-1")  # type: ignore[call-arg]
    with pytest.raises(OverflowError):
        stamps.stamp("lum-1", 2**64)
    with pytest.raises(ValueError, match="1970 to 9999"):
        stamps.stamp("lum-1", -1)
    with pytest.raises(TypeError):
        Stamps(1)  # type: ignore[call-arg]
