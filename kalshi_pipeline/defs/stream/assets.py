"""The tables only the WebSocket stream writes, as assets: the stream run reports what it wrote to them.

They are materialized by the stream run (`kalshi_stream_job`) rather than by an asset body, so they are
declared as asset specs; the run logs a materialization of each one for its game date every
`KALSHI_LIVE_PROGRESS_SECONDS` (default a minute) and when it ends, with row counts and the newest minute,
so the asset graph shows the stream's progress and freshness where Dagster users look.
"""

from __future__ import annotations

import dagster as dg

from kalshi_pipeline.defs.partitions import game_date_partitions

TICKS_KEY = dg.AssetKey(["kalshi", "ticks"])
TRADES_KEY = dg.AssetKey(["kalshi", "trades"])
STREAM_EVENTS_KEY = dg.AssetKey(["kalshi", "stream_events"])
STREAM_CANDLES_KEY = dg.AssetKey(["kalshi", "candlesticks_ws"])
_MARKETS_KEY = dg.AssetKey(["kalshi", "markets"])


def _stream_table(key: dg.AssetKey, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=key,
        deps=[_MARKETS_KEY],
        partitions_def=game_date_partitions,
        group_name="kalshi",
        kinds={"websocket"},
        description=description,
    )


stream_tables = [
    _stream_table(
        TICKS_KEY,
        "Every ticker message of the streamed markets (best bid/ask, last price, volume), as received "
        "over Kalshi's WebSocket; written by the stream run of the game date.",
    ),
    _stream_table(
        TRADES_KEY,
        "Every public trade of the streamed markets, once each (keyed by trade id); written by the stream "
        "run, with minutes it could not see filled from REST.",
    ),
    _stream_table(
        STREAM_EVENTS_KEY,
        "The stream's own history: connects, disconnects, gaps, resyncs and errors, with the affected "
        "markets and exchange-time window.",
    ),
    _stream_table(
        STREAM_CANDLES_KEY,
        "1-minute candles built from the stream, kept for the stream-vs-REST audit; kalshi.candlesticks "
        "holds them until REST replaces each closed minute.",
    ),
]
