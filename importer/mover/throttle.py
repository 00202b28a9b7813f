"""A token bucket: a smooth bandwidth limit instead of sleeping whole seconds."""

from __future__ import annotations

import time


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None, clock=time.monotonic):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate / 4)
        self.clock = clock
        self.tokens = self.burst
        self.updated = clock()

    def delay_for(self, size: int) -> float:
        """Take ``size`` tokens; return how long to wait before the bytes may move on."""
        self._refill()
        self.tokens -= size
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
