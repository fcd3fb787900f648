"""A token bucket per device (or gateway), so one flooding controller cannot starve the others.

The excess is dead-lettered with reason `rate_limited` — kept, not dropped — so a controller that
replays a long buffer after an outage can have its readings re-ingested. Idle buckets are
forgotten, so a flood of made-up device ids cannot grow memory without bound.
"""

from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`allow(key, now)` is True while `key` stays within `rate` messages/s with bursts of
    `burst`. Time is passed in, so the limiter is a pure, testable core."""

    def __init__(self, rate: float, burst: float, max_keys: int = 1_000_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._last_sweep = 0.0

    def allow(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._sweep(now, force=True)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.updated = now
        if now - self._last_sweep > self.burst / self.rate:
            self._sweep(now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def _sweep(self, now: float, *, force: bool = False) -> None:
        """Forget buckets that have refilled completely: they hold no state worth keeping."""
        self._last_sweep = now
        refill_s = self.burst / self.rate
        idle = [k for k, b in self._buckets.items() if now - b.updated >= refill_s]
        for key in idle:
            del self._buckets[key]
        if force and len(self._buckets) >= self.max_keys:
            # Every bucket busy: forget the longest-unused half rather than grow past the cap.
            by_age = sorted(self._buckets, key=lambda k: self._buckets[k].updated)
            for key in by_age[: len(by_age) // 2]:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
