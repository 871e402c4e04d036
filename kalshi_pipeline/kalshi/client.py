"""Async Kalshi Trade API v2 REST client (market data) on httpx.

Every request draws tokens from a rate limiter (by default the process-wide bucket of the configured tier),
is signed when credentials exist, and is retried with capped exponential backoff and full jitter on 429,
5xx, timeouts and connection errors. Listing methods follow Kalshi's cursor pagination; candlestick
methods split windows so each request stays under Kalshi's per-request caps.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from kalshi_pipeline.kalshi.auth import KalshiSigner
from kalshi_pipeline.kalshi.config import KalshiConfig
from kalshi_pipeline.kalshi.errors import (
    KalshiError,
    KalshiProtocolError,
    KalshiTransportError,
    error_for_status,
)
from kalshi_pipeline.kalshi.models import (
    Candlestick,
    Event,
    ExchangeStatus,
    HistoricalCutoff,
    Market,
    Milestone,
    Orderbook,
    Series,
    Trade,
)
from kalshi_pipeline.kalshi.ratelimit import RateLimiter, shared_limiter

__all__ = [
    "BATCH_MAX_CANDLES",
    "BATCH_MAX_TICKERS",
    "EVENTS_PAGE_MAX",
    "MILESTONES_PAGE_MAX",
    "PAGE_MAX",
    "PERIOD_INTERVALS",
    "SINGLE_MAX_CANDLES",
    "KalshiClient",
    "RequestStats",
    "candle_windows",
]

PAGE_MAX = 1000
EVENTS_PAGE_MAX = 200
MILESTONES_PAGE_MAX = 500
SINGLE_MAX_CANDLES = 5000
BATCH_MAX_TICKERS = 100
BATCH_MAX_CANDLES = 10_000
ORDERBOOKS_MAX_TICKERS = 100
PERIOD_INTERVALS = (1, 60, 1440)
_RETRY_AFTER_MAX_S = 60.0

T = TypeVar("T")
logger = logging.getLogger(__name__)
Params = Mapping[str, Any] | Sequence[tuple[str, Any]]


@dataclass
class RequestStats:
    """Counters of one client's HTTP activity.

    Attributes:
        requests: HTTP attempts sent (each retry counts).
        retries: Attempts repeated after a retryable failure.
        rate_limited: 429 answers received.
        throttled_seconds: Time spent waiting for the rate limiter.
        server_errors: 5xx answers received.
        transport_errors: Timeouts and connection errors.
        backoff_seconds: Time spent sleeping between retries.
    """

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    throttled_seconds: float = 0.0
    server_errors: int = 0
    transport_errors: int = 0
    backoff_seconds: float = 0.0


def candle_windows(
    start_ts: int, end_ts: int, period_interval: int, max_periods: int
) -> list[tuple[int, int]]:
    """Split the inclusive window `[start_ts, end_ts]` into contiguous sub-windows of <= `max_periods` periods.

    Sub-windows neither overlap nor leave gaps, so each candle end falls in exactly one of them, and each
    spans at most `(max_periods - 1)` periods, so it holds at most `max_periods` period ends whatever the
    alignment of the candles.
    """
    if period_interval not in PERIOD_INTERVALS:
        raise ValueError(
            f"period_interval must be one of {PERIOD_INTERVALS} minutes, got {period_interval!r}"
        )
    if max_periods < 1:
        raise ValueError(f"max_periods must be >= 1, got {max_periods}")
    if end_ts < start_ts:
        raise ValueError(f"end_ts {end_ts} is before start_ts {start_ts}")
    span = (max_periods - 1) * period_interval * 60
    windows = []
    lo = start_ts
    while lo <= end_ts:
        hi = min(lo + span, end_ts)
        windows.append((lo, hi))
        lo = hi + 1
    return windows


def _periods_bound(start_ts: int, end_ts: int, period_interval: int) -> int:
    """An upper bound of the period count of `[start_ts, end_ts]` under any counting convention."""
    return -(-(end_ts - start_ts) // (period_interval * 60)) + 1


def _format_param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, Iterable):
        return ",".join(_format_param(v) for v in value)
    return str(value)


def _clean(params: Params) -> list[tuple[str, str]]:
    items = params.items() if isinstance(params, Mapping) else params
    return [(k, _format_param(v)) for k, v in items if v is not None]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _check_ts(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be Unix seconds (int), got {value!r}")
    if value > 10_000_000_000:
        raise ValueError(f"{name}={value} looks like milliseconds; pass Unix seconds")
    return value


def _sorted_unique(candles: Iterable[Candlestick]) -> list[Candlestick]:
    by_end: dict[int, Candlestick] = {}
    for candle in candles:
        by_end[candle.end_period_ts] = candle
    return [by_end[k] for k in sorted(by_end)]


class KalshiClient:
    """Async client for Kalshi's public market data (and signed requests when credentials exist).

    Use as `async with KalshiClient(config) as client: ...`. One client serves one event loop; the rate
    limiter may be shared across clients, threads and loops.
    """

    def __init__(
        self,
        config: KalshiConfig | None = None,
        *,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """Create a client.

        Args:
            config: Connection settings; defaults to `KalshiConfig.from_env()`.
            limiter: Rate limiter every request goes through; defaults to the process-wide bucket of
                `config.rate_limit_tier`.
            transport: An httpx transport (for tests or proxies); defaults to httpx's pooled transport.
            sleep: Awaitable sleep used for retry backoff.
            rng: Uniform [0, 1) source for backoff jitter.

        Raises:
            KalshiConfigError: The private key cannot be loaded.
        """
        self.config = config if config is not None else KalshiConfig.from_env()
        self.limiter: RateLimiter = (
            limiter if limiter is not None else shared_limiter(self.config.rate_limit_tier)
        )
        self.stats = RequestStats()
        self._signer: KalshiSigner | None = self.config.signer()
        self._transport = transport
        self._sleep = sleep
        self._rng = rng
        self._http: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        signed = "signed" if self._signer else "unsigned"
        return (
            f"KalshiClient(base_url={self.config.base_url!r}, {signed}, limiter={self.limiter!r})"
        )

    async def __aenter__(self) -> Self:
        self._ensure_http()
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
        if self._http is not None:
            await self._http.aclose()
            self._http = None
            self._loop = None

    def _ensure_http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is not None and self._loop is not loop:
            raise KalshiError(
                "this KalshiClient was opened in another event loop; create one client per "
                "asyncio.run() (the rate limiter can still be shared)"
            )
        if self._http is None:
            self._loop = loop
            n = self.config.max_concurrency
            self._http = httpx.AsyncClient(
                base_url=self.config.base_url + "/",
                timeout=httpx.Timeout(self.config.timeout_s, connect=self.config.connect_timeout_s),
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                headers={"Accept": "application/json", "User-Agent": "kalshi-pipeline/0.1"},
                transport=self._transport,
                follow_redirects=False,
            )
            self._semaphore = asyncio.Semaphore(n)
        return self._http

    # ------------------------------------------------------------------ core request

    def _backoff(self, retry: int, response: httpx.Response | None) -> float:
        if response is not None:
            hinted = _retry_after(response)
            if hinted is not None:
                return min(hinted, _RETRY_AFTER_MAX_S)
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * (2**retry))
        return self._rng() * ceiling

    async def request_json(self, method: str, path: str, params: Params | None = None) -> Any:
        """Send one API request (with rate limiting, signing and retries) and return the decoded JSON.

        Args:
            method: HTTP method.
            path: Path below the base URL, e.g. `/markets` or `markets/{ticker}`.
            params: Query parameters; `None` values are dropped, lists become comma-separated, and a
                sequence of pairs repeats a key.

        Raises:
            KalshiAuthError, KalshiNotFound, KalshiBadRequest, KalshiApiError: Non-retryable HTTP errors.
            KalshiRateLimited, KalshiServerError, KalshiTransportError: Retries exhausted.
            KalshiProtocolError: The answer is not JSON.
        """
        http = self._ensure_http()
        assert self._semaphore is not None
        query = _clean(params or {})
        # One request object serves every attempt (a bodiless GET can be resent); each attempt re-signs it.
        request = http.build_request(method.upper(), path.lstrip("/"), params=query)
        wire_path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        label = f"{method.upper()} {wire_path}"
        attempts = self.config.max_retries + 1
        outcomes: list[str] = []
        started = time.monotonic()
        for attempt in range(attempts):
            waited = time.monotonic()
            await self.limiter.acquire(self.config.request_cost)
            self.stats.throttled_seconds += time.monotonic() - waited
            if self._signer is not None:
                request.headers.update(self._signer.sign(method, wire_path))
            response: httpx.Response | None = None
            async with self._semaphore:
                self.stats.requests += 1
                try:
                    response = await http.send(request)
                    await response.aread()
                except httpx.TimeoutException as exc:
                    self.stats.transport_errors += 1
                    outcomes.append(f"timeout ({type(exc).__name__})")
                except httpx.TransportError as exc:
                    self.stats.transport_errors += 1
                    outcomes.append(
                        f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    )
            if response is not None:
                status = response.status_code
                if status < 300:
                    return self._decode(response, label)
                if status == 429:
                    self.stats.rate_limited += 1
                    outcomes.append("429")
                    # The server's bucket is empty (another client shares the key): stop bursting.
                    drain = getattr(self.limiter, "drain", None)
                    if callable(drain):
                        drain()
                elif status >= 500:
                    self.stats.server_errors += 1
                    outcomes.append(str(status))
                else:
                    raise error_for_status(
                        status, response.content, method=method.upper(), path=wire_path
                    )
            if attempt + 1 < attempts:
                delay = self._backoff(attempt, response)
                self.stats.retries += 1
                self.stats.backoff_seconds += delay
                logger.info(
                    "%s: %s; retry %d/%d in %.2fs",
                    label,
                    outcomes[-1],
                    attempt + 1,
                    self.config.max_retries,
                    delay,
                )
                await self._sleep(delay)
        note = (
            f"gave up after {attempts} attempts in {time.monotonic() - started:.1f}s "
            f"(max_retries={self.config.max_retries}; outcomes: {', '.join(outcomes)})"
        )
        if response is None:
            raise KalshiTransportError(f"{label}: no answer from {self.config.base_url}; {note}")
        raise error_for_status(
            response.status_code,
            response.content,
            method=method.upper(),
            path=wire_path,
            attempts_note=note,
        )

    @staticmethod
    def _decode(response: httpx.Response, label: str) -> Any:
        try:
            return json.loads(response.content)
        except ValueError:
            snippet = " ".join(response.text.split())[:120]
            raise KalshiProtocolError(
                f"{label}: HTTP {response.status_code} answer is not JSON: {snippet!r}"
            ) from None

    async def _get_obj(self, path: str, params: Params | None = None) -> Mapping[str, Any]:
        body = await self.request_json("GET", path, params)
        if not isinstance(body, Mapping):
            raise KalshiProtocolError(
                f"GET {path}: expected a JSON object, got {type(body).__name__}"
            )
        return body

    @staticmethod
    def _field(body: Mapping[str, Any], key: str, path: str) -> Any:
        if body.get(key) is None:
            raise KalshiProtocolError(f"GET {path}: response has no {key!r} field")
        return body[key]

    @staticmethod
    def _items(body: Mapping[str, Any], key: str, path: str) -> list[Any]:
        value = body.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise KalshiProtocolError(f"GET {path}: field {key!r} should be a list")
        return value

    async def paginate(
        self, path: str, params: Params | None = None, *, limit: int | None = PAGE_MAX
    ) -> AsyncIterator[Mapping[str, Any]]:
        """Yield every page of a cursor-paginated endpoint, keeping the same filters on every page.

        Stops when the cursor is empty, null or absent.

        Raises:
            KalshiProtocolError: Kalshi returned a cursor it had already returned (the walk would loop).
        """
        base = _clean(params or {})
        if limit is not None:
            base.append(("limit", str(limit)))
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            query = [*base, ("cursor", cursor)] if cursor else base
            body = await self._get_obj(path, query)
            yield body
            next_cursor = body.get("cursor")
            if not next_cursor:
                return
            if not isinstance(next_cursor, str):
                raise KalshiProtocolError(
                    f"GET {path}: cursor should be a string, got {next_cursor!r}"
                )
            if next_cursor in seen:
                raise KalshiProtocolError(
                    f"GET {path}: Kalshi returned cursor {next_cursor!r} twice; stopping to avoid a loop "
                    f"after {len(seen) + 1} pages"
                )
            seen.add(next_cursor)
            cursor = next_cursor

    async def _iter_items(
        self,
        path: str,
        key: str,
        parse: Callable[[Any], T],
        params: Params,
        limit: int | None,
    ) -> AsyncIterator[T]:
        async for page in self.paginate(path, params, limit=limit):
            for item in self._items(page, key, path):
                yield parse(item)

    @staticmethod
    def _page_size(page_size: int | None, maximum: int) -> int:
        size = maximum if page_size is None else page_size
        if not 1 <= size <= maximum:
            raise ValueError(f"page_size must be between 1 and {maximum}, got {size}")
        return size

    # ------------------------------------------------------------------ exchange

    async def get_exchange_status(self) -> ExchangeStatus:
        """`GET /exchange/status`."""
        return ExchangeStatus.from_payload(await self._get_obj("/exchange/status"))

    async def get_historical_cutoff(self) -> HistoricalCutoff:
        """`GET /historical/cutoff`: markets settled before `market_settled_ts` are only historical."""
        return HistoricalCutoff.from_payload(await self._get_obj("/historical/cutoff"))

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
    ) -> AsyncIterator[Market]:
        """Iterate `GET /markets` across all pages (filters as documented; `status` is the filter
        vocabulary `unopened|open|paused|closed|settled`; `*_ts` in Unix seconds)."""
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
        return self._iter_items(
            "/markets", "markets", Market.from_payload, params, self._page_size(page_size, PAGE_MAX)
        )

    async def list_markets(self, **filters: Any) -> list[Market]:
        """All markets matching `filters` (see `iter_markets`)."""
        return [m async for m in self.iter_markets(**filters)]

    async def get_market(self, ticker: str) -> Market:
        """`GET /markets/{ticker}` (404 `KalshiNotFound` when unknown or archived: see historical)."""
        path = f"/markets/{ticker}"
        body = await self._get_obj(path)
        return Market.from_payload(self._field(body, "market", path))

    # ------------------------------------------------------------------ events / series / milestones

    async def _iter_events(self, params: Mapping[str, Any], page_size: int) -> AsyncIterator[Event]:
        async for page in self.paginate("/events", params, limit=page_size):
            milestones = [
                Milestone.from_payload(m) for m in self._items(page, "milestones", "/events")
            ]
            for item in self._items(page, "events", "/events"):
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
    ) -> AsyncIterator[Event]:
        """Iterate `GET /events` across all pages (page size at most 200); with `with_milestones` each
        event carries the milestones of its page that reference it."""
        params = {
            "series_ticker": series_ticker,
            "status": status,
            "with_nested_markets": with_nested_markets or None,
            "with_milestones": with_milestones or None,
            "min_close_ts": min_close_ts,
            "min_updated_ts": min_updated_ts,
            "tickers": tickers,
        }
        return self._iter_events(params, self._page_size(page_size, EVENTS_PAGE_MAX))

    async def list_events(self, **filters: Any) -> list[Event]:
        """All events matching `filters` (see `iter_events`)."""
        return [e async for e in self.iter_events(**filters)]

    async def get_event(self, event_ticker: str, with_nested_markets: bool = False) -> Event:
        """`GET /events/{event_ticker}`; the event's markets come from `event.markets` or the
        (deprecated) top-level `markets`, whichever Kalshi sent."""
        path = f"/events/{event_ticker}"
        body = await self._get_obj(path, {"with_nested_markets": with_nested_markets or None})
        return Event.from_payload(
            self._field(body, "event", path), markets=self._items(body, "markets", path)
        )

    async def get_series(self, series_ticker: str, *, include_volume: bool = False) -> Series:
        """`GET /series/{series_ticker}`."""
        path = f"/series/{series_ticker}"
        body = await self._get_obj(path, {"include_volume": include_volume or None})
        return Series.from_payload(self._field(body, "series", path))

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
    ) -> AsyncIterator[Milestone]:
        """Iterate `GET /milestones` (page size at most 500 and always sent, as Kalshi requires)."""
        params = {
            "minimum_start_date": minimum_start_date,
            "category": category,
            "competition": competition,
            "type": type,
            "related_event_ticker": related_event_ticker,
            "source_id": source_id,
            "min_updated_ts": min_updated_ts,
        }
        return self._iter_items(
            "/milestones",
            "milestones",
            Milestone.from_payload,
            params,
            self._page_size(page_size, MILESTONES_PAGE_MAX),
        )

    async def list_milestones(self, **filters: Any) -> list[Milestone]:
        """All milestones matching `filters` (see `iter_milestones`)."""
        return [m async for m in self.iter_milestones(**filters)]

    # ------------------------------------------------------------------ candlesticks

    def _parse_candles(
        self, items: list[Any], ticker: str, period_interval: int, historical: bool
    ) -> list[Candlestick]:
        return [
            Candlestick.from_payload(
                item, ticker=ticker, period_interval=period_interval, historical=historical
            )
            for item in items
        ]

    async def _single_candles(
        self,
        path: str,
        ticker: str,
        start_ts: int,
        end_ts: int,
        period_interval: int,
        historical: bool,
    ) -> list[Candlestick]:
        _check_ts("start_ts", start_ts)
        _check_ts("end_ts", end_ts)
        windows = candle_windows(start_ts, end_ts, period_interval, SINGLE_MAX_CANDLES)

        async def fetch(lo: int, hi: int) -> list[Candlestick]:
            body = await self._get_obj(
                path, {"start_ts": lo, "end_ts": hi, "period_interval": period_interval}
            )
            items = self._items(body, "candlesticks", path)
            return self._parse_candles(items, ticker, period_interval, historical)

        chunks = await asyncio.gather(*(fetch(lo, hi) for lo, hi in windows))
        return _sorted_unique(c for chunk in chunks for c in chunk)

    async def get_market_candlesticks(
        self,
        series_ticker: str,
        ticker: str,
        start_ts: int,
        end_ts: int,
        period_interval: int = 1,
    ) -> list[Candlestick]:
        """Candles of one live market ending in `[start_ts, end_ts]` (Unix s), ascending by end time.

        Uses `GET /series/{series}/markets/{ticker}/candlesticks`, one request per <= 5,000 periods.
        """
        path = f"/series/{series_ticker}/markets/{ticker}/candlesticks"
        return await self._single_candles(path, ticker, start_ts, end_ts, period_interval, False)

    async def get_historical_candlesticks(
        self, ticker: str, start_ts: int, end_ts: int, period_interval: int = 1
    ) -> list[Candlestick]:
        """Candles of one archived market (`GET /historical/markets/{ticker}/candlesticks`), chunked to
        <= 5,000 periods per request, normalised into the same `Candlestick` (with `historical=True`)."""
        path = f"/historical/markets/{ticker}/candlesticks"
        return await self._single_candles(path, ticker, start_ts, end_ts, period_interval, True)

    async def get_candlesticks_batch(
        self,
        tickers: Sequence[str],
        start_ts: int,
        end_ts: int,
        period_interval: int = 1,
    ) -> dict[str, list[Candlestick]]:
        """Candles of many live markets via `GET /markets/candlesticks`.

        Requests carry <= 100 tickers and tickers x periods <= 10,000 (windows also stay <= 5,000 periods).
        Returns every requested ticker (an empty list when it had no candles), candles ascending.
        """
        _check_ts("start_ts", start_ts)
        _check_ts("end_ts", end_ts)
        if isinstance(tickers, str):
            raise TypeError("tickers must be a sequence of market tickers, not one string")
        unique = list(dict.fromkeys(tickers))
        result: dict[str, list[Candlestick]] = {t: [] for t in unique}
        if not unique:
            return result
        total_periods = (
            _periods_bound(start_ts, end_ts, period_interval) if end_ts >= start_ts else 1
        )
        window_periods = min(total_periods, SINGLE_MAX_CANDLES)
        group = max(1, min(BATCH_MAX_TICKERS, BATCH_MAX_CANDLES // window_periods))
        windows = candle_windows(start_ts, end_ts, period_interval, window_periods)
        groups = [unique[i : i + group] for i in range(0, len(unique), group)]
        path = "/markets/candlesticks"

        async def fetch(names: list[str], lo: int, hi: int) -> list[tuple[str, list[Candlestick]]]:
            body = await self._get_obj(
                path,
                {
                    "market_tickers": names,
                    "start_ts": lo,
                    "end_ts": hi,
                    "period_interval": period_interval,
                },
            )
            out = []
            for i, entry in enumerate(self._items(body, "markets", path)):
                if not isinstance(entry, Mapping) or not isinstance(
                    entry.get("market_ticker"), str
                ):
                    raise KalshiProtocolError(
                        f"GET {path}: markets[{i}] has no 'market_ticker' string"
                    )
                name = entry["market_ticker"]
                items = entry.get("candlesticks") or []
                out.append((name, self._parse_candles(items, name, period_interval, False)))
            return out

        parts = await asyncio.gather(*(fetch(g, lo, hi) for g in groups for lo, hi in windows))
        merged: dict[str, list[Candlestick]] = {t: [] for t in unique}
        for part in parts:
            for name, candles in part:
                merged.setdefault(name, []).extend(candles)
        for name, candles in merged.items():
            result[name] = _sorted_unique(candles)
        return result

    async def get_event_candlesticks(
        self,
        series_ticker: str,
        event_ticker: str,
        start_ts: int,
        end_ts: int,
        period_interval: int = 1,
    ) -> dict[str, list[Candlestick]]:
        """Candles of every market of an event via `GET /series/{s}/events/{e}/candlesticks`.

        Kalshi truncates at 5,000 candles across the event and returns `adjusted_end_ts`; the client
        continues from there until the window is covered.
        """
        _check_ts("start_ts", start_ts)
        _check_ts("end_ts", end_ts)
        path = f"/series/{series_ticker}/events/{event_ticker}/candlesticks"
        merged: dict[str, list[Candlestick]] = {}
        for lo, hi in candle_windows(start_ts, end_ts, period_interval, SINGLE_MAX_CANDLES):
            cursor = lo
            while True:
                body = await self._get_obj(
                    path, {"start_ts": cursor, "end_ts": hi, "period_interval": period_interval}
                )
                names = self._items(body, "market_tickers", path)
                series = self._items(body, "market_candlesticks", path)
                if len(names) != len(series):
                    raise KalshiProtocolError(
                        f"GET {path}: {len(names)} market_tickers but {len(series)} candle lists"
                    )
                for name, items in zip(names, series, strict=True):
                    if not isinstance(name, str):
                        raise KalshiProtocolError(
                            f"GET {path}: market ticker {name!r} is not a string"
                        )
                    merged.setdefault(name, []).extend(
                        self._parse_candles(items or [], name, period_interval, False)
                    )
                adjusted = body.get("adjusted_end_ts")
                # Absent, null or 0 (an unset Go int) means the window was not truncated.
                if not adjusted or not isinstance(adjusted, int) or adjusted >= hi:
                    break
                if adjusted <= cursor:
                    raise KalshiProtocolError(
                        f"GET {path}: adjusted_end_ts {adjusted} does not advance past start_ts {cursor}"
                    )
                cursor = adjusted
        return {name: _sorted_unique(candles) for name, candles in merged.items()}

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
        return self._iter_items(
            "/markets/trades",
            "trades",
            Trade.from_payload,
            params,
            self._page_size(page_size, PAGE_MAX),
        )

    async def get_orderbook(self, ticker: str, depth: int | None = None) -> Orderbook:
        """`GET /markets/{ticker}/orderbook` (bids only, ascending, best last)."""
        path = f"/markets/{ticker}/orderbook"
        body = await self._get_obj(path, {"depth": depth})
        book = body.get("orderbook_fp")
        if book is None and "orderbook_fp" not in body:
            raise KalshiProtocolError(f"GET {path}: response has no 'orderbook_fp' field")
        return Orderbook.from_payload(book or {}, ticker=ticker)

    async def get_orderbooks(self, tickers: Sequence[str]) -> dict[str, Orderbook]:
        """Books of many markets via `GET /markets/orderbooks?tickers=A&tickers=B` (<= 100 per request)."""
        unique = list(dict.fromkeys(tickers))
        path = "/markets/orderbooks"

        async def fetch(names: list[str]) -> list[Orderbook]:
            body = await self._get_obj(path, [("tickers", n) for n in names])
            books = []
            for i, entry in enumerate(self._items(body, "orderbooks", path)):
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
    ) -> AsyncIterator[Market]:
        """Iterate archived markets (`GET /historical/markets`); Kalshi accepts only one of the filters."""
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
        return self._iter_items(
            "/historical/markets",
            "markets",
            Market.from_payload,
            params,
            self._page_size(page_size, PAGE_MAX),
        )

    async def list_historical_markets(self, **filters: Any) -> list[Market]:
        """All archived markets matching `filters` (see `iter_historical_markets`)."""
        return [m async for m in self.iter_historical_markets(**filters)]

    async def get_historical_market(self, ticker: str) -> Market:
        """`GET /historical/markets/{ticker}`."""
        path = f"/historical/markets/{ticker}"
        body = await self._get_obj(path)
        return Market.from_payload(self._field(body, "market", path))
