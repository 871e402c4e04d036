"""Kalshi's read token bucket (continuous refill, 10 tokens per request, one bucket per caller) as middleware."""

from __future__ import annotations

import threading
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from kalshi_pipeline.simulator.config import RATE_LIMIT_TIERS
from kalshi_pipeline.simulator.errors import too_many_requests
from kalshi_pipeline.simulator.gateway.signatures import KEY_ID_SCOPE
from kalshi_pipeline.simulator.gateway.stats import GatewayStats
from kalshi_pipeline.simulator.paths import through_gateway

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


class RateLimit:
    """Innermost gateway middleware: a 429 when the caller's bucket is empty, else the request is admitted.

    The caller is the API key id `SignatureCheck` put in the scope, or the client address when unsigned.
    """

    def __init__(self, app: ASGIApp, buckets: TokenBuckets, stats: GatewayStats) -> None:
        """Wrap `app`, metering with `buckets` and counting `rate_limited` / `admitted` into `stats`."""
        self.app = app
        self.buckets = buckets
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not through_gateway(scope):
            await self.app(scope, receive, send)
            return
        key_id = scope.get(KEY_ID_SCOPE)
        client = scope.get("client") or ("unknown", 0)
        caller = f"key:{key_id}" if key_id else f"ip:{client[0]}"
        if not self.buckets.allow(caller):
            self.stats.record("rate_limited")
            await too_many_requests()(scope, receive, send)
            return
        self.stats.record("admitted")
        await self.app(scope, receive, send)
