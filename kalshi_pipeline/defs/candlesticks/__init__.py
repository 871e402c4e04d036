"""Per-game 1-minute candles: `kalshi/candlesticks_raw`, validated `kalshi/candlesticks` and checks."""

import dagster as dg

from kalshi_pipeline.defs.candlesticks.assets import candlesticks, candlesticks_raw
from kalshi_pipeline.defs.resources import default_resources

defs = dg.Definitions(assets=[candlesticks_raw, candlesticks], resources=default_resources())
