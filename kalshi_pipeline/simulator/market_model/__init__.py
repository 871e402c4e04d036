"""The market model: every quote change and trade of a game's two markets, generated from the seed.

Everything the exchange serves is derived from the timestamped events of a `MarketPath`, so snapshots, order
books, trades and candlesticks agree with each other. Units inside the model are integers: prices in "pips"
of 0.0001 dollars (0..10000), counts in hundredths of a contract, times in Unix ms.

- `prices`: the tick grid (`tapered_deci_cent`) and quoting around a fair value.
- `draws`: seeded random draws shared by the generators.
- `flow`: a market's trade flow and a finished market's summary, both without generating the path.
- `game_path`: `GamePath`, the generation of a game's two complementary markets.
- `path`: `MarketPath` and what it answers: `events_between(t0_ms, t1_ms)` (`QuoteChange` / `TradePrint`
  with `t0_ms < ts_ms <= t1_ms`, a quote change before a trade of the same millisecond), `book_at(t_ms)`
  (a `BookLadder` of YES and NO bids), `quote_at(t_ms)`, `state_at(t_ms)` (`MarketState`), `trade_id(i)`.
- `candles`: `CandleArrays` of a `MarketPath` for any period and window.
"""
