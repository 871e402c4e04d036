"""Kalshi's read token bucket: continuous refill, 10 tokens per request, one bucket per caller."""

from __future__ import annotations

import threading
import time

from kalshi_pipeline.simulator.config import RATE_LIMIT_TIERS

REQUEST_COST = 10


class TokenBuckets:
    """One token bucket per caller (API key id, or client address for unsigned requests)."""

    def __init__(self, tier: str) -> None:
        self.enabled = tier != "off"
        self.rate, self.capacity = RATE_LIMIT_TIERS.get(tier, (0, 0))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, caller: str, cost: int = REQUEST_COST) -> bool:
        """Take `cost` tokens from the caller's bucket; False (and nothing taken) if it holds too few."""
        if not self.enabled:
            return True
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(caller, (float(self.capacity), now))
            tokens = min(float(self.capacity), tokens + (now - last) * self.rate)
            if tokens < cost:
                self._buckets[caller] = (tokens, now)
                return False
            self._buckets[caller] = (tokens - cost, now)
            return True
