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
        """`GET /exchange/status`: trading is paused (not the whole exchange) in a maintenance window.

        The top-level fields describe exchange index 0; `exchange_index_statuses` lists every index (this
        simulator runs one, "Default"). `exchange_estimated_resume_time` is the window's end, else null.
        """
        window = self.world.maintenance.window_at(self.world.now_ms())
        trading = window is None
        resume = payloads.rfc3339(window[1] // 1000) if window else None
        return JSONResponse(
            {
                "exchange_active": True,
                "trading_active": trading,
                "intra_exchange_transfers_active": True,
                "exchange_estimated_resume_time": resume,
                "exchange_index_statuses": [
                    {
                        "exchange_index": 0,
                        "description": "Default",
                        "exchange_active": True,
                        "trading_active": trading,
                        "intra_exchange_transfers_active": True,
                    }
                ],
            }
        )

    async def exchange_schedule(self, request: Request) -> Response:
        """`GET /exchange/schedule`: weekly standard hours (ET) and the maintenance windows ahead.

        The standard hours hold for a year either side of now; the windows listed are those overlapping
        the next 14 days (the one in effect included). How far ahead Kalshi lists windows is not documented.
        """
        now_s = self.world.now_ms() // 1000
        weekly = {
            "start_time": payloads.rfc3339(now_s // 86400 * 86400 - 365 * 86400),
            "end_time": payloads.rfc3339(now_s // 86400 * 86400 + 365 * 86400),
            **self.world.maintenance.standard_hours(),
        }
        windows = self.world.maintenance.windows(now_s * 1000, (now_s + 14 * 86400) * 1000)
        return JSONResponse(
            {
                "schedule": {
                    "standard_hours": [weekly],
                    "maintenance_windows": [
                        {
                            "start_datetime": payloads.rfc3339(start // 1000),
                            "end_datetime": payloads.rfc3339(end // 1000),
                        }
                        for start, end in windows
                    ],
                }
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
