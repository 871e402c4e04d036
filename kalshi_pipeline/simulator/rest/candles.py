"""The candlestick endpoints: one market (live and historical), a batch of markets, and an event.

The single-market and batch endpoints answer from `CandleCache` (each market's final candles rendered once,
windows sliced from that text), so a backfill measures the pipeline, not the simulator; the event endpoint
and `include_latest_before_start` compute their answers from the paths.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from kalshi_pipeline.simulator import payloads
from kalshi_pipeline.simulator.errors import ApiError, bad_request
from kalshi_pipeline.simulator.market_model.candles import (
    EMPTY_CANDLES,
    CandleArrays,
    candles,
    carry_candle,
    concat,
)
from kalshi_pipeline.simulator.rest.candle_cache import CandleCache
from kalshi_pipeline.simulator.rest.catalog import MAX_BATCH_TICKERS, Catalog
from kalshi_pipeline.simulator.rest.params import q_bool, q_csv, q_required_int

PERIODS = (1, 60, 1440)
"""The candle lengths Kalshi serves, in minutes."""
MAX_CANDLES = 5000
"""The most candles one market's window (or an event's candles in total) may hold."""
MAX_BATCH_CANDLES = 10_000
"""The most candles a batch request may span over all its tickers."""


class CandleEndpoints:
    """The candlestick endpoints, all computed from the markets' paths."""

    def __init__(self, catalog: Catalog) -> None:
        """Serve the candles of `catalog`'s markets."""
        self.catalog = catalog
        self.cache = CandleCache(catalog.world)

    def _window(self, request: Request, cap: int | None) -> tuple[int, int, int]:
        """`(start_ts, end_ts, period_interval)` of a request, validated (400 over `cap` candles)."""
        start = q_required_int(request, "start_ts")
        end = q_required_int(request, "end_ts")
        period = q_required_int(request, "period_interval")
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
        """A market's candles; `latest_before` prepends a carried candle when the window starts quiet."""
        game = self.catalog.world.by_market[ticker]
        if now_ms < game.open_s * 1000:
            return EMPTY_CANDLES  # nothing happened yet; do not generate the path
        path = self.catalog.world.market_path(ticker)
        arrays = candles(path, period, start, end, now_ms)
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
        if latest_before:
            arrays = self._candles(ticker, start, end, period, now_ms, latest_before)
            text = payloads.candles_json(arrays, historical=historical)
        else:
            text = self.cache.array_text(ticker, start, end, period, now_ms, historical=historical)
        return _json_bytes(b'{"ticker":' + orjson.dumps(ticker) + b',"candlesticks":' + text + b"}")

    async def market_candles(self, request: Request) -> Response:
        """`GET /series/{series}/markets/{ticker}/candlesticks` (live markets only)."""
        series_ticker = request.path_params["series_ticker"]
        ticker = request.path_params["ticker"]
        now_ms = self.catalog.world.now_ms()
        game = self.catalog.live_game(ticker, now_ms // 1000)
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
        now_ms = self.catalog.world.now_ms()
        out: list[bytes] = []
        for ticker in dict.fromkeys(tickers):
            try:
                self.catalog.live_game(ticker, now_ms // 1000)
            except ApiError:
                continue
            if latest_before:
                arrays = self._candles(ticker, start, end, period, now_ms, latest_before)
                text = payloads.candles_json(arrays)
            else:
                text = self.cache.array_text(ticker, start, end, period, now_ms, historical=False)
            out.append(
                b'{"market_ticker":' + orjson.dumps(ticker) + b',"candlesticks":' + text + b"}"
            )
        return _json_bytes(b'{"markets":[' + b",".join(out) + b"]}")

    async def event_candles(self, request: Request) -> Response:
        """`GET /series/{series}/events/{event}/candlesticks`: 5,000 candles in total, `adjusted_end_ts`."""
        series_ticker = request.path_params["series_ticker"]
        event_ticker = request.path_params["event_ticker"]
        now_ms = self.catalog.world.now_ms()
        game = self.catalog.event_game(event_ticker, now_ms // 1000)
        if game.series.series_ticker != series_ticker:
            raise bad_request(f"event {event_ticker} does not belong to series {series_ticker}")
        start, end, period = self._window(request, None)
        tickers: list[str] = []
        per_market: list[CandleArrays] = []
        if not self.catalog.world.is_archived(game, now_ms // 1000):
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
        return _json_bytes(
            orjson.dumps(
                {
                    "market_tickers": tickers,
                    "market_candlesticks": lists,
                    "adjusted_end_ts": adjusted_end,
                }
            )
        )

    async def historical_candles(self, request: Request) -> Response:
        """`GET /historical/markets/{ticker}/candlesticks` (archived markets; un-suffixed field names)."""
        ticker = request.path_params["ticker"]
        now_ms = self.catalog.world.now_ms()
        self.catalog.archived_game(ticker, now_ms // 1000)
        return self._market_candles(request, ticker, now_ms, historical=True)


def _periods_in(start: int, end: int, period_minutes: int) -> int:
    """How many period ends lie in `[start, end]`."""
    step = period_minutes * 60
    return max(0, end // step - -(-start // step) + 1)


def _json_bytes(body: bytes) -> Response:
    """A 200 answer of already-rendered JSON text."""
    return Response(body, media_type="application/json")
