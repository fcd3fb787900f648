"""Capped exponential backoff with jitter, for reconnecting to the broker and probing InfluxDB."""

import random


def backoff_delay(attempt: int, minimum: float, maximum: float, rng: random.Random) -> float:
    """The wait before retry number `attempt` (0-based): half fixed, half random, so a fleet of
    ingesters does not come back in lockstep after a shared outage."""
    ceiling = min(maximum, minimum * 2.0 ** min(attempt, 30))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)
