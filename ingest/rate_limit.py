"""A rate limit per device (or gateway), so one flooding controller cannot starve the others.

The excess is dead-lettered with reason `rate_limited` — kept, not dropped — so a controller that
replays a long buffer after an outage can have its readings re-ingested. Idle devices are
forgotten, so a flood of made-up device ids cannot grow memory without bound.
"""


class RateLimiter:
    """`allow(key, now)` is True while `key` stays within `rate` messages/s with bursts of
    `burst`. Time is passed in, so the limiter is a pure, testable core.

    A token bucket, kept as the generic cell rate algorithm does: one float per key, the
    theoretical arrival time (TAT) of its next message, instead of a level and a time. A message
    is allowed while the TAT is at most `(burst - 1) / rate` ahead of now, and moves it on by
    `1 / rate`. Why: it is asked once per message, and this is one dict read and write (~0.4 µs
    here, the bucket object it replaces ~1.2 µs)."""

    def __init__(self, rate: float, burst: float, max_keys: int = 1_000_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) / rate
        self._refill_s = burst / rate
        self._next: dict[str, float] = {}
        self._last_sweep = 0.0

    def allow(self, key: str, now: float) -> bool:
        due = self._next.get(key)
        if due is None:
            if len(self._next) >= self.max_keys:
                self._sweep(now, force=True)
            due = now
        elif due < now:
            due = now  # fully rested: as good as a new key
        if now - self._last_sweep > self._refill_s:
            self._sweep(now)
        if due - now > self._tolerance:
            return False
        self._next[key] = due + self._interval
        return True

    def _sweep(self, now: float, *, force: bool = False) -> None:
        """Forget keys whose bucket has refilled completely: they hold no state worth keeping."""
        self._last_sweep = now
        rested = [key for key, due in self._next.items() if due <= now]
        for key in rested:
            del self._next[key]
        if force and len(self._next) >= self.max_keys:
            # Every key busy: forget the half that rests soonest rather than grow past the cap.
            by_due = sorted(self._next, key=self._next.__getitem__)
            for key in by_due[: len(by_due) // 2]:
                del self._next[key]

    def __len__(self) -> int:
        return len(self._next)
