"""What the REST endpoints can see of the world at an instant: visible games, lookups that 404, Market objects."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.responses import JSONResponse, Response

from kalshi_pipeline.simulator import payloads
from kalshi_pipeline.simulator.errors import not_found
from kalshi_pipeline.simulator.rest.params import page
from kalshi_pipeline.simulator.world import Game, World

STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "unopened": ("initialized",),
    "open": ("active",),
    "paused": ("inactive",),
    "closed": ("closed", "determined", "disputed", "amended"),
    "settled": ("finalized",),
}
"""The `status` filter values of `/markets` and `/events` and the object statuses each one selects."""
MAX_BATCH_TICKERS = 100
"""The most tickers one batch request (candlesticks, order books) may name."""


class Catalog:
    """The games and markets of one `World` as the REST API exposes them."""

    def __init__(self, world: World) -> None:
        """Serve `world`; finalized Market objects are cached (they never change again)."""
        self.world = world
        self._final_markets: dict[str, dict[str, Any]] = {}

    def market_payload(self, game: Game, ticker: str, now_ms: int) -> dict[str, Any]:
        """The Market object of one of a game's markets at `now_ms`."""
        cached = self._final_markets.get(ticker)
        if cached is not None:
            return cached
        payload = payloads.market(self.world, game, ticker, now_ms)
        if payload["status"] == "finalized":
            self._final_markets[ticker] = payload
        return payload

    def markets_page(
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
            {"markets": [self.market_payload(g, t, now_ms) for g, t in chosen], "cursor": cursor}
        )

    def live_game(self, ticker: str, now_s: int) -> Game:
        """The game of a market the live endpoints serve (404 if unknown, not yet created or archived)."""
        game = self.world.by_market.get(ticker)
        if game is None or game.created_s > now_s or self.world.is_archived(game, now_s):
            raise not_found(f"market {ticker} not found")
        return game

    def archived_game(self, ticker: str, now_s: int) -> Game:
        """The game of a market the historical endpoints serve (404 unless archived)."""
        game = self.world.by_market.get(ticker)
        if game is None or not self.world.is_archived(game, now_s):
            raise not_found(f"historical market {ticker} not found")
        return game

    def event_game(self, event_ticker: str, now_s: int) -> Game:
        """The game of an event (404 if unknown or not yet created)."""
        game = self.world.by_event.get(event_ticker)
        if game is None or game.created_s > now_s:
            raise not_found(f"event {event_ticker} not found")
        return game

    def visible_games(self, now_s: int) -> list[Game]:
        """Every game whose event exists at `now_s`, newest first."""
        return [g for g in self.world.games if g.created_s <= now_s]
