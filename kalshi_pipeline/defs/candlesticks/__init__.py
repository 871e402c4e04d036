"""Per-game 1-minute candles: `kalshi/candlesticks_raw`, validated `kalshi/candlesticks` and their checks."""
