"""The simulated exchange as one Starlette app: Kalshi's gateway (middleware) in front of its REST routes.

`build_app(config)` returns a `SimulatorApp`; `kalshi_pipeline.simulator.server` serves it with uvicorn,
its WebSocket endpoint (`app.ws_hub`) on the same port. Its typed attributes carry the `World` (`app.world`), the key
ring (`app.keys`), the gateway counters (`app.stats`), the WebSocket hub (`app.ws_hub`) and the tracked HTTP
connections (`app.connections`); `app.state` mirrors the first four (`world`, `keys`, `stats`, `ws_hub`)
and the config (`config`) for code that reads a running simulator's state.

Every request under `/trade-api/` passes the middleware of `kalshi_pipeline.simulator.gateway`, in order:
request counting, fault injection, the trailing-slash 301, signature verification and the token bucket.
`GET /_sim/health` and `GET /_sim/stats` (outside `/trade-api`) bypass all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kalshi_pipeline.simulator.auth import KeyRing
from kalshi_pipeline.simulator.config import SimulatorConfig
from kalshi_pipeline.simulator.connections import Connections
from kalshi_pipeline.simulator.errors import ApiError, on_api_error, on_http_error
from kalshi_pipeline.simulator.gateway.faults import FaultInjection, parse_faults
from kalshi_pipeline.simulator.gateway.ratelimit import RateLimit, TokenBuckets
from kalshi_pipeline.simulator.gateway.redirects import TrailingSlashRedirect
from kalshi_pipeline.simulator.gateway.signatures import SignatureCheck
from kalshi_pipeline.simulator.gateway.stats import CountRequests, GatewayStats
from kalshi_pipeline.simulator.paths import REST_PREFIX
from kalshi_pipeline.simulator.rest.candles import CandleEndpoints
from kalshi_pipeline.simulator.rest.catalog import Catalog
from kalshi_pipeline.simulator.rest.events import EventEndpoints
from kalshi_pipeline.simulator.rest.exchange import ExchangeEndpoints
from kalshi_pipeline.simulator.rest.live_data import LiveDataEndpoints
from kalshi_pipeline.simulator.rest.markets import MarketEndpoints
from kalshi_pipeline.simulator.rest.orderbooks import OrderbookEndpoints
from kalshi_pipeline.simulator.rest.trades import TradeEndpoints
from kalshi_pipeline.simulator.world import World
from kalshi_pipeline.simulator.ws.hub import WsHub

Endpoint = Callable[[Request], Awaitable[Response]]


class SimulatorApp(Starlette):
    """One simulated exchange: its world, its gateway and REST routes, and its WebSocket hub."""

    def __init__(self, config: SimulatorConfig) -> None:
        """Build the world of `config` and everything serving it."""
        self.config = config
        self.world = World(config)
        self.keys = KeyRing(config.auth_keys)
        self.stats = GatewayStats()
        self.connections = Connections()
        self.ws_hub = WsHub(config, self.world, self.keys)
        buckets = TokenBuckets(config.rate_limit)
        gateway = [
            Middleware(CountRequests, stats=self.stats),
            Middleware(
                FaultInjection,
                plan=parse_faults(config.faults, config.seed),
                stats=self.stats,
                connections=self.connections,
            ),
            Middleware(TrailingSlashRedirect),
            Middleware(SignatureCheck, keys=self.keys, require_auth=config.require_auth),
            Middleware(RateLimit, buckets=buckets, stats=self.stats),
        ]
        exchange = ExchangeEndpoints(self.world, self.stats, buckets, config.rate_limit)
        super().__init__(
            routes=_rest_routes(Catalog(self.world), exchange),
            middleware=gateway,
            exception_handlers={ApiError: on_api_error, HTTPException: on_http_error},
            lifespan=_lifespan,
        )
        self.router.redirect_slashes = False
        self.state.world = self.world
        self.state.keys = self.keys
        self.state.config = config
        self.state.stats = self.stats
        self.state.ws_hub = self.ws_hub


@contextlib.asynccontextmanager
async def _lifespan(app: SimulatorApp) -> AsyncIterator[None]:
    """Close the open WebSocket connections when the server stops (uvicorn does not know them)."""
    yield
    app.ws_hub.shutdown()


def build_app(config: SimulatorConfig) -> SimulatorApp:
    """Build the exchange app for `config`: the gateway, the REST routes and the WebSocket hub."""
    return SimulatorApp(config)


def _rest_routes(catalog: Catalog, exchange: ExchangeEndpoints) -> list[BaseRoute]:
    """Every REST route, in matching order (fixed paths before `{ticker}` ones)."""
    markets = MarketEndpoints(catalog)
    events = EventEndpoints(catalog)
    candles = CandleEndpoints(catalog)
    trades = TradeEndpoints(catalog)
    books = OrderbookEndpoints(catalog)
    live = LiveDataEndpoints(catalog)
    table: list[tuple[str, Endpoint]] = [
        ("/exchange/status", exchange.exchange_status),
        ("/exchange/schedule", exchange.exchange_schedule),
        ("/historical/cutoff", exchange.historical_cutoff),
        ("/historical/markets", markets.historical_markets),
        ("/historical/markets/{ticker}", markets.historical_market),
        ("/historical/markets/{ticker}/candlesticks", candles.historical_candles),
        ("/historical/trades", trades.historical_trades),
        ("/series", events.series_list),
        ("/series/{series_ticker}", events.series_one),
        ("/series/{series_ticker}/markets/{ticker}/candlesticks", candles.market_candles),
        ("/series/{series_ticker}/events/{event_ticker}/candlesticks", candles.event_candles),
        ("/events", events.events),
        ("/events/{event_ticker}", events.event_one),
        ("/milestones", events.milestones),
        ("/milestones/{milestone_id}", events.milestone_one),
        ("/markets", markets.markets),
        ("/markets/trades", trades.trades),
        ("/markets/candlesticks", candles.batch_candles),
        ("/markets/orderbooks", books.orderbooks),
        ("/markets/{ticker}", markets.market_one),
        ("/markets/{ticker}/orderbook", books.orderbook),
        ("/live_data/batch", live.batch),
        ("/live_data/milestone/{milestone_id}", live.milestone),
        ("/live_data/milestone/{milestone_id}/game_stats", live.game_stats),
    ]
    return [
        Route("/_sim/health", exchange.health),
        Route("/_sim/stats", exchange.gateway_stats),
        *(Route(REST_PREFIX + path, handler) for path, handler in table),
    ]
