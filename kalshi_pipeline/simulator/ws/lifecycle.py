"""Every lifecycle instant of every market (created, close time updated, determined, settled), by time."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from kalshi_pipeline.simulator.world import Game, World


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One lifecycle instant of one market (`event_type` as `market_lifecycle_v2` names it)."""

    ts_ms: int
    ticker: str
    event_type: str
    game: Game


class LifecycleIndex:
    """All lifecycle instants of all markets, sorted, for range queries."""

    def __init__(self, world: World) -> None:
        """Index the four lifecycle instants of every market of `world`."""
        events: list[LifecycleEvent] = []
        for game in world.games:
            for ticker in game.market_tickers:
                for ts, kind in (
                    (game.created_s, "created"),
                    (game.close_s, "close_date_updated"),
                    (game.determined_s, "determined"),
                    (game.settled_s, "settled"),
                ):
                    events.append(LifecycleEvent(ts * 1000, ticker, kind, game))
        events.sort(key=lambda e: (e.ts_ms, e.ticker))
        self.events = events
        self.times = [e.ts_ms for e in events]

    def between(self, t0_ms: int, t1_ms: int) -> list[LifecycleEvent]:
        """The events with `t0_ms < ts_ms <= t1_ms`, in time order."""
        lo = bisect.bisect_right(self.times, t0_ms)
        hi = bisect.bisect_right(self.times, t1_ms)
        return self.events[lo:hi]
