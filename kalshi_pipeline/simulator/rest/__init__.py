"""The REST endpoints of the simulated exchange, grouped by resource; `app.build_app` mounts them.

- `params`: query-parameter parsing, cursors and pagination.
- `catalog`: which games and markets are visible at an instant, and their Market objects.
- `markets`: `/markets`, `/markets/{ticker}` and their historical counterparts.
- `events`: `/events`, `/milestones` and `/series`.
- `candles`: the four candlestick endpoints.
- `trades`: `/markets/trades` and `/historical/trades`.
- `orderbooks`: `/markets/{ticker}/orderbook` and `/markets/orderbooks`.
- `exchange`: `/exchange/status`, `/historical/cutoff` and the simulator's own `/_sim/health`, `/_sim/stats`.
"""
