"""Reconnect backoff: grows, is capped, and is jittered so a fleet does not come back in step."""

import random

from hypothesis import given
from hypothesis import strategies as st

from common.backoff import backoff_delay


@given(attempt=st.integers(min_value=0, max_value=10_000), seed=st.integers())
def test_delay_stays_within_half_and_all_of_the_capped_ceiling(attempt: int, seed: int) -> None:
    ceiling = min(30.0, 0.5 * 2.0 ** min(attempt, 30))
    delay = backoff_delay(attempt, 0.5, 30.0, random.Random(seed))
    assert ceiling / 2 <= delay <= ceiling


def test_delays_are_jittered() -> None:
    rng = random.Random(1)
    delays = {round(backoff_delay(8, 0.5, 30.0, rng), 6) for _ in range(20)}
    assert len(delays) == 20
