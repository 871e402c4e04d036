"""Kalshi WebSocket streaming: the long-running stream job, its run request, its tables and the stream audit.

- `stream_job` (`kalshi_stream_job`): one op streaming one game date's markets until they settle; launched by
  `live_games_sensor` through `stream_run_request(game_date, event_tickers)` in websocket mode.
- `stream_vs_rest`: asset check on `kalshi/candlesticks` comparing complete stream-built minutes with REST.
"""
