"""The per-device rate limit: bursts allowed, the rate held, idle devices forgotten."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ingest.decode import Limits, decode
from ingest.rate_limit import RateLimiter
from models import Reason


def test_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate=2.0, burst=5)
    assert [limiter.allow("a", 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.allow("b", 0.0)
    assert not limiter.allow("a", 0.4)
    assert limiter.allow("a", 0.5)
    assert not limiter.allow("a", 0.5)


@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=400))
def test_never_more_than_burst_plus_rate_times_elapsed(gaps: list[float]) -> None:
    limiter = RateLimiter(rate=3.0, burst=10)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += limiter.allow("dev", now)
    assert allowed <= 10 + 3.0 * now + 1e-9


def test_idle_devices_are_forgotten_and_the_table_is_capped() -> None:
    limiter = RateLimiter(rate=1.0, burst=2, max_keys=100)
    for i in range(100):
        limiter.allow(f"d{i}", 0.0)
    assert len(limiter) == 100
    limiter.allow("late", 10.0)
    assert len(limiter) == 1
    busy = RateLimiter(rate=1.0, burst=1000, max_keys=50)
    for i in range(500):
        busy.allow(f"d{i}", float(i) / 1000)
    assert len(busy) <= 50


def test_a_flooding_device_is_dead_lettered_as_rate_limited() -> None:
    limits = Limits(topic_root="lighting")
    limiter = RateLimiter(rate=1.0, burst=3)
    start = datetime(2026, 11, 24, tzinfo=UTC)
    body = b'{"lamp_on": true, "power_w": 10, "energy_wh": 5}'
    outcomes = [
        decode(
            "lighting/z/flood/telemetry", body, start + timedelta(milliseconds=i), limits, limiter
        )
        for i in range(5)
    ]
    assert [len(o.points) for o in outcomes] == [1, 1, 1, 0, 0]
    assert outcomes[4].dead_letters[0].reason is Reason.RATE_LIMITED
    other = decode("lighting/z/quiet/telemetry", body, start, limits, limiter)
    assert len(other.points) == 1


def _reference_bucket(rate: int, burst: int, times: list[float]) -> list[bool]:
    """The plain token bucket: `burst` tokens, refilled at `rate` per second, one per message."""
    tokens, last, out = float(burst), 0.0, []
    for now in times:
        tokens = min(burst, tokens + (now - last) * rate)
        last = now
        out.append(tokens >= 1)
        if tokens >= 1:
            tokens -= 1
    return out


@given(st.lists(st.integers(min_value=0, max_value=16), min_size=1, max_size=300))
def test_it_decides_as_a_plain_token_bucket(eighths: list[int]) -> None:
    """Gaps in eighths of a second with rate 2: every sum is exact in binary, so the two
    bookkeepings must agree message for message."""
    times, now = [], 0.0
    for gap in eighths:
        now += gap / 8
        times.append(now)
    limiter = RateLimiter(rate=2.0, burst=5)
    assert [limiter.allow("dev", t) for t in times] == _reference_bucket(2, 5, times)
