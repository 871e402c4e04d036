"""`GET /markets/trades` (since the historical cutoff) and `GET /historical/trades` (before it)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kalshi_pipeline.simulator import payloads
from kalshi_pipeline.simulator.rest.catalog import Catalog
from kalshi_pipeline.simulator.rest.params import decode_cursor, encode_cursor, q_bool, q_int, q_str


class TradeEndpoints:
    """The trade listings, newest first, merged over every market they cover."""

    def __init__(self, catalog: Catalog) -> None:
        """Serve the trades of `catalog`'s markets."""
        self.catalog = catalog

    def _trades(self, request: Request, historical: bool) -> Response:
        """One page of trades after (`historical=False`) or before the historical cutoff."""
        limit = q_int(request, "limit", default=100, lo=0, hi=1000) or 100
        after = decode_cursor(request, 3)
        ticker = q_str(request, "ticker")
        min_ts = q_int(request, "min_ts", lo=0)
        max_ts = q_int(request, "max_ts", lo=0)
        block = q_bool(request, "is_block_trade")
        now_ms = self.catalog.world.now_ms()
        now_s = now_ms // 1000
        cutoff_ms = self.catalog.world.cutoff_s(now_s) * 1000
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
            game = self.catalog.world.by_market.get(ticker)
            games = [game] if game is not None and game.created_s <= now_s else []
        else:
            games = [
                g
                for g in self.catalog.world.games
                if g.open_s * 1000 <= hi_ms and g.close_s * 1000 > lo_ms
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
            path = self.catalog.world.game_path(game)
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
