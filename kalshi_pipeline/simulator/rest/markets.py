"""`GET /markets`, `GET /markets/{ticker}` and their historical counterparts (archived markets)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kalshi_pipeline.simulator import payloads
from kalshi_pipeline.simulator.errors import bad_request
from kalshi_pipeline.simulator.rest.catalog import STATUS_FILTERS, Catalog
from kalshi_pipeline.simulator.rest.params import decode_cursor, q_csv, q_int, q_str
from kalshi_pipeline.simulator.world import Game


class MarketEndpoints:
    """The market listing and lookup endpoints, live and historical."""

    def __init__(self, catalog: Catalog) -> None:
        """Serve the markets of `catalog`."""
        self.catalog = catalog

    async def markets(self, request: Request) -> Response:
        """`GET /markets` with Kalshi's filters, their compatibility rules and cursor pagination."""
        limit = q_int(request, "limit", default=100, lo=0, hi=1000) or 100
        after = decode_cursor(request, 2)
        now_ms = self.catalog.world.now_ms()
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
            for game in self.catalog.visible_games(now_s):
                if event_ticker and game.event_ticker != event_ticker:
                    continue
                if series_ticker and game.series.series_ticker != series_ticker:
                    continue
                if self.catalog.world.is_archived(game, now_s):
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
        return self.catalog.markets_page(games, ticker_set, after, limit, now_ms)

    def _one_market(self, request: Request, lookup: Callable[[str, int], Game]) -> Response:
        """`{"market": ...}` for the path's ticker, found by `_live_game` or `_archived_game`."""
        ticker = request.path_params["ticker"]
        now_ms = self.catalog.world.now_ms()
        game = lookup(ticker, now_ms // 1000)
        return JSONResponse({"market": self.catalog.market_payload(game, ticker, now_ms)})

    async def market_one(self, request: Request) -> Response:
        """`GET /markets/{ticker}` (404 for unknown and archived markets)."""
        return self._one_market(request, self.catalog.live_game)

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
        now_ms = self.catalog.world.now_ms()
        now_s = now_ms // 1000
        ticker_set = set(tickers) if tickers else None
        games: list[Game] = []
        for game in self.catalog.world.games:
            if not self.catalog.world.is_archived(game, now_s):
                continue
            if event_ticker and game.event_ticker != event_ticker:
                continue
            if series_ticker and game.series.series_ticker != series_ticker:
                continue
            games.append(game)
        return self.catalog.markets_page(games, ticker_set, after, limit, now_ms)

    async def historical_market(self, request: Request) -> Response:
        """`GET /historical/markets/{ticker}`."""
        return self._one_market(request, self.catalog.archived_game)
