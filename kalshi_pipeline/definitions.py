"""The Dagster code location: every asset, check, sensor, schedule and job of kalshi_pipeline."""

import dagster as dg

from kalshi_pipeline.defs import candlesticks, live, markets, stream

defs = dg.Definitions.merge(markets.defs, candlesticks.defs, live.defs, stream.defs)
