"""Game market discovery: the `kalshi/markets` asset and its checks."""

import dagster as dg

from kalshi_pipeline.defs.markets.assets import markets
from kalshi_pipeline.defs.resources import default_resources

defs = dg.Definitions(assets=[markets], resources=default_resources())
