"""Async Kalshi Trade API v2 REST client (market data) on httpx: one method per endpoint.

Requests go through a `KalshiSession` (rate limiting, signing, retries). Listing methods follow Kalshi's
cursor pagination; the candlestick methods live in `candle_endpoints.py` (`CandleEndpoints`, inherited).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx

from kalshi_pipeline.kalshi.candle_endpoints import CandleEndpoints
from kalshi_pipeline.kalshi.config import KalshiConfig
from kalshi_pipeline.kalshi.errors import KalshiProtocolError
from kalshi_pipeline.kalshi.exchange import ExchangeSchedule, ExchangeStatus
from kalshi_pipeline.kalshi.live_data import LIVE_DATA_BATCH_MAX, GameStats, LiveData
from kalshi_pipeline.kalshi.models import (
    Event,
    HistoricalCutoff,
    Market,
    Milestone,
    Orderbook,
    Series,
    Trade,
)
from kalshi_pipeline.kalshi.ratelimit import RateLimiter
from kalshi_pipeline.kalshi.session import (
    KalshiSession,
    Params,
    RequestStats,
    list_field,
    page_size_within,
    required_field,
)

__all__ = ["EVENTS_PAGE_MAX", "MILESTONES_PAGE_MAX", "PAGE_MAX", "KalshiClient"]

#: Page size caps of the listing endpoints.
PAGE_MAX = 1000
EVENTS_PAGE_MAX = 200
MILESTONES_PAGE_MAX = 500
#: Markets one `GET /markets/orderbooks` request may name.
ORDERBOOKS_MAX_TICKERS = 100


class KalshiClient(CandleEndpoints):
    """Async client for Kalshi's public market data (and signed requests when credentials exist).

    Use as `async with KalshiClient(config) as client: ...`. One client serves one event loop; the rate
    limiter may be shared across clients, threads and loops.
    """

    def __init__(
        self,
        config: KalshiConfig,
        *,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """Create a client.

        Args:
            config: Connection settings.
            limiter: Rate limiter every request goes through; defaults to the process-wide bucket of
                `config.rate_limit_tier`.
            transport: An httpx transport (for tests or proxies); defaults to httpx's pooled transport.
            sleep: Awaitable sleep used for retry backoff.
            rng: Uniform [0, 1) source for backoff jitter.

        Raises:
            KalshiConfigError: The private key cannot be loaded.
        """
        self._session = KalshiSession(
            config, limiter=limiter, transport=transport, sleep=sleep, rng=rng
        )
        self._sleep = sleep
        self._rng = rng

    @property
    def config(self) -> KalshiConfig:
        """The connection settings."""
        return self._session.config

    @property
    def limiter(self) -> RateLimiter:
        """The rate limiter every request goes through."""
        return self._session.limiter

    @property
    def stats(self) -> RequestStats:
        """Counters of this client's HTTP activity."""
        return self._session.stats

    def __repr__(self) -> str:
        signed = "signed" if self._session.signer else "unsigned"
        return (
            f"KalshiClient(base_url={self.config.base_url!r}, {signed}, limiter={self.limiter!r})"
        )

    async def __aenter__(self) -> Self:
        self._session.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._session.aclose()

    async def request_json(self, method: str, path: str, params: Params | None = None) -> Any:
        """Send one API request through the session (`KalshiSession.request_json`: limits, signing, retries)."""
        return await self._session.request_json(method, path, params)

    def paginate(
        self,
        path: str,
        params: Params | None = None,
        *,
        limit: int | None = PAGE_MAX,
        read_ahead: bool = False,
    ) -> AsyncIterator[Mapping[str, Any]]:
        """Yield every page of a cursor-paginated endpoint, keeping the same filters on every page.

        Stops when the cursor is empty, null or absent. With `read_ahead` (for a caller that reads every
        page) the next page is asked for while the caller reads the current one.

        Raises:
            KalshiProtocolError: Kalshi returned a cursor it had already returned (the walk would loop).
        """
        return self._session.paginate(path, params, limit=limit, read_ahead=read_ahead)

    # ------------------------------------------------------------------ exchange

    async def get_exchange_status(self) -> ExchangeStatus:
        """`GET /exchange/status`: exchange and trading flags, per exchange index when Kalshi sends them."""
        return ExchangeStatus.from_payload(await self._session.get_object("/exchange/status"))

    async def get_exchange_schedule(self) -> ExchangeSchedule:
        """`GET /exchange/schedule`: weekly standard hours (ET) and the scheduled maintenance windows.

        `ExchangeSchedule.maintenance_at(now)` / `trading_expected(now)` tell a stream whether a scheduled
        pause is on (Kalshi disconnects WebSocket sessions in maintenance; reconnect after it).
        """
        return ExchangeSchedule.from_payload(await self._session.get_object("/exchange/schedule"))

    async def get_historical_cutoff(self) -> HistoricalCutoff:
        """`GET /historical/cutoff`: markets settled before `market_settled_ts` are only historical."""
        return HistoricalCutoff.from_payload(await self._session.get_object("/historical/cutoff"))

    # ------------------------------------------------------------------ markets

    def iter_markets(
        self,
        *,
        event_ticker: str | None = None,
        series_ticker: str | None = None,
        status: str | None = None,
        tickers: Sequence[str] | str | None = None,
        min_created_ts: int | None = None,
        max_created_ts: int | None = None,
        min_close_ts: int | None = None,
        max_close_ts: int | None = None,
        min_settled_ts: int | None = None,
        max_settled_ts: int | None = None,
        min_updated_ts: int | None = None,
        mve_filter: str | None = None,
        page_size: int | None = None,
        read_ahead: bool = False,
    ) -> AsyncIterator[Market]:
        """Iterate `GET /markets` across all pages (filters as documented; `status` is the filter
        vocabulary `unopened|open|paused|closed|settled`; `*_ts` in Unix seconds). `read_ahead`
        asks for the next page while one is read (for a caller that reads every page)."""
        params = {
            "event_ticker": event_ticker,
            "series_ticker": series_ticker,
            "status": status,
            "tickers": tickers,
            "min_created_ts": min_created_ts,
            "max_created_ts": max_created_ts,
            "min_close_ts": min_close_ts,
            "max_close_ts": max_close_ts,
            "min_settled_ts": min_settled_ts,
            "max_settled_ts": max_settled_ts,
            "min_updated_ts": min_updated_ts,
            "mve_filter": mve_filter,
        }
        return self._session.iter_items(
            "/markets",
            "markets",
            Market.from_payload,
            params,
            page_size_within(page_size, PAGE_MAX),
            read_ahead=read_ahead,
        )

    async def list_markets(self, **filters: Any) -> list[Market]:
        """All markets matching `filters` (see `iter_markets`)."""
        return [m async for m in self.iter_markets(**filters, read_ahead=True)]

    async def get_market(self, ticker: str) -> Market:
        """`GET /markets/{ticker}` (404 `KalshiNotFound` when unknown or archived: see historical)."""
        path = f"/markets/{ticker}"
        body = await self._session.get_object(path)
        return Market.from_payload(required_field(body, "market", path))

    # ------------------------------------------------------------------ events / series / milestones

    async def _iter_events(
        self, params: Mapping[str, Any], page_size: int, *, read_ahead: bool
    ) -> AsyncIterator[Event]:
        async for page in self.paginate("/events", params, limit=page_size, read_ahead=read_ahead):
            milestones = [
                Milestone.from_payload(m) for m in list_field(page, "milestones", "/events")
            ]
            for item in list_field(page, "events", "/events"):
                yield Event.from_payload(item, milestones=milestones)

    def iter_events(
        self,
        *,
        series_ticker: str | None = None,
        status: str | None = None,
        with_nested_markets: bool = False,
        with_milestones: bool = False,
        min_close_ts: int | None = None,
        min_updated_ts: int | None = None,
        tickers: Sequence[str] | str | None = None,
        page_size: int | None = None,
        read_ahead: bool = False,
    ) -> AsyncIterator[Event]:
        """Iterate `GET /events` across all pages (page size at most 200); with `with_milestones` each
        event carries the milestones of its page that reference it. `read_ahead`
        asks for the next page while one is read (for a caller that reads every page)."""
        params = {
            "series_ticker": series_ticker,
            "status": status,
            "with_nested_markets": with_nested_markets or None,
            "with_milestones": with_milestones or None,
            "min_close_ts": min_close_ts,
            "min_updated_ts": min_updated_ts,
            "tickers": tickers,
        }
        return self._iter_events(
            params, page_size_within(page_size, EVENTS_PAGE_MAX), read_ahead=read_ahead
        )

    async def list_events(self, **filters: Any) -> list[Event]:
        """All events matching `filters` (see `iter_events`)."""
        return [e async for e in self.iter_events(**filters, read_ahead=True)]

    async def get_event(self, event_ticker: str, with_nested_markets: bool = False) -> Event:
        """`GET /events/{event_ticker}`; the event's markets come from `event.markets` or the
        (deprecated) top-level `markets`, whichever Kalshi sent."""
        path = f"/events/{event_ticker}"
        body = await self._session.get_object(
            path, {"with_nested_markets": with_nested_markets or None}
        )
        return Event.from_payload(
            required_field(body, "event", path), markets=list_field(body, "markets", path)
        )

    async def get_series(self, series_ticker: str, *, include_volume: bool = False) -> Series:
        """`GET /series/{series_ticker}`."""
        path = f"/series/{series_ticker}"
        body = await self._session.get_object(path, {"include_volume": include_volume or None})
        return Series.from_payload(required_field(body, "series", path))

    def iter_milestones(
        self,
        *,
        minimum_start_date: datetime | str | None = None,
        category: str | None = None,
        competition: str | None = None,
        type: str | None = None,
        related_event_ticker: str | None = None,
        source_id: str | None = None,
        min_updated_ts: int | None = None,
        page_size: int | None = None,
        read_ahead: bool = False,
    ) -> AsyncIterator[Milestone]:
        """Iterate `GET /milestones` (page size at most 500 and always sent, as Kalshi requires).

        `read_ahead` asks for the next page while one is read (for a caller that reads every page).
        """
        params = {
            "minimum_start_date": minimum_start_date,
            "category": category,
            "competition": competition,
            "type": type,
            "related_event_ticker": related_event_ticker,
            "source_id": source_id,
            "min_updated_ts": min_updated_ts,
        }
        return self._session.iter_items(
            "/milestones",
            "milestones",
            Milestone.from_payload,
            params,
            page_size_within(page_size, MILESTONES_PAGE_MAX),
            read_ahead=read_ahead,
        )

    async def list_milestones(self, **filters: Any) -> list[Milestone]:
        """All milestones matching `filters` (see `iter_milestones`)."""
        return [m async for m in self.iter_milestones(**filters, read_ahead=True)]

    # ------------------------------------------------------------------ trades / orderbooks

    def iter_trades(
        self,
        ticker: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        *,
        is_block_trade: bool | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Trade]:
        """Iterate public trades (`GET /markets/trades`), `min_ts`/`max_ts` in Unix seconds."""
        params = {
            "ticker": ticker,
            "min_ts": min_ts,
            "max_ts": max_ts,
            "is_block_trade": is_block_trade,
        }
        return self._session.iter_items(
            "/markets/trades",
            "trades",
            Trade.from_payload,
            params,
            page_size_within(page_size, PAGE_MAX),
        )

    def iter_historical_trades(
        self,
        ticker: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        *,
        page_size: int | None = None,
    ) -> AsyncIterator[Trade]:
        """Iterate trades behind the historical cutoff (`GET /historical/trades`), times in Unix seconds."""
        params = {"ticker": ticker, "min_ts": min_ts, "max_ts": max_ts}
        return self._session.iter_items(
            "/historical/trades",
            "trades",
            Trade.from_payload,
            params,
            page_size_within(page_size, PAGE_MAX),
        )

    async def get_orderbook(self, ticker: str, depth: int | None = None) -> Orderbook:
        """`GET /markets/{ticker}/orderbook` (bids only, ascending, best last)."""
        path = f"/markets/{ticker}/orderbook"
        body = await self._session.get_object(path, {"depth": depth})
        book = body.get("orderbook_fp")
        if book is None and "orderbook_fp" not in body:
            raise KalshiProtocolError(f"GET {path}: response has no 'orderbook_fp' field")
        return Orderbook.from_payload(book or {}, ticker=ticker)

    async def get_orderbooks(self, tickers: Sequence[str]) -> dict[str, Orderbook]:
        """Books of many markets via `GET /markets/orderbooks?tickers=A&tickers=B` (<= 100 per request)."""
        unique = list(dict.fromkeys(tickers))
        path = "/markets/orderbooks"

        async def fetch(names: list[str]) -> list[Orderbook]:
            body = await self._session.get_object(path, [("tickers", n) for n in names])
            books = []
            for i, entry in enumerate(list_field(body, "orderbooks", path)):
                if not isinstance(entry, Mapping) or not isinstance(entry.get("ticker"), str):
                    raise KalshiProtocolError(f"GET {path}: orderbooks[{i}] has no 'ticker' string")
                books.append(
                    Orderbook.from_payload(entry.get("orderbook_fp") or {}, ticker=entry["ticker"])
                )
            return books

        groups = [
            unique[i : i + ORDERBOOKS_MAX_TICKERS]
            for i in range(0, len(unique), ORDERBOOKS_MAX_TICKERS)
        ]
        results = await asyncio.gather(*(fetch(g) for g in groups))
        return {book.ticker: book for chunk in results for book in chunk}

    # ------------------------------------------------------------------ historical markets

    def iter_historical_markets(
        self,
        *,
        tickers: Sequence[str] | str | None = None,
        event_ticker: str | None = None,
        series_ticker: str | None = None,
        mve_filter: str | None = None,
        page_size: int | None = None,
        read_ahead: bool = False,
    ) -> AsyncIterator[Market]:
        """Iterate archived markets (`GET /historical/markets`); Kalshi accepts only one of the filters.

        `read_ahead` asks for the next page while one is read (for a caller that reads every page).
        """
        given = [
            n
            for n, v in (
                ("tickers", tickers),
                ("event_ticker", event_ticker),
                ("series_ticker", series_ticker),
                ("mve_filter", mve_filter),
            )
            if v is not None
        ]
        if len(given) > 1:
            raise ValueError(
                f"/historical/markets filters are mutually exclusive; got {', '.join(given)}"
            )
        params = {
            "tickers": tickers,
            "event_ticker": event_ticker,
            "series_ticker": series_ticker,
            "mve_filter": mve_filter,
        }
        return self._session.iter_items(
            "/historical/markets",
            "markets",
            Market.from_payload,
            params,
            page_size_within(page_size, PAGE_MAX),
            read_ahead=read_ahead,
        )

    async def list_historical_markets(self, **filters: Any) -> list[Market]:
        """All archived markets matching `filters` (see `iter_historical_markets`)."""
        return [m async for m in self.iter_historical_markets(**filters, read_ahead=True)]

    async def get_historical_market(self, ticker: str) -> Market:
        """`GET /historical/markets/{ticker}`."""
        path = f"/historical/markets/{ticker}"
        body = await self._session.get_object(path)
        return Market.from_payload(required_field(body, "market", path))

    # ------------------------------------------------------------------ live sports data

    async def get_live_data(self, milestone_id: str) -> LiveData:
        """`GET /live_data/milestone/{milestone_id}` (no auth); KalshiNotFound when it has no live data."""
        path = f"/live_data/milestone/{milestone_id}"
        body = await self._session.get_object(path)
        return LiveData.from_payload(
            required_field(body, "live_data", path), milestone_id=milestone_id
        )

    async def get_live_datas(self, milestone_ids: Sequence[str]) -> list[LiveData]:
        """Live data of many milestones via `GET /live_data/batch?milestone_ids=A&milestone_ids=B`.

        The parameter is repeated (a comma-joined list silently matches nothing) and at most 100 ids go in
        one request; larger lists are split. Milestones without live data are simply absent.
        """
        if isinstance(milestone_ids, str):
            raise ValueError("get_live_datas takes a list of milestone ids, not a single string")
        unique = list(dict.fromkeys(milestone_ids))
        path = "/live_data/batch"

        async def fetch(ids: list[str]) -> list[LiveData]:
            body = await self._session.get_object(path, [("milestone_ids", i) for i in ids])
            return [LiveData.from_payload(e) for e in list_field(body, "live_datas", path)]

        groups = [
            unique[i : i + LIVE_DATA_BATCH_MAX] for i in range(0, len(unique), LIVE_DATA_BATCH_MAX)
        ]
        results = await asyncio.gather(*(fetch(g) for g in groups))
        return [item for chunk in results for item in chunk]

    async def get_game_stats(self, milestone_id: str) -> GameStats:
        """`GET /live_data/milestone/{milestone_id}/game_stats`: the play-by-play (empty when unsupported)."""
        path = f"/live_data/milestone/{milestone_id}/game_stats"
        body = await self._session.get_object(path)
        return GameStats.from_payload(body, milestone_id=milestone_id)
