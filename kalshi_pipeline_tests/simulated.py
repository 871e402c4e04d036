"""Helpers for tests that run against the simulated exchange over a real socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: The settings every test simulator starts from (seed 7, two live games of 30 minutes, no rate limit).
SIMULATOR_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 0,
    "seed": 7,
    "live_games": 2,
    "game_minutes": 30,
    "rate_limit": "off",
}


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
