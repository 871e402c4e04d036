"""The REST API of the simulated exchange (Starlette), served under `/trade-api/v2`.

`build_app(config)` returns a `SimulatorApp` (a Starlette app) serving these routes and the WebSocket
route of `kalshi_pipeline.simulator.ws` on the same port. Its state carries the `World` (`app.state.world`),
the `KeyRing` (`app.state.keys`), the config (`app.state.config`) and the WebSocket hub
(`app.state.ws_hub`).

Every request under `/trade-api/` passes, in order: fault injection, the trailing-slash 301, signature
verification and the token bucket. `GET /_sim/health` (outside `/trade-api`) bypasses all of them, as does
`GET /_sim/stats[?since=UNIX_S]`: read-only counts of the gateway's requests, admissions and 429s, in total
and per wall-clock second (see `GatewayStats`), plus the rate-limit tier, for measuring clients' rates.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from kalshi_pipeline.simulator import payloads
from kalshi_pipeline.simulator.auth import AuthError, KeyRing
from kalshi_pipeline.simulator.config import SimulatorConfig
from kalshi_pipeline.simulator.faults import FaultPlan, parse_faults
from kalshi_pipeline.simulator.market_model.candles import (
    EMPTY_CANDLES,
    CandleArrays,
    carry_candle,
    concat,
)
from kalshi_pipeline.simulator.market_model.candles import candles as path_candles
from kalshi_pipeline.simulator.ratelimit import REQUEST_COST, GatewayStats, TokenBuckets
from kalshi_pipeline.simulator.world import Game, World
from kalshi_pipeline.simulator.ws import websocket_routes

PREFIX = "/trade-api/v2"
PERIODS = (1, 60, 1440)
MAX_CANDLES = 5000
MAX_BATCH_CANDLES = 10_000
MAX_BATCH_TICKERS = 100

log = logging.getLogger("kalshi_pipeline.simulator")

STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "unopened": ("initialized",),
    "open": ("active",),
    "paused": ("inactive",),
    "closed": ("closed", "determined", "disputed", "amended"),
    "settled": ("finalized",),
}


class ApiError(Exception):
    """An error answered as Kalshi does: `{"error": {"code", "message"[, "details"]}}`."""

    def __init__(self, status: int, code: str, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    def response(self) -> JSONResponse:
        """The JSON response for this error."""
        return error_response(self.status, self.code, self.message, self.details)


def error_response(
    status: int, code: str, message: str, details: str | None = None
) -> JSONResponse:
    """Kalshi's error body for every error status except 429."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status)


def bad_request(message: str) -> ApiError:
    """A 400 with code `bad_request`."""
    return ApiError(400, "bad_request", message)


def not_found(message: str) -> ApiError:
    """A 404 with code `not_found`."""
    return ApiError(404, "not_found", message)


# -- query parameters ----------------------------------------------------------------------------------
def q_int(
    request: Request,
    name: str,
    *,
    default: int | None = None,
    lo: int | None = None,
    hi: int | None = None,
    required: bool = False,
) -> int | None:
    """An integer query parameter with bounds; 400 when missing (if required), malformed or out of range."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise bad_request(f"{name} is required")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {raw!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise bad_request(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def q_bool(request: Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter (`true`/`false`)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    # The spellings Go's strconv.ParseBool (Kalshi's gateway) accepts.
    if lowered in ("true", "t", "1"):
        return True
    if lowered in ("false", "f", "0"):
        return False
    raise bad_request(f"{name} must be true or false, got {raw!r}")


def q_str(request: Request, name: str) -> str | None:
    """A string query parameter (None when absent or empty)."""
    raw = request.query_params.get(name)
    return raw if raw else None


def q_csv(request: Request, name: str) -> list[str] | None:
    """A comma-separated list parameter."""
    raw = q_str(request, name)
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def encode_cursor(*parts: object) -> str:
    """An opaque cursor for the position after the item with these sort-key parts."""
    return base64.urlsafe_b64encode(json.dumps(parts, separators=(",", ":")).encode()).decode()


def decode_cursor(request: Request, arity: int) -> list[Any] | None:
    """The sort-key parts of a cursor; 400 on anything we did not issue."""
    raw = q_str(request, "cursor")
    if raw is None:
        return None
    try:
        parts = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad_request("invalid cursor") from None
    if not isinstance(parts, list) or len(parts) != arity:
        raise bad_request("invalid cursor")
    return parts


def page(
    items: list[Any], key: Callable[[Any], tuple], after: list[Any] | None, limit: int
) -> tuple[list[Any], str]:
    """Sort by key, skip through the cursor position, cut a page; the cursor is "" on the last page."""
    items = sorted(items, key=key)
    if after is not None:
        bound = tuple(after)
        items = [item for item in items if key(item) > bound]
    chosen = items[:limit]
    cursor = encode_cursor(*key(chosen[-1])) if len(items) > limit else ""
    return chosen, cursor


def _parse_rfc3339(name: str, raw: str) -> int:
    try:
        return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise bad_request(f"{name} must be an RFC3339 timestamp, got {raw!r}") from None


# -- the application --------------------------------------------------------------------------------
class SimulatorApp(Starlette):
    """Starlette with Kalshi's gateway behaviour in front of the routes (faults, 301, auth, rate limit)."""

    world: World
    keys: KeyRing
    faults: FaultPlan
    buckets: TokenBuckets
    stats: GatewayStats
    sim_config: SimulatorConfig

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/trade-api/"):
            await super().__call__(scope, receive, send)
            return
        self.stats.record("requests")
        if self.faults.active:
            decision = self.faults.decide()
            if decision.delay_ms:
                await asyncio.sleep(decision.delay_ms / 1000)
            if decision.outcome == "reset":
                await _abort_connection(send)
                return
            if decision.outcome != "ok":
                if decision.outcome == "429":
                    self.stats.record("fault_429")
                await _fault_response(decision.outcome)(scope, receive, send)
                return
        path: str = scope["path"]
        if path.endswith("/") and len(path) > len(PREFIX) + 1:
            query = scope.get("query_string", b"").decode()
            target = path.rstrip("/") + (f"?{query}" if query else "")
            await RedirectResponse(target, status_code=301)(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        try:
            key_id = self.keys.verify(headers, scope["method"], path)
        except AuthError as exc:
            await error_response(401, "authentication_error", "authentication_error", exc.details)(
                scope, receive, send
            )
            return
        if key_id is None and self.sim_config.require_auth:
            await error_response(
                401, "authentication_error", "authentication_error", "MISSING_API_KEY_HEADERS"
            )(scope, receive, send)
            return
        client = scope.get("client") or ("unknown", 0)
        caller = f"key:{key_id}" if key_id else f"ip:{client[0]}"
        if not self.buckets.allow(caller):
            self.stats.record("rate_limited")
            await JSONResponse({"error": "too many requests"}, status_code=429)(
                scope, receive, send
            )
            return
        self.stats.record("admitted")
        await super().__call__(scope, receive, send)


def _fault_response(outcome: str) -> Response:
    if outcome == "429":
        return JSONResponse({"error": "too many requests"}, status_code=429)
    codes = {
        "500": "internal_server_error",
        "502": "bad_gateway",
        "503": "service_unavailable",
        "504": "gateway_timeout",
    }
    code = codes[outcome]
    return error_response(int(outcome), code, code.replace("_", " "))


async def _abort_connection(send: Send) -> None:
    """Drop the TCP connection without answering (uvicorn's `send` is bound to the request cycle)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("simulated connection reset")
    cycle.disconnected = True  # keeps uvicorn from writing a 500 onto the aborted transport
    transport.abort()


def build_app(config: SimulatorConfig) -> SimulatorApp:
    """Build the exchange app for `config`: the REST routes and the WebSocket route."""
    world = World(config)
    api = RestApi(world)
    routes: list[BaseRoute] = [
        Route("/_sim/health", api.health),
        Route("/_sim/stats", api.stats),
        Route(f"{PREFIX}/exchange/status", api.exchange_status),
        Route(f"{PREFIX}/historical/cutoff", api.historical_cutoff),
        Route(f"{PREFIX}/historical/markets", api.historical_markets),
        Route(f"{PREFIX}/historical/markets/{{ticker}}", api.historical_market),
        Route(f"{PREFIX}/historical/markets/{{ticker}}/candlesticks", api.historical_candles),
        Route(f"{PREFIX}/historical/trades", api.historical_trades),
        Route(f"{PREFIX}/series", api.series_list),
        Route(f"{PREFIX}/series/{{series_ticker}}", api.series_one),
        Route(
            f"{PREFIX}/series/{{series_ticker}}/markets/{{ticker}}/candlesticks", api.market_candles
        ),
        Route(
            f"{PREFIX}/series/{{series_ticker}}/events/{{event_ticker}}/candlesticks",
            api.event_candles,
        ),
        Route(f"{PREFIX}/events", api.events),
        Route(f"{PREFIX}/events/{{event_ticker}}", api.event_one),
        Route(f"{PREFIX}/milestones", api.milestones),
        Route(f"{PREFIX}/milestones/{{milestone_id}}", api.milestone_one),
        Route(f"{PREFIX}/markets", api.markets),
        Route(f"{PREFIX}/markets/trades", api.trades),
        Route(f"{PREFIX}/markets/candlesticks", api.batch_candles),
        Route(f"{PREFIX}/markets/orderbooks", api.orderbooks),
        Route(f"{PREFIX}/markets/{{ticker}}", api.market_one),
        Route(f"{PREFIX}/markets/{{ticker}}/orderbook", api.orderbook),
    ]

    async def on_api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return error_response(404, "not_found", "not found")
        if exc.status_code == 405:
            return error_response(405, "method_not_allowed", "method not allowed")
        return error_response(exc.status_code, "bad_request", str(exc.detail))

    app = SimulatorApp(
        routes=routes,
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_error},
    )
    app.router.redirect_slashes = False
    app.world = world
    app.keys = KeyRing(config.auth_keys)
    app.faults = parse_faults(config.faults, config.seed)
    app.buckets = TokenBuckets(config.rate_limit)
    app.stats = GatewayStats()
    app.sim_config = config
    app.state.world = world
    app.state.keys = app.keys
    app.state.config = config
    app.state.stats = app.stats
    app.router.routes.extend(websocket_routes(app))
    return app


class RestApi:
    """The endpoint handlers, reading from one `World`."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._final_markets: dict[str, dict[str, Any]] = {}

    # -- helpers ------------------------------------------------------------------------------------
    def _market_payload(self, game: Game, ticker: str, now_ms: int) -> dict[str, Any]:
        # A finalized market never changes again, so its payload is computed once.
        cached = self._final_markets.get(ticker)
        if cached is not None:
            return cached
        payload = payloads.market(self.world, game, ticker, now_ms)
        if payload["status"] == "finalized":
            self._final_markets[ticker] = payload
        return payload

    def _markets_page(
        self,
        games: Iterable[Game],
        ticker_set: set[str] | None,
        after: list[Any] | None,
        limit: int,
        now_ms: int,
    ) -> Response:
        """One page of `{"markets", "cursor"}` over these games' markets, newest game first."""
        rows = [
            (game, ticker)
            for game in games
            for ticker in game.market_tickers
            if ticker_set is None or ticker in ticker_set
        ]
        chosen, cursor = page(rows, lambda r: (-r[0].tip_s, r[1]), after, limit)
        return JSONResponse(
            {"markets": [self._market_payload(g, t, now_ms) for g, t in chosen], "cursor": cursor}
        )

    def _live_game(self, ticker: str, now_s: int) -> Game:
        game = self.world.by_market.get(ticker)
        if game is None or game.created_s > now_s or self.world.is_archived(game, now_s):
            raise not_found(f"market {ticker} not found")
        return game

    def _archived_game(self, ticker: str, now_s: int) -> Game:
        game = self.world.by_market.get(ticker)
        if game is None or not self.world.is_archived(game, now_s):
            raise not_found(f"historical market {ticker} not found")
        return game

    def _event_game(self, event_ticker: str, now_s: int) -> Game:
        game = self.world.by_event.get(event_ticker)
        if game is None or game.created_s > now_s:
            raise not_found(f"event {event_ticker} not found")
        return game

    def _visible_games(self, now_s: int) -> list[Game]:
        return [g for g in self.world.games if g.created_s <= now_s]

    # -- misc ---------------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        """Readiness probe of the simulator itself (never faulted, never rate limited)."""
        return JSONResponse(
            {"status": "ok", "now_ms": self.world.now_ms(), "games": len(self.world.games)}
        )

    async def stats(self, request: Request) -> Response:
        """`GET /_sim/stats[?since=UNIX_S]`: the gateway's request counters (never faulted or limited)."""
        raw = request.query_params.get("since")
        try:
            since = int(raw) if raw else None
        except ValueError:
            raise bad_request(f"since must be Unix seconds, got {raw!r}") from None
        app = request.app
        buckets: TokenBuckets = app.buckets
        return JSONResponse(
            {
                "rate_limit": {
                    "tier": app.sim_config.rate_limit,
                    "requests_per_s": buckets.rate / REQUEST_COST if buckets.enabled else None,
                    "burst_requests": buckets.capacity / REQUEST_COST if buckets.enabled else None,
                },
                **app.stats.snapshot(since),
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

    # -- series -------------------------------------------------------------------------------------
    def _series_volume(self, series_ticker: str, now_ms: int) -> int:
        total = 0
        for game in self.world.games:
            if game.series.series_ticker != series_ticker or game.open_s * 1000 > now_ms:
                continue
            for ticker in game.market_tickers:
                total += self.world.market_state(ticker, now_ms).volume
        return total

    async def series_list(self, request: Request) -> Response:
        """`GET /series`: `category`, `tags` (comma-separated), `include_volume`, `min_updated_ts`.

        `product_metadata` is only included with `include_product_metadata=true`.
        """
        category = q_str(request, "category")
        tags = q_csv(request, "tags")
        include_volume = q_bool(request, "include_volume")
        include_metadata = q_bool(request, "include_product_metadata")
        min_updated = q_int(request, "min_updated_ts", lo=0)
        now_ms = self.world.now_ms()
        out = []
        for spec in self.world.series.values():
            if category and category != spec.category:
                continue
            if tags and not set(tags) & set(spec.tags):
                continue
            if min_updated is not None and min_updated >= payloads.SERIES_UPDATED_S:
                continue
            volume = self._series_volume(spec.series_ticker, now_ms) if include_volume else None
            out.append(payloads.series(spec, volume, product_metadata=include_metadata))
        return JSONResponse({"series": out})

    async def series_one(self, request: Request) -> Response:
        """`GET /series/{series_ticker}`."""
        ticker = request.path_params["series_ticker"]
        spec = self.world.series.get(ticker)
        if spec is None:
            raise not_found(f"series {ticker} not found")
        volume = None
        if q_bool(request, "include_volume"):
            volume = self._series_volume(ticker, self.world.now_ms())
        return JSONResponse({"series": payloads.series(spec, volume)})

    # -- markets ------------------------------------------------------------------------------------
    async def markets(self, request: Request) -> Response:
        """`GET /markets` with Kalshi's filters, their compatibility rules and cursor pagination."""
        limit = q_int(request, "limit", default=100, lo=0, hi=1000) or 100
        after = decode_cursor(request, 2)
        now_ms = self.world.now_ms()
        now_s = now_ms // 1000
        status = q_str(request, "status")
        if status is not None:
            if "," in status:
                raise bad_request("only one status may be given per request")
            if status not in STATUS_FILTERS:
                raise bad_request(
                    f"status must be one of {', '.join(STATUS_FILTERS)}, got {status!r}"
                )
        mve = q_str(request, "mve_filter")
        if mve is not None and mve not in ("only", "exclude"):
            raise bad_request(f"mve_filter must be only or exclude, got {mve!r}")
        families = {
            "created": (
                q_int(request, "min_created_ts", lo=0),
                q_int(request, "max_created_ts", lo=0),
            ),
            "close": (q_int(request, "min_close_ts", lo=0), q_int(request, "max_close_ts", lo=0)),
            "settled": (
                q_int(request, "min_settled_ts", lo=0),
                q_int(request, "max_settled_ts", lo=0),
            ),
        }
        used = [name for name, bounds in families.items() if bounds != (None, None)]
        min_updated = q_int(request, "min_updated_ts", lo=0)
        if len(used) > 1:
            raise bad_request(f"timestamp filters {' and '.join(used)} cannot be combined")
        compatible = {
            "created": (None, "unopened", "open"),
            "close": (None, "closed"),
            "settled": (None, "settled"),
        }
        if used and status not in compatible[used[0]]:
            raise bad_request(
                f"{used[0]} timestamp filters are not compatible with status={status}"
            )
        event_ticker = q_str(request, "event_ticker")
        if event_ticker and "," in event_ticker:
            raise bad_request("event_ticker accepts a single event ticker")
        series_ticker = q_str(request, "series_ticker")
        tickers = q_csv(request, "tickers")
        if min_updated is not None:
            others = used or status or event_ticker or tickers
            if others or (mve is not None and mve != "exclude"):
                raise bad_request(
                    "min_updated_ts cannot be combined with other filters except mve_filter=exclude"
                )
            if series_ticker and mve != "exclude":
                raise bad_request("min_updated_ts with series_ticker requires mve_filter=exclude")

        wanted_status = STATUS_FILTERS[status] if status else None
        ticker_set = set(tickers) if tickers is not None else None
        games: list[Game] = []
        if mve != "only":
            for game in self._visible_games(now_s):
                if event_ticker and game.event_ticker != event_ticker:
                    continue
                if series_ticker and game.series.series_ticker != series_ticker:
                    continue
                if self.world.is_archived(game, now_s):
                    continue
                obj_status = game.status_at(now_s)
                if wanted_status and obj_status not in wanted_status:
                    continue
                if used:
                    lo, hi = families[used[0]]
                    if used[0] == "created":
                        value = game.created_s
                    elif used[0] == "close":
                        value = game.close_at(now_s)
                    else:
                        if obj_status != "finalized":
                            continue
                        value = game.settled_s
                    if (lo is not None and value < lo) or (hi is not None and value > hi):
                        continue
                if min_updated is not None and payloads.market_updated_s(game, now_s) < min_updated:
                    continue
                games.append(game)
        return self._markets_page(games, ticker_set, after, limit, now_ms)

    def _one_market(self, request: Request, lookup: Callable[[str, int], Game]) -> Response:
        """`{"market": ...}` for the path's ticker, found by `_live_game` or `_archived_game`."""
        ticker = request.path_params["ticker"]
        now_ms = self.world.now_ms()
        game = lookup(ticker, now_ms // 1000)
        return JSONResponse({"market": self._market_payload(game, ticker, now_ms)})

    async def market_one(self, request: Request) -> Response:
        """`GET /markets/{ticker}` (404 for unknown and archived markets)."""
        return self._one_market(request, self._live_game)

    # -- events -------------------------------------------------------------------------------------
    def _nested_markets(self, game: Game, now_ms: int) -> list[dict[str, Any]]:
        if self.world.is_archived(game, now_ms // 1000):
            return []
        return [self._market_payload(game, t, now_ms) for t in game.market_tickers]

    async def events(self, request: Request) -> Response:
        """`GET /events` (limit 1-200, default 200)."""
        limit = q_int(request, "limit", default=200, lo=1, hi=200) or 200
        after = decode_cursor(request, 2)
        nested = q_bool(request, "with_nested_markets")
        with_milestones = q_bool(request, "with_milestones")
        status = q_str(request, "status")
        if status is not None and status not in ("unopened", "open", "closed", "settled"):
            raise bad_request(
                f"status must be one of unopened, open, closed, settled, got {status!r}"
            )
        series_ticker = q_str(request, "series_ticker")
        min_close = q_int(request, "min_close_ts", lo=0)
        min_updated = q_int(request, "min_updated_ts", lo=0)
        tickers = q_csv(request, "tickers")
        ticker_set = set(tickers) if tickers is not None else None
        now_ms = self.world.now_ms()
        now_s = now_ms // 1000
        rows = []
        for game in self._visible_games(now_s):
            if series_ticker and game.series.series_ticker != series_ticker:
                continue
            if ticker_set is not None and game.event_ticker not in ticker_set:
                continue
            if status and game.status_at(now_s) not in STATUS_FILTERS[status]:
                continue
            if min_close is not None and game.close_at(now_s) < min_close:
                continue
            if min_updated is not None and payloads.event_updated_s(game, now_s) < min_updated:
                continue
            rows.append(game)
        chosen, cursor = page(rows, lambda g: (-g.tip_s, g.event_ticker), after, limit)
        events = [
            payloads.event(g, now_s, self._nested_markets(g, now_ms) if nested else None)
            for g in chosen
        ]
        body: dict[str, Any] = {"events": events, "cursor": cursor}
        if with_milestones:
            body["milestones"] = [payloads.milestone(g, now_s) for g in chosen]
        return JSONResponse(body)

    async def event_one(self, request: Request) -> Response:
        """`GET /events/{event_ticker}`: the event plus the (deprecated) top-level `markets`."""
        ticker = request.path_params["event_ticker"]
        now_ms = self.world.now_ms()
        game = self._event_game(ticker, now_ms // 1000)
        markets = self._nested_markets(game, now_ms)
        nested = q_bool(request, "with_nested_markets")
        return JSONResponse(
            {
                "event": payloads.event(game, now_ms // 1000, markets if nested else None),
                "markets": markets,
            }
        )

    # -- milestones ---------------------------------------------------------------------------------
    async def milestones(self, request: Request) -> Response:
        """`GET /milestones` (limit 1-500 required) with its documented filters."""
        limit = q_int(request, "limit", lo=1, hi=500, required=True)
        assert limit is not None
        after = decode_cursor(request, 2)
        raw_start = q_str(request, "minimum_start_date")
        min_start = _parse_rfc3339("minimum_start_date", raw_start) if raw_start else None
        category = q_str(request, "category")
        competition = q_str(request, "competition")
        kind = q_str(request, "type")
        related = q_str(request, "related_event_ticker")
        source_id = q_str(request, "source_id")
        min_updated = q_int(request, "min_updated_ts", lo=0)
        now_s = self.world.now_ms() // 1000
        rows = []
        for game in self._visible_games(now_s):
            spec = game.series
            if min_start is not None and game.tip_s < min_start:
                continue
            if category and category.lower() != spec.category.lower():
                continue
            if competition and competition != spec.competition:
                continue
            if kind and kind != spec.milestone_type:
                continue
            if related and related != game.event_ticker:
                continue
            if source_id:
                continue  # simulated milestones carry no source id
            if min_updated is not None and payloads.milestone_updated_s(game, now_s) < min_updated:
                continue
            rows.append(game)
        chosen_games, cursor = page(rows, lambda g: (g.tip_s, g.milestone_id), after, limit)
        chosen = [payloads.milestone(g, now_s) for g in chosen_games]
        return JSONResponse({"milestones": chosen, "cursor": cursor})

    async def milestone_one(self, request: Request) -> Response:
        """`GET /milestones/{id}`."""
        game = self.world.by_milestone.get(request.path_params["milestone_id"])
        now_s = self.world.now_ms() // 1000
        if game is None or game.created_s > now_s:
            raise not_found("milestone not found")
        return JSONResponse({"milestone": payloads.milestone(game, now_s)})

    # -- candlesticks -------------------------------------------------------------------------------
    def _window(self, request: Request, cap: int | None) -> tuple[int, int, int]:
        start = q_int(request, "start_ts", required=True)
        end = q_int(request, "end_ts", required=True)
        period = q_int(request, "period_interval", required=True)
        assert start is not None and end is not None and period is not None
        if period not in PERIODS:
            raise bad_request(f"period_interval must be one of 1, 60, 1440, got {period}")
        if start > end:
            raise bad_request("start_ts must not be after end_ts")
        if cap is not None and _periods_in(start, end, period) > cap:
            raise bad_request(
                f"the requested window holds more than {cap} candles; narrow start_ts/end_ts"
            )
        return start, end, period

    def _candles(
        self, ticker: str, start: int, end: int, period: int, now_ms: int, latest_before: bool
    ) -> CandleArrays:
        game = self.world.by_market[ticker]
        if now_ms < game.open_s * 1000:
            return EMPTY_CANDLES  # nothing happened yet; do not generate the path
        path = self.world.market_path(ticker)
        arrays = path_candles(path, period, start, end, now_ms)
        if latest_before:
            first_end = -(-start // (period * 60)) * period * 60
            has_first = len(arrays) and int(arrays.end_ts[0]) == first_end
            prior = path.last_activity_before((first_end - period * 60) * 1000)
            if not has_first and prior is not None and first_end <= end:
                carry = carry_candle(path, period, first_end)
                arrays = concat(carry, arrays)
        return arrays

    def _market_candles(
        self, request: Request, ticker: str, now_ms: int, *, historical: bool
    ) -> Response:
        """`{"ticker", "candlesticks"}` of one market (the live and historical endpoints' shared body)."""
        start, end, period = self._window(request, MAX_CANDLES)
        latest_before = not historical and q_bool(request, "include_latest_before_start")
        arrays = self._candles(ticker, start, end, period, now_ms, latest_before)
        candles = payloads.candles(arrays, historical=historical)
        return JSONResponse({"ticker": ticker, "candlesticks": candles})

    async def market_candles(self, request: Request) -> Response:
        """`GET /series/{series}/markets/{ticker}/candlesticks` (live markets only)."""
        series_ticker = request.path_params["series_ticker"]
        ticker = request.path_params["ticker"]
        now_ms = self.world.now_ms()
        game = self._live_game(ticker, now_ms // 1000)
        if game.series.series_ticker != series_ticker:
            raise bad_request(f"market {ticker} does not belong to series {series_ticker}")
        return self._market_candles(request, ticker, now_ms, historical=False)

    async def batch_candles(self, request: Request) -> Response:
        """`GET /markets/candlesticks` (<= 100 tickers, <= 10,000 candles in the window overall)."""
        tickers = q_csv(request, "market_tickers")
        if not tickers:
            raise bad_request("market_tickers is required")
        if len(tickers) > MAX_BATCH_TICKERS:
            raise bad_request(f"at most {MAX_BATCH_TICKERS} market_tickers per request")
        start, end, period = self._window(request, None)
        if _periods_in(start, end, period) * len(tickers) > MAX_BATCH_CANDLES:
            raise bad_request(
                f"the request spans more than {MAX_BATCH_CANDLES} candles; use fewer tickers or a narrower window"
            )
        latest_before = q_bool(request, "include_latest_before_start")
        now_ms = self.world.now_ms()
        out = []
        for ticker in dict.fromkeys(tickers):
            try:
                self._live_game(ticker, now_ms // 1000)
            except ApiError:
                continue
            arrays = self._candles(ticker, start, end, period, now_ms, latest_before)
            out.append({"market_ticker": ticker, "candlesticks": payloads.candles(arrays)})
        return JSONResponse({"markets": out})

    async def event_candles(self, request: Request) -> Response:
        """`GET /series/{series}/events/{event}/candlesticks`: 5,000 candles in total, `adjusted_end_ts`."""
        series_ticker = request.path_params["series_ticker"]
        event_ticker = request.path_params["event_ticker"]
        now_ms = self.world.now_ms()
        game = self._event_game(event_ticker, now_ms // 1000)
        if game.series.series_ticker != series_ticker:
            raise bad_request(f"event {event_ticker} does not belong to series {series_ticker}")
        start, end, period = self._window(request, None)
        tickers: list[str] = []
        per_market: list[CandleArrays] = []
        if not self.world.is_archived(game, now_ms // 1000):
            for ticker in game.market_tickers:
                tickers.append(ticker)
                per_market.append(self._candles(ticker, start, end, period, now_ms, False))
        total = sum(len(a) for a in per_market)
        adjusted_end = end
        if total > MAX_CANDLES:
            ends = sorted(int(e) for a in per_market for e in a.end_ts.tolist())
            adjusted_end = ends[MAX_CANDLES] - period * 60
        lists = [
            [c for c in payloads.candles(arrays) if c["end_period_ts"] <= adjusted_end]
            for arrays in per_market
        ]
        return JSONResponse(
            {
                "market_tickers": tickers,
                "market_candlesticks": lists,
                "adjusted_end_ts": adjusted_end,
            }
        )

    async def historical_candles(self, request: Request) -> Response:
        """`GET /historical/markets/{ticker}/candlesticks` (archived markets; un-suffixed field names)."""
        ticker = request.path_params["ticker"]
        now_ms = self.world.now_ms()
        self._archived_game(ticker, now_ms // 1000)
        return self._market_candles(request, ticker, now_ms, historical=True)

    # -- historical markets -------------------------------------------------------------------------
    async def historical_markets(self, request: Request) -> Response:
        """`GET /historical/markets`: archived markets; tickers / event / series / mve filters exclusive."""
        limit = q_int(request, "limit", default=100, lo=0, hi=1000) or 100
        after = decode_cursor(request, 2)
        tickers = q_csv(request, "tickers")
        event_ticker = q_str(request, "event_ticker")
        series_ticker = q_str(request, "series_ticker")
        mve = q_str(request, "mve_filter")
        if mve is not None and mve != "exclude":
            raise bad_request("mve_filter on historical markets only accepts exclude")
        given = [
            n
            for n, v in (
                ("tickers", tickers),
                ("event_ticker", event_ticker),
                ("series_ticker", series_ticker),
                ("mve_filter", mve),
            )
            if v
        ]
        if len(given) > 1:
            raise bad_request(f"filters {', '.join(given)} are mutually exclusive")
        now_ms = self.world.now_ms()
        now_s = now_ms // 1000
        ticker_set = set(tickers) if tickers else None
        games: list[Game] = []
        for game in self.world.games:
            if not self.world.is_archived(game, now_s):
                continue
            if event_ticker and game.event_ticker != event_ticker:
                continue
            if series_ticker and game.series.series_ticker != series_ticker:
                continue
            games.append(game)
        return self._markets_page(games, ticker_set, after, limit, now_ms)

    async def historical_market(self, request: Request) -> Response:
        """`GET /historical/markets/{ticker}`."""
        return self._one_market(request, self._archived_game)

    # -- trades -------------------------------------------------------------------------------------
    def _trades(self, request: Request, historical: bool) -> Response:
        limit = q_int(request, "limit", default=100, lo=0, hi=1000) or 100
        after = decode_cursor(request, 3)
        ticker = q_str(request, "ticker")
        min_ts = q_int(request, "min_ts", lo=0)
        max_ts = q_int(request, "max_ts", lo=0)
        block = q_bool(request, "is_block_trade")
        now_ms = self.world.now_ms()
        now_s = now_ms // 1000
        cutoff_ms = self.world.cutoff_s(now_s) * 1000
        lo_ms = (min_ts * 1000 - 1) if min_ts is not None else -1
        hi_ms = max_ts * 1000 if max_ts is not None else now_ms
        hi_ms = min(hi_ms, now_ms)
        if historical:
            hi_ms = min(hi_ms, cutoff_ms - 1)
        else:
            lo_ms = max(lo_ms, cutoff_ms - 1)
        if after is not None:
            hi_ms = min(hi_ms, int(after[0]))
        if ticker is not None:
            game = self.world.by_market.get(ticker)
            games = [game] if game is not None and game.created_s <= now_s else []
        else:
            games = [
                g for g in self.world.games if g.open_s * 1000 <= hi_ms and g.close_s * 1000 > lo_ms
            ]
            games.sort(key=lambda g: -g.close_s)
        if block:
            games = []  # the simulated exchange has no block trades

        def key(item: tuple[int, str, int, Any]) -> tuple[int, str, int]:
            return (-item[0], item[1], -item[2])

        bound = (-int(after[0]), str(after[1]), -int(after[2])) if after is not None else None
        found: list[tuple[int, str, int, Any]] = []
        for game in games:
            if len(found) > limit:
                oldest_kept = sorted(found, key=key)[limit][0]
                if game.close_s * 1000 < oldest_kept:
                    break
            if game.open_s * 1000 > now_ms:
                continue
            path = self.world.game_path(game)
            for market_ticker in game.market_tickers:
                if ticker is not None and market_ticker != ticker:
                    continue
                market = path.market(market_ticker)
                span = market.trade_range(lo_ms, hi_ms)
                taken = 0
                for index in reversed(span):
                    item = (int(market.trade_t[index]), market_ticker, index, market)
                    if bound is not None and key(item) <= bound:
                        continue
                    found.append(item)
                    taken += 1
                    if taken > limit:
                        break
        found.sort(key=key)
        chosen = found[:limit]
        cursor = encode_cursor(*chosen[-1][:3]) if len(found) > limit else ""
        trades = [payloads.trade(m, m.trade(i)) for _, _, i, m in chosen]
        return JSONResponse({"trades": trades, "cursor": cursor})

    async def trades(self, request: Request) -> Response:
        """`GET /markets/trades`: trades since the historical cutoff, newest first."""
        return self._trades(request, historical=False)

    async def historical_trades(self, request: Request) -> Response:
        """`GET /historical/trades`: trades before the historical cutoff, newest first."""
        return self._trades(request, historical=True)

    # -- order books --------------------------------------------------------------------------------
    def _book(self, ticker: str, now_ms: int, depth: int) -> dict[str, Any]:
        self._live_game(ticker, now_ms // 1000)
        return payloads.orderbook(self.world.book_at(ticker, now_ms, max(depth, 0)))

    async def orderbook(self, request: Request) -> Response:
        """`GET /markets/{ticker}/orderbook` (`depth` 0-100, 0 = all levels)."""
        depth = q_int(request, "depth", default=0, hi=100) or 0
        book = self._book(request.path_params["ticker"], self.world.now_ms(), depth)
        return JSONResponse({"orderbook_fp": book})

    async def orderbooks(self, request: Request) -> Response:
        """`GET /markets/orderbooks?tickers=A&tickers=B` (1-100 tickers)."""
        tickers = [t for t in request.query_params.getlist("tickers") if t]
        if not tickers:
            raise bad_request("tickers is required")
        if len(tickers) > MAX_BATCH_TICKERS:
            raise bad_request(f"at most {MAX_BATCH_TICKERS} tickers per request")
        now_ms = self.world.now_ms()
        out = []
        for ticker in dict.fromkeys(tickers):
            try:
                out.append({"ticker": ticker, "orderbook_fp": self._book(ticker, now_ms, 0)})
            except ApiError:
                continue
        return JSONResponse({"orderbooks": out})


def _periods_in(start: int, end: int, period_minutes: int) -> int:
    """How many period ends lie in `[start, end]`."""
    step = period_minutes * 60
    return max(0, end // step - -(-start // step) + 1)
