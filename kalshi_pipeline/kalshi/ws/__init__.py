"""Kalshi WebSocket client: signed handshake, typed messages, seq tracking, resyncs and reconnects.

```python
from kalshi_pipeline.kalshi.ws import KalshiWebSocket, TickerMessage

ws = KalshiWebSocket.from_config(config)
await ws.subscribe(["ticker", "trade"], ["KXNBAGAME-25DEC19SASATL-ATL"])
async with ws:
    async for item in ws:
        ...
```

Modules: `client` (the session's public API and its reconnect loop), `dispatch` (each received frame: seq
checks, gaps, resyncs, books), `messages` (typed frames, `parse_message`, `StreamEvent`), `orderbook`
(`OrderbookReplica`), and the client's parts `connection` (the watched socket, `StreamStats`), `buffer` (the
consumer's bounded buffer), `subscriptions` (channels, sids, seqs) and `commands` (command ids and answers).
Errors live in `kalshi_pipeline.kalshi.errors`; URLs in `kalshi_pipeline.kalshi.config`.
"""

from kalshi_pipeline.kalshi.ws.buffer import OverflowPolicy
from kalshi_pipeline.kalshi.ws.client import KalshiWebSocket, Signer
from kalshi_pipeline.kalshi.ws.connection import StreamStats
from kalshi_pipeline.kalshi.ws.messages import (
    ControlMessage,
    EventKind,
    LifecycleMessage,
    OrderbookDelta,
    OrderbookSnapshot,
    StreamEvent,
    StreamItem,
    TickerMessage,
    TradeMessage,
    UnknownMessage,
    WsMessage,
    exchange_ts_ms,
    parse_message,
)
from kalshi_pipeline.kalshi.ws.orderbook import OrderbookReplica
from kalshi_pipeline.kalshi.ws.subscriptions import CHANNELS, UNFILTERED_CHANNELS

__all__ = [
    "CHANNELS",
    "UNFILTERED_CHANNELS",
    "ControlMessage",
    "EventKind",
    "KalshiWebSocket",
    "LifecycleMessage",
    "OrderbookDelta",
    "OrderbookReplica",
    "OrderbookSnapshot",
    "OverflowPolicy",
    "Signer",
    "StreamEvent",
    "StreamItem",
    "StreamStats",
    "TickerMessage",
    "TradeMessage",
    "UnknownMessage",
    "WsMessage",
    "exchange_ts_ms",
    "parse_message",
]
