"""The simulated exchange's WebSocket API at `/trade-api/ws/v2`, written from Kalshi's documented protocol.

Independent of the client in `kalshi_pipeline.kalshi` (no shared code): its own signature check, command
parser and message shapes. Every market event comes from the same `MarketPath` the REST layer serves, so
candles built from this stream equal the REST candles exactly.

Protocol (Kalshi's AsyncAPI as documented in 2026):

- Handshake: `KALSHI-ACCESS-KEY`, `KALSHI-ACCESS-TIMESTAMP` (ms), `KALSHI-ACCESS-SIGNATURE` (base64 RSA-PSS
  SHA-256, salt = digest length, over `timestamp + "GET" + "/trade-api/ws/v2"`). Missing headers, an unknown
  key or a bad signature -> HTTP 401. Without configured keys any well-formed signed handshake is accepted.
- Commands `subscribe`, `unsubscribe`, `update_subscription` (`add_markets`, `delete_markets`,
  `get_snapshot`), `list_subscriptions`; answers `subscribed`, `ok`, `unsubscribed`, `error` (numeric codes).
- `subscribe` takes `use_yes_price` (a boolean, else error 11): the orderbook subscription then reports
  NO-side levels in YES-leg prices (1 - the NO bid), in its snapshots and deltas; the default is false.
- Channels `ticker` (no seq), `trade`, `orderbook_delta` (`orderbook_snapshot` then `orderbook_delta`) and
  `market_lifecycle_v2`; `seq` is per sid and starts at 1; acks of `add_markets`/`delete_markets` and
  `unsubscribed` consume a seq, as measured on Kalshi's demo. Market-data envelopes carry `sending_ts_ms`
  (the exchange time the frame was sent); lifecycle messages carry no other time of their own.
- A WebSocket Ping control frame with payload `heartbeat` every 10 s.
- Maintenance (`kalshi_pipeline.simulator.maintenance`): when a window begins every session is closed (code
  1001) and handshakes are refused with HTTP 503 until it ends.

ASGI has no message for Ping frames, so the endpoint does not run as an ASGI route: uvicorn hands every
upgrade request to `connection.WsConnection` (its public `Config(ws=...)` option), which speaks the protocol
with the `websockets` library's Sans-I/O `ServerProtocol` and sends Pings with it.

Modules: `wire` (channels, error codes), `handshake` (signature check of the upgrade), `faults` (the
`ws_faults` spec below), `lifecycle` (lifecycle events by time), `messages` (market message bodies),
`session` (subscriptions, commands and the feed of one connection), `connection` (the WebSocket protocol
on the transport) and `hub` (what all sessions of one simulator share).

Fault injection (`SimulatorConfig.ws_faults`, comma-separated `key=value`):

- `ping_interval=S`: seconds between server Pings (default 10; 0 disables them).
- `disconnect_after=N`: close the connection (code 1011) after N market messages; `disconnect_times=K`
  limits it to the first K connections of the server (default 1).
- `drop_seq_after=N`: silently drop the N-th sequenced message of a connection (its seq is consumed);
  `drop_seq_channel=orderbook_delta|trade|market_lifecycle_v2` (default orderbook_delta);
  `drop_seq_times=K` connections (default 1).
- `overflow_after=N`: after N market messages send error 25 (subscription buffer overflow) on the
  trade/ticker sids and drop the next `overflow_drop=M` market messages (default 20); first connection only
  unless `overflow_times=K`. Error 25 is terminal as on Kalshi: those sids send nothing more (the client
  must subscribe again); the error frame carries the sid and, on a sequenced channel, consumes a seq.
- `foreign_lifecycle_after=N`: after N market messages send every `market_lifecycle_v2` subscription a
  `created` message of a market nobody subscribed to, whose `open_ts`/`close_ts` lie days ahead (Kalshi's
  lifecycle channel covers every market; those fields are a schedule, not the message's time). Once.
- `mute_trade_after=N`: after N market messages the connection's trade sids go silent without any error
  (their seqs keep being consumed), as a channel that silently stalls on a live socket; a new trade
  subscription is not muted. Once.
- `outage_trades=N`: after a fault disconnect, refuse handshakes (HTTP 503) until N trades printed on the
  live markets: an outage that deterministically hides trades from the stream, whatever the trade rate.
- `malformed_every=N`: send a malformed (non-JSON) text frame after every N-th market message.
- `stall_after=N`: after N market messages stop sending anything, Pings included (first connection only
  unless `stall_times=K`); the session waits for the client to give up.
"""
