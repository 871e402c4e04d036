"""Counts of the requests the gateway saw, and the middleware counting every request that reaches it."""

from __future__ import annotations

import threading
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from kalshi_pipeline.simulator.paths import through_gateway


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


class CountRequests:
    """Outermost gateway middleware: counts every request under `/trade-api/` as `requests`."""

    def __init__(self, app: ASGIApp, stats: GatewayStats) -> None:
        """Wrap `app`, counting into `stats`."""
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if through_gateway(scope):
            self.stats.record("requests")
        await self.app(scope, receive, send)
