"""Game market discovery: the `kalshi/markets` asset and its checks."""
