"""`GET /markets/{ticker}/orderbook` and `GET /markets/orderbooks`: the resting bids of live markets."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kalshi_pipeline.simulator import payloads
from kalshi_pipeline.simulator.errors import ApiError, bad_request
from kalshi_pipeline.simulator.rest.catalog import MAX_BATCH_TICKERS, Catalog
from kalshi_pipeline.simulator.rest.params import q_int


class OrderbookEndpoints:
    """The order book endpoints (YES and NO bid ladders)."""

    def __init__(self, catalog: Catalog) -> None:
        """Serve the books of `catalog`'s markets."""
        self.catalog = catalog

    def _book(self, ticker: str, now_ms: int, depth: int) -> dict[str, Any]:
        """The `orderbook_fp` object of a live market (404 otherwise)."""
        self.catalog.live_game(ticker, now_ms // 1000)
        return payloads.orderbook(self.catalog.world.book_at(ticker, now_ms, max(depth, 0)))

    async def orderbook(self, request: Request) -> Response:
        """`GET /markets/{ticker}/orderbook` (`depth` 0-100, 0 = all levels)."""
        depth = q_int(request, "depth", default=0, hi=100) or 0
        book = self._book(request.path_params["ticker"], self.catalog.world.now_ms(), depth)
        return JSONResponse({"orderbook_fp": book})

    async def orderbooks(self, request: Request) -> Response:
        """`GET /markets/orderbooks?tickers=A&tickers=B` (1-100 tickers)."""
        tickers = [t for t in request.query_params.getlist("tickers") if t]
        if not tickers:
            raise bad_request("tickers is required")
        if len(tickers) > MAX_BATCH_TICKERS:
            raise bad_request(f"at most {MAX_BATCH_TICKERS} tickers per request")
        now_ms = self.catalog.world.now_ms()
        out = []
        for ticker in dict.fromkeys(tickers):
            try:
                out.append({"ticker": ticker, "orderbook_fp": self._book(ticker, now_ms, 0)})
            except ApiError:
                continue
        return JSONResponse({"orderbooks": out})
