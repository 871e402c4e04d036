"""Helpers for tests that run against the simulated exchange over a real socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

#: The settings every test simulator starts from (seed 7, two live games of 30 minutes, no rate limit, no
#: weekly maintenance window: a test must not depend on the time of day; pin `maintenance_windows` instead).
SIMULATOR_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 0,
    "seed": 7,
    "live_games": 2,
    "game_minutes": 30,
    "rate_limit": "off",
    "maintenance": None,
}

#: How long after midnight (America/New_York) the exchange must start for its injected live games, which
#: tip off up to four minutes before the start (two games), to belong to the new game date.
INJECTED_TIP_MARGIN = timedelta(minutes=5)
_GAME_TZ = ZoneInfo("America/New_York")


@contextmanager
def simulators() -> Iterator[Callable[..., Any]]:
    """Yield a factory of simulators (`SIMULATOR_DEFAULTS` plus overrides) and stop them all on exit."""
    from kalshi_pipeline.simulator import SimulatorConfig, serve_in_thread

    started: list[Any] = []

    def start(**overrides: Any) -> Any:
        running = serve_in_thread(SimulatorConfig(**{**SIMULATOR_DEFAULTS, **overrides}))
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in reversed(started):
            running.stop()


def live_tickers(sim: Any) -> list[str]:
    """The tickers of the simulator's injected games that are open right now."""
    world = sim.app.state.world
    now_s = world.now_ms() // 1000
    return [
        t
        for g in world.games
        if g.injected and g.open_s <= now_s < g.close_s
        for t in g.market_tickers
    ]


def todays_start(now: datetime | None = None) -> datetime:
    """Return a simulator start (`now=`) whose injected live games tip off on today's game date (ET).

    That is `now` (default: the wall clock), except in the first `INJECTED_TIP_MARGIN` after midnight ET,
    when the games would still belong to yesterday, which a fresh live sensor does not discover: the start
    is then that margin past midnight, and the exchange runs at most five minutes ahead of the pipeline's
    clock (the games are live from 15 minutes before tip-off, so the pipeline sees them all the same).
    """
    now = (now or datetime.now(UTC)).astimezone(_GAME_TZ)
    earliest = now.replace(hour=0, minute=0, second=0, microsecond=0) + INJECTED_TIP_MARGIN
    return max(now, earliest).astimezone(UTC)
