"""`GET /events`, `GET /milestones` and `GET /series`, with their single-object lookups."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kalshi_pipeline.simulator import payloads
from kalshi_pipeline.simulator.errors import bad_request, not_found
from kalshi_pipeline.simulator.rest.catalog import STATUS_FILTERS, Catalog
from kalshi_pipeline.simulator.rest.params import (
    decode_cursor,
    page,
    q_bool,
    q_csv,
    q_int,
    q_required_int,
    q_rfc3339,
    q_str,
)
from kalshi_pipeline.simulator.world import Game


class EventEndpoints:
    """The event, milestone and series endpoints."""

    def __init__(self, catalog: Catalog) -> None:
        """Serve the events of `catalog`."""
        self.catalog = catalog

    def _nested_markets(self, game: Game, now_ms: int) -> list[dict[str, Any]]:
        """An event's Market objects (none once it is archived)."""
        if self.catalog.world.is_archived(game, now_ms // 1000):
            return []
        return [self.catalog.market_payload(game, t, now_ms) for t in game.market_tickers]

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
        now_ms = self.catalog.world.now_ms()
        now_s = now_ms // 1000
        rows = []
        for game in self.catalog.visible_games(now_s):
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
        now_ms = self.catalog.world.now_ms()
        game = self.catalog.event_game(ticker, now_ms // 1000)
        markets = self._nested_markets(game, now_ms)
        nested = q_bool(request, "with_nested_markets")
        return JSONResponse(
            {
                "event": payloads.event(game, now_ms // 1000, markets if nested else None),
                "markets": markets,
            }
        )

    async def milestones(self, request: Request) -> Response:
        """`GET /milestones` (limit 1-500 required) with its documented filters."""
        limit = q_required_int(request, "limit", lo=1, hi=500)
        after = decode_cursor(request, 2)
        min_start = q_rfc3339(request, "minimum_start_date")
        category = q_str(request, "category")
        competition = q_str(request, "competition")
        kind = q_str(request, "type")
        related = q_str(request, "related_event_ticker")
        source_id = q_str(request, "source_id")
        min_updated = q_int(request, "min_updated_ts", lo=0)
        now_s = self.catalog.world.now_ms() // 1000
        rows = []
        for game in self.catalog.visible_games(now_s):
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
        game = self.catalog.world.by_milestone.get(request.path_params["milestone_id"])
        now_s = self.catalog.world.now_ms() // 1000
        if game is None or game.created_s > now_s:
            raise not_found("milestone not found")
        return JSONResponse({"milestone": payloads.milestone(game, now_s)})

    def _series_volume(self, series_ticker: str, now_ms: int) -> int:
        """The traded volume of every market of a series so far (hundredths of a contract)."""
        total = 0
        for game in self.catalog.world.games:
            if game.series.series_ticker != series_ticker or game.open_s * 1000 > now_ms:
                continue
            for ticker in game.market_tickers:
                total += self.catalog.world.market_state(ticker, now_ms).volume
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
        now_ms = self.catalog.world.now_ms()
        out = []
        for spec in self.catalog.world.series.values():
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
        spec = self.catalog.world.series.get(ticker)
        if spec is None:
            raise not_found(f"series {ticker} not found")
        volume = None
        if q_bool(request, "include_volume"):
            volume = self._series_volume(ticker, self.catalog.world.now_ms())
        return JSONResponse({"series": payloads.series(spec, volume)})
