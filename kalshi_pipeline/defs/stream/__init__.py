"""Kalshi WebSocket streaming: the long-running stream job, its run request, and the stream-vs-REST audit.

- `stream_job` (`kalshi_stream_job`): one op streaming one game date's markets until they settle; launched by
  `live_games_sensor` through `stream_run_request(game_date, event_tickers)` when
  `KALSHI_LIVE_MODE=websocket`.
- `stream_vs_rest`: asset check on `kalshi/candlesticks` comparing complete stream-built minutes with REST.
"""

import dagster as dg

from kalshi_pipeline.defs.resources import default_resources
from kalshi_pipeline.defs.stream.checks import stream_vs_rest
from kalshi_pipeline.defs.stream.jobs import (
    STREAM_JOB_NAME,
    StreamConfig,
    stream_job,
    stream_run_request,
)

defs = dg.Definitions(
    jobs=[stream_job], asset_checks=[stream_vs_rest], resources=default_resources()
)

__all__ = [
    "STREAM_JOB_NAME",
    "StreamConfig",
    "defs",
    "stream_job",
    "stream_run_request",
    "stream_vs_rest",
]
