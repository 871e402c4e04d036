"""The exchange-wide endpoints, and the simulator's own read-only `/_sim/health` and `/_sim/stats`.

`/_sim/*` lies outside `/trade-api`, so it is never faulted, signed, rate limited or counted. `GET
/_sim/stats[?since=UNIX_S]` reports the gateway's request counts (see `GatewayStats`) and the rate-limit
tier, for measuring clients' request rates.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kalshi_pipeline.simulator import payloads
from kalshi_pipeline.simulator.errors import bad_request
from kalshi_pipeline.simulator.gateway.ratelimit import REQUEST_COST, TokenBuckets
from kalshi_pipeline.simulator.gateway.stats import GatewayStats
from kalshi_pipeline.simulator.world import World


class ExchangeEndpoints:
    """Exchange status, the historical cutoff, and the simulator's health and gateway counters."""

    def __init__(self, world: World, stats: GatewayStats, buckets: TokenBuckets, tier: str) -> None:
        """Report on `world`, the gateway's `stats` and its token `buckets` of rate-limit `tier`."""
        self.world = world
        self.stats = stats
        self.buckets = buckets
        self.tier = tier

    async def health(self, request: Request) -> Response:
        """Readiness probe of the simulator itself (never faulted, never rate limited)."""
        return JSONResponse(
            {"status": "ok", "now_ms": self.world.now_ms(), "games": len(self.world.games)}
        )

    async def gateway_stats(self, request: Request) -> Response:
        """`GET /_sim/stats[?since=UNIX_S]`: the gateway's request counters (never faulted or limited)."""
        raw = request.query_params.get("since")
        try:
            since = int(raw) if raw else None
        except ValueError:
            raise bad_request(f"since must be Unix seconds, got {raw!r}") from None
        buckets = self.buckets
        return JSONResponse(
            {
                "rate_limit": {
                    "tier": self.tier,
                    "requests_per_s": buckets.rate / REQUEST_COST if buckets.enabled else None,
                    "burst_requests": buckets.capacity / REQUEST_COST if buckets.enabled else None,
                },
                **self.stats.snapshot(since),
            }
        )

    async def exchange_status(self, request: Request) -> Response:
        """`GET /exchange/status`."""
        return JSONResponse(
            {
                "exchange_active": True,
                "trading_active": True,
                "exchange_estimated_resume_time": None,
            }
        )

    async def historical_cutoff(self, request: Request) -> Response:
        """`GET /historical/cutoff`: markets settled and trades created before it are historical."""
        cutoff = payloads.rfc3339(self.world.cutoff_s(self.world.now_ms() // 1000))
        return JSONResponse(
            {
                "market_settled_ts": cutoff,
                "trades_created_ts": cutoff,
                "orders_updated_ts": cutoff,
                "market_positions_last_updated_ts": cutoff,
            }
        )
