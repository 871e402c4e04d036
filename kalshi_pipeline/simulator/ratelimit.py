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


class GatewayStats:
    """Counts of the requests the gateway saw, in total and per wall-clock second (read-only view).

    `requests` counts every request under `/trade-api/`; `admitted` those the token bucket let through
    (what Kalshi's limit meters); `rate_limited` the 429s the bucket answered; `fault_429` the 429s that
    fault injection answered. Per-second bins are kept for the last `keep_seconds` seconds only.
    """

    KINDS = ("requests", "admitted", "rate_limited", "fault_429")

    def __init__(self, keep_seconds: int = 86_400) -> None:
        self.keep_seconds = keep_seconds
        self.totals: dict[str, int] = dict.fromkeys(self.KINDS, 0)
        self._bins: dict[int, dict[str, int]] = {}
        self._lock = threading.Lock()

    def record(self, kind: str, now: float | None = None) -> None:
        """Count one request of `kind` (one of `KINDS`) in the current wall-clock second."""
        second = int(time.time() if now is None else now)
        with self._lock:
            self.totals[kind] += 1
            counts = self._bins.get(second)
            if counts is None:
                counts = self._bins[second] = dict.fromkeys(self.KINDS, 0)
                while len(self._bins) > self.keep_seconds:
                    del self._bins[next(iter(self._bins))]
            counts[kind] += 1

    def snapshot(self, since: int | None = None) -> dict[str, object]:
        """Return the totals and the per-second bins (Unix second -> counts) from `since` on."""
        with self._lock:
            bins = [
                {"second": second, **counts}
                for second, counts in sorted(self._bins.items())
                if since is None or second >= since
            ]
            return {"totals": dict(self.totals), "per_second": bins}
