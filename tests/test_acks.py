"""Acknowledgements leave in arrival order, only once done, and never across connections."""

from hypothesis import given
from hypothesis import strategies as st

from mqtt.acks import AckTracker


def test_acks_wait_for_the_oldest_message() -> None:
    sent: list[int] = []
    tracker = AckTracker(sent.append)
    tracker.new_connection()
    first, second, third = (tracker.received(mid) for mid in (11, 12, 13))
    tracker.done(second)
    tracker.done(third)
    assert sent == []
    tracker.done(first)
    assert sent == [11, 12, 13]
    assert tracker.outstanding == 0


def test_acks_owed_on_a_lost_connection_are_dropped() -> None:
    sent: list[int] = []
    tracker = AckTracker(sent.append)
    tracker.new_connection()
    old = tracker.received(5)
    tracker.new_connection()
    new = tracker.received(5)
    tracker.done(old)
    assert sent == []
    tracker.done(new)
    assert sent == [5]


@given(st.permutations(list(range(30))))
def test_any_completion_order_acks_everything_in_arrival_order(order: list[int]) -> None:
    sent: list[int] = []
    tracker = AckTracker(sent.append)
    tracker.new_connection()
    deliveries = [tracker.received(100 + i) for i in range(30)]
    for index in order:
        tracker.done(deliveries[index])
        assert sent == [100 + i for i in range(len(sent))]
    assert sent == [100 + i for i in range(30)]
