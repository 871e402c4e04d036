"""The local Kalshi exchange: a deterministic synthetic NBA world served over Kalshi's REST API.

```python
from kalshi_pipeline.simulator import SimulatorConfig, serve_in_thread

with serve_in_thread(SimulatorConfig(port=0, live_games=2, game_minutes=30)) as sim:
    print(sim.base_url)   # http://127.0.0.1:PORT/trade-api/v2
```

This package never imports `kalshi_pipeline.kalshi`: the wire format is written independently.
"""

from kalshi_pipeline.simulator.app import SimulatorApp, build_app
from kalshi_pipeline.simulator.config import RATE_LIMIT_TIERS, SimulatorConfig
from kalshi_pipeline.simulator.market_model.game_path import GamePath
from kalshi_pipeline.simulator.market_model.path import (
    BookLadder,
    MarketPath,
    QuoteChange,
    TradePrint,
)
from kalshi_pipeline.simulator.server import RunningSimulator, serve_in_thread
from kalshi_pipeline.simulator.world import Game, World

__all__ = [
    "RATE_LIMIT_TIERS",
    "BookLadder",
    "Game",
    "GamePath",
    "MarketPath",
    "QuoteChange",
    "RunningSimulator",
    "SimulatorApp",
    "SimulatorConfig",
    "TradePrint",
    "World",
    "build_app",
    "serve_in_thread",
]
