"""Kalshi Trade API v2 client: config, request signing, rate limiting, typed models, ticker parsing.

No Dagster and no simulator imports here; the same code talks to Kalshi or to the local simulator by URL.
Settings arrive as a `KalshiConfig` (the client reads no environment variables). The WebSocket client has
its own public package, `kalshi_pipeline.kalshi.ws`.
"""

from kalshi_pipeline.kalshi.auth import KalshiSigner
from kalshi_pipeline.kalshi.candles import Candlestick
from kalshi_pipeline.kalshi.client import KalshiClient
from kalshi_pipeline.kalshi.config import (
    DEFAULT_WS_URL,
    DEMO_BASE_URL,
    PRODUCTION_BASE_URL,
    KalshiConfig,
)
from kalshi_pipeline.kalshi.errors import (
    KalshiApiError,
    KalshiAuthError,
    KalshiBadRequest,
    KalshiConfigError,
    KalshiError,
    KalshiNotFound,
    KalshiProtocolError,
    KalshiRateLimited,
    KalshiServerError,
    KalshiTransportError,
    KalshiWebSocketError,
    TickerError,
    WsCommandError,
    WsMessageError,
)
from kalshi_pipeline.kalshi.exchange import (
    ExchangeIndexStatus,
    ExchangeSchedule,
    ExchangeStatus,
    MaintenanceWindow,
    TradingSession,
    WeeklySchedule,
)
from kalshi_pipeline.kalshi.live_data import GameState, GameStats, LiveData
from kalshi_pipeline.kalshi.models import (
    Event,
    HistoricalCutoff,
    Market,
    Milestone,
    Orderbook,
    OrderbookLevel,
    PriceRange,
    Series,
    Trade,
)
from kalshi_pipeline.kalshi.ratelimit import TIERS, RateLimiter, TokenBucket, shared_limiter
from kalshi_pipeline.kalshi.session import RequestStats
from kalshi_pipeline.kalshi.tickers import GameEvent, market_team, parse_game_event

__all__ = [
    "DEFAULT_WS_URL",
    "DEMO_BASE_URL",
    "PRODUCTION_BASE_URL",
    "TIERS",
    "Candlestick",
    "Event",
    "ExchangeIndexStatus",
    "ExchangeSchedule",
    "ExchangeStatus",
    "GameEvent",
    "GameState",
    "GameStats",
    "HistoricalCutoff",
    "KalshiApiError",
    "KalshiAuthError",
    "KalshiBadRequest",
    "KalshiClient",
    "KalshiConfig",
    "KalshiConfigError",
    "KalshiError",
    "KalshiNotFound",
    "KalshiProtocolError",
    "KalshiRateLimited",
    "KalshiServerError",
    "KalshiSigner",
    "KalshiTransportError",
    "KalshiWebSocketError",
    "LiveData",
    "MaintenanceWindow",
    "Market",
    "Milestone",
    "Orderbook",
    "OrderbookLevel",
    "PriceRange",
    "RateLimiter",
    "RequestStats",
    "Series",
    "TickerError",
    "TokenBucket",
    "Trade",
    "TradingSession",
    "WeeklySchedule",
    "WsCommandError",
    "WsMessageError",
    "market_team",
    "parse_game_event",
    "shared_limiter",
]
