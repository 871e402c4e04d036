"""The stream loop of one game date: WebSocket client -> live candle builder -> warehouse, REST reconciling.

`StreamRunner.run()` subscribes to `ticker`, `trade` and `market_lifecycle_v2` for the date's markets and,
until every market has settled (or the run is cancelled / `max_seconds` passes):

- writes every ticker message to `kalshi.ticks`, every trade to `kalshi.trades` and every stream event
  (connect, disconnect, gap, resync, error) to `kalshi.stream_events`, in batches of at most
  `flush_delay_s` (default 0.25 s) or `flush_rows` rows;
- folds messages into 1-minute candles and upserts the touched ones with `source = 'ws'` in the same batch,
  so the newest candle trails the exchange by about the flush delay;
- a few seconds after each minute closes, fetches the REST candles of the closed minutes it touched (and of
  minutes a gap made incomplete), validates them with the candle asset's pandera rules and writes them over
  the stream's rows (`source = 'live'`), counting stream-vs-REST mismatches of complete minutes;
- repairs every gap (a disconnect, a seq jump, a terminal error, a silent channel) completely: once the
  channel is subscribed again, the window's trades come from REST (`repair.backfill_trades`) and their
  minutes' candles are replaced by REST candles;
- watches the trade and ticker channels apart from the connection: one silent for `channel_silence_s` while
  REST shows a newer trade of our markets is subscribed again;
- polls the markets' status over REST (and listens to lifecycle messages) to stop once all have settled;
- rides out the exchange's maintenance: when the connection drops (or a handshake is refused with 503)
  while `GET /exchange/status` shows trading paused, it writes one `maintenance` row naming the window
  (`maintenance.py`) and keeps reconnecting, logging the pause's first refused handshake and, once back,
  how many it refused; the window's trades are repaired like any gap's.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from kalshi_pipeline.defs.stream.game_rows import GameFeed
from kalshi_pipeline.defs.stream.maintenance import MAINTENANCE_KIND, exchange_pause, pause_row
from kalshi_pipeline.defs.stream.repair import (
    GapLedger,
    backfill_trades,
    newest_trade_ms,
    rest_has_newer_trades,
    rest_trade_row,
)
from kalshi_pipeline.defs.stream.rows import (
    MarketInfo,
    candle_row,
    differing_fields,
    event_row,
    same_values,
    tick_row,
    trade_row,
    write_rest_candles,
)
from kalshi_pipeline.kalshi.client import KalshiClient
from kalshi_pipeline.kalshi.live_candles import CandleKey, LiveCandleBuilder
from kalshi_pipeline.kalshi.ws import (
    KalshiWebSocket,
    LifecycleMessage,
    StreamEvent,
    TickerMessage,
    TradeMessage,
)
from kalshi_pipeline.warehouse import SETTLED_STATUSES, Warehouse
from kalshi_pipeline.warehouse.errors import WarehouseError
from kalshi_pipeline.warehouse.stream import StreamWriter

log = logging.getLogger(__name__)

DEFAULT_CHANNELS = ("ticker", "trade", "market_lifecycle_v2")


@dataclass(frozen=True)
class StreamSettings:
    """Tunables of one stream run (all have production defaults)."""

    channels: tuple[str, ...] = DEFAULT_CHANNELS
    flush_delay_s: float = 0.25
    flush_rows: int = 500
    reconcile_every_s: float = 10.0
    final_delay_s: float = 3.0
    settle_poll_s: float = 30.0
    max_seconds: float | None = None
    queue_size: int = 10_000
    heartbeat_timeout_s: float = 30.0
    keep_minutes: int = 15
    write_ticks: bool = True
    max_buffered_rows: int = 50_000
    progress_every_s: float = 60.0
    channel_silence_s: float = 60.0
    silence_check_s: float = 15.0


@dataclass
class StreamSummary:
    """What one stream run did (Dagster metadata)."""

    markets: int = 0
    messages: int = 0
    ticks: int = 0
    trades: int = 0
    candles_written: int = 0
    events: dict[str, int] = field(default_factory=dict)
    reconciled_minutes: int = 0
    compared_minutes: int = 0
    mismatched_minutes: int = 0
    backfilled_gap_minutes: int = 0
    backfilled_trades: int = 0
    resubscribed_silent: int = 0
    rest_rejected: int = 0
    flushes: int = 0
    write_errors: int = 0
    latency_ms: list[float] = field(default_factory=list)
    stop_reason: str = ""
    seconds: float = 0.0
    newest_candle_ts: int | None = None
    started: float = field(default_factory=time.monotonic)


class StreamRunner:
    """Runs the stream of one game date's markets; see the module docstring."""

    def __init__(
        self,
        *,
        client_factory: Callable[[], KalshiClient],
        ws_factory: Callable[..., KalshiWebSocket],
        warehouse: Warehouse,
        game_date: date,
        event_tickers: Sequence[str],
        settings: StreamSettings | None = None,
        run_id: str = "",
        logger: Any = None,
        should_stop: Callable[[], bool] = lambda: False,
        on_progress: Callable[[StreamSummary], None] = lambda summary: None,
        game_feed: GameFeed | None = None,
    ) -> None:
        """Prepare a run; nothing connects until `run()`."""
        self.client_factory = client_factory
        self.ws_factory = ws_factory
        self.warehouse = warehouse
        self.game_date = game_date
        self.event_tickers = list(dict.fromkeys(event_tickers))
        self.settings = settings or StreamSettings()
        self.run_id = run_id
        self.log = logger or log
        self.should_stop = should_stop
        self.on_progress = on_progress
        self.game_feed = game_feed  # game states and probability rows within seconds (game_rows.py)
        self.summary = StreamSummary()
        self.builder = LiveCandleBuilder()
        self.writer = StreamWriter(
            warehouse, max_rows=self.settings.flush_rows, max_delay_s=self.settings.flush_delay_s
        )
        self.infos: dict[str, MarketInfo] = {}
        self.settled: set[str] = set()
        self._touched: set[CandleKey] = set()
        self._unreconciled: set[CandleKey] = set()
        self._pending_latency: list[int] = []
        self.gaps = GapLedger()
        self._seen_trade_ids: set[str] = set()
        self._started_ms = int(time.time() * 1000)
        self._watched_since: dict[str, int] = {}
        self.ws: KalshiWebSocket | None = None
        self._stopped_at_s: float | None = None
        self._pause_due = False  # a drop to check against the exchange's status
        self._pause_noted = False  # this disconnection's maintenance row is written
        self._refused = 0  # handshakes refused with 503 since the last connect

    async def _resolve_markets(self, client: KalshiClient) -> None:
        for event_ticker in self.event_tickers:
            event = await client.get_event(event_ticker, with_nested_markets=True)
            for market in event.markets:
                self.infos[market.ticker] = MarketInfo(
                    market.ticker, event.event_ticker, event.series_ticker, self.game_date
                )
                if market.status in SETTLED_STATUSES:
                    self.settled.add(market.ticker)
        self.summary.markets = len(self.infos)

    async def _poll_settled(self, client: KalshiClient) -> None:
        for ticker in sorted(set(self.infos) - self.settled):
            market = await client.get_market(ticker)
            if market.status in SETTLED_STATUSES:
                self.settled.add(ticker)

    def _done(self) -> bool:
        return bool(self.infos) and self.settled >= set(self.infos)

    async def run(self) -> StreamSummary:
        """Stream until every market settled, `should_stop()` is true or `max_seconds` passed."""
        started = time.monotonic()
        s = self.settings
        async with self.client_factory() as client:
            await self._resolve_markets(client)
            if not self.infos:
                self.summary.stop_reason = "no markets for these events"
                return self.summary
            if self._done():
                self.summary.stop_reason = "all markets already settled"
                return self.summary
            tickers = sorted(self.infos)
            await self._take_baseline(client)
            self.ws = ws = self.ws_factory(
                queue_size=s.queue_size, heartbeat_timeout=s.heartbeat_timeout_s
            )
            await ws.subscribe(s.channels, tickers)
            last_reconcile = last_poll = last_progress = last_watch = time.monotonic()
            last_repair = last_pause_check = 0.0
            try:
                async with ws:
                    while True:
                        if self._done():
                            self.summary.stop_reason = "all markets settled"
                            break
                        if self.should_stop():
                            self.summary.stop_reason = "stop requested"
                            break
                        if (
                            s.max_seconds is not None
                            and time.monotonic() - started >= s.max_seconds
                        ):
                            self.summary.stop_reason = f"max_seconds={s.max_seconds:g} reached"
                            break
                        if self.writer.buffered >= s.max_buffered_rows:
                            # The warehouse is slow or away: stop reading so the client's bounded
                            # queue fills (and TCP pushes back) instead of this buffer growing.
                            if not await self._flush():
                                await asyncio.sleep(1.0)
                            continue
                        try:
                            item = await ws.next_item(min(0.1, s.flush_delay_s))
                        except TimeoutError:
                            item = None
                        if item is not None:
                            self._handle(item)
                            # Drain what is already buffered without waiting, then write.
                            while not self.writer.due() and (more := ws.next_nowait()) is not None:
                                self._handle(more)
                        if self.writer.due():
                            await self._flush()
                        if self.game_feed is not None:
                            await self.game_feed.step(client)
                        now = time.monotonic()
                        if self.gaps and self._channel_back(ws) and now - last_repair >= 1.0:
                            last_repair = now  # at most one REST repair attempt per second
                            await self._repair_trades(client)
                        if self._pause_due and now - last_pause_check >= 5.0:
                            last_pause_check = now  # at most one status check per 5 s
                            await self._note_pause(client, ws)
                        if now - last_watch >= s.silence_check_s:
                            last_watch = now
                            await self._watch_channels(client, ws)
                        if now - last_reconcile >= s.reconcile_every_s:
                            last_reconcile = now
                            await self._reconcile(client, final=False)
                        if now - last_poll >= s.settle_poll_s:
                            last_poll = now
                            await self._poll_settled(client)
                        if now - last_progress >= s.progress_every_s:
                            last_progress = now
                            self.on_progress(self.summary)
            finally:
                self._sum_up_refusals(ws.connection_number)
                await self._flush()
                self._stopped_at_s = time.time()
            if self.gaps:
                await self._repair_trades(client)
            await self._reconcile(client, final=True)
        self.summary.seconds = round(time.monotonic() - started, 3)
        self.summary.flushes = self.writer.flushes
        return self.summary

    def _handle(self, item: Any) -> None:
        self.summary.messages += 1
        if isinstance(item, StreamEvent):
            self.summary.events[item.kind] = self.summary.events.get(item.kind, 0) + 1
            refused = item.kind == "error" and item.code == 503
            self._refused += refused
            if item.kind == "disconnect" or refused:
                self._pause_due = not self._pause_noted
            if refused and self._refused > 1:
                return  # only a pause's first refusal is logged (a pause lasts hours), then a sum
            warn = item.kind in ("gap", "error", "disconnect", "heartbeat_timeout")
            (self.log.warning if warn else self.log.info)(
                f"stream {item.kind} (connection {item.connection}"
                f"{', ' + item.channel if item.channel else ''}): {item.detail}"
            )
            item = self.gaps.add(item, self.infos)  # a trade gap's row names the repaired start
            self.writer.add("stream_events", event_row(item, self.run_id))
            if item.kind == "connect":
                self._pause_noted = False
                self._sum_up_refusals(item.connection)
        elif isinstance(item, TickerMessage):
            if item.market_ticker not in self.infos:
                return
            if self.settings.write_ticks:
                self.writer.add("ticks", tick_row(item))
                self.summary.ticks += 1
            self._pending_latency.append(item.received_ms)
        elif isinstance(item, TradeMessage):
            if item.market_ticker not in self.infos:
                return
            self.writer.add("trades", trade_row(item))
            self._seen_trade_ids.add(item.trade_id)
            self.gaps.delivered(item)
            self.summary.trades += 1
            self._pending_latency.append(item.received_ms)
        elif isinstance(item, LifecycleMessage):
            if item.market_ticker in self.infos and item.event_type in ("settled", "determined"):
                self.settled.add(item.market_ticker)
            return
        if self.game_feed is not None and isinstance(item, TickerMessage | TradeMessage):
            self.game_feed.observe(item)
        keys = self.builder.apply(item)
        for key in keys:
            candle = self.builder.candle(key)
            if candle is not None and key[0] in self.infos:
                self.writer.add_candle(candle_row(candle, self.infos[key[0]]))
                self._touched.add(key)
                newest = self.summary.newest_candle_ts
                self.summary.newest_candle_ts = key[1] if newest is None else max(newest, key[1])
        self._unreconciled |= {k for k in keys if k[0] in self.infos}

    def _sum_up_refusals(self, connection: int) -> None:
        """Log (and row) how many handshakes a pause refused with 503 when it had more than one."""
        if self._refused > 1:
            detail = f"{self._refused} handshakes refused (HTTP 503) during the pause"
            self.log.warning(f"stream: {detail}")
            event = StreamEvent("error", int(time.time() * 1000), connection, detail, code=503)
            self.writer.add("stream_events", event_row(event, self.run_id))
        self._refused = 0

    @staticmethod
    def _channel_back(ws: KalshiWebSocket) -> bool:
        """Whether the trade channel is subscribed on a live connection (what it misses now, it gets)."""
        return ws.connected and ws.subscriptions().get("trade") is not None

    async def _take_baseline(self, client: KalshiClient) -> None:
        """Note the exchange's newest trade before subscribing: a gap before any delivered trade starts there."""
        try:
            self.gaps.baseline_ms = await newest_trade_ms(client)
        except Exception as exc:  # without it, such a gap is repaired from the markets' first trade
            self.log.warning(f"REST check of the newest trade failed: {exc}")

    async def _repair_trades(self, client: KalshiClient) -> None:
        """Backfill the trades of the open gap windows from REST and queue their minutes for REST candles."""
        windows = self.gaps.windows()
        try:
            cutoff = (await client.get_historical_cutoff()).trades_created_ts
            found = await backfill_trades(
                client,
                windows,
                self._seen_trade_ids,
                None if cutoff is None else int(cutoff.timestamp() * 1000),
            )
        except Exception as exc:  # a REST outage must not kill the stream; retried next round
            self.log.warning(f"REST trade backfill of {len(windows)} gap windows failed: {exc}")
            return
        self.gaps.close(windows)
        for trade in found.trades:
            self.writer.add("trades", rest_trade_row(trade))
            self._seen_trade_ids.add(trade.trade_id)
        self.summary.backfilled_trades += len(found.trades)
        self._unreconciled |= found.minutes
        if found.trades:
            self.log.info(
                f"backfilled {len(found.trades)} trades the stream missed "
                f"({len(found.minutes)} minutes to replace with REST candles)"
            )

    async def _note_pause(self, client: KalshiClient, ws: KalshiWebSocket) -> None:
        """Write one `maintenance` row when the exchange's trading is paused (the drop is maintenance)."""
        try:
            pause = await exchange_pause(client)
        except Exception as exc:  # checked again at the next drop or refusal
            self.log.warning(f"REST check of the exchange status failed: {exc}")
            return
        self._pause_due = False
        if pause is None:
            return
        self._pause_noted = True
        self.summary.events[MAINTENANCE_KIND] = self.summary.events.get(MAINTENANCE_KIND, 0) + 1
        self.log.warning(f"stream: {pause.describe()}")
        self.writer.add("stream_events", pause_row(pause, self.run_id, ws.connection_number))

    async def _watch_channels(self, client: KalshiClient, ws: KalshiWebSocket) -> None:
        """Subscribe again a trade or ticker channel silent for long while REST shows it missed a trade.

        A missed trade is one of our markets' trades newer than the channel's last message (and than its
        last resubscription) that printed at least `channel_silence_s` ago: a live channel would have
        delivered it by now.
        """
        if not ws.connected:
            return
        now_ms = int(time.time() * 1000)
        silence_ms = int(self.settings.channel_silence_s * 1000)
        live = sorted(set(self.infos) - self.settled)
        for channel in ("trade", "ticker"):
            if ws.subscriptions().get(channel) is None:
                continue
            received_ms, exchange_ms = ws.channel_activity(channel)
            quiet_since = max(received_ms or 0, self._watched_since.get(channel, self._started_ms))
            if now_ms - quiet_since < silence_ms:
                continue
            after_ms = max(exchange_ms or 0, self._watched_since.get(channel, self._started_ms))
            try:
                ticker = await rest_has_newer_trades(client, live, after_ms, now_ms - silence_ms)
            except Exception as exc:  # the check is retried next round
                self.log.warning(f"REST check of the silent {channel} channel failed: {exc}")
                continue
            if ticker is None:
                continue
            self.summary.resubscribed_silent += 1
            self._watched_since[channel] = now_ms
            await ws.resubscribe(
                [channel],
                f"no {channel} message for {(now_ms - quiet_since) / 1000:.0f} s "
                f"while REST shows a newer trade of {ticker}",
            )

    async def _flush(self) -> bool:
        """Write the buffered rows (in a thread, so pings keep being answered); False when it failed."""
        try:
            written = await asyncio.to_thread(self.writer.flush)
        except WarehouseError as exc:
            # Rows stay buffered; the next flush retries. The buffer is bounded by reading less: the
            # client's queue fills and its overflow policy applies.
            self.summary.write_errors += 1
            self.log.error(f"stream write failed, will retry: {exc}")
            return False
        if not written:
            return True
        self.summary.candles_written += written.get("candlesticks_ws", 0)
        done_ms = time.time() * 1000
        self.summary.latency_ms.extend(done_ms - r for r in self._pending_latency)
        if len(self.summary.latency_ms) > 200_000:
            del self.summary.latency_ms[:100_000]
        self._pending_latency.clear()
        return True

    async def _reconcile(self, client: KalshiClient, *, final: bool) -> None:
        """Replace closed minutes the stream touched (or a gap corrupted) with REST candles."""
        now_s = int(time.time())
        horizon = now_s + 60 if final else now_s - int(self.settings.final_delay_s)
        dirty = {k for k in self.builder.dirty_keys() if k[0] in self.infos}
        keys = {k for k in self._unreconciled | dirty if k[1] <= horizon}
        if not keys:
            return
        lo, hi = min(k[1] for k in keys), max(k[1] for k in keys)
        tickers = sorted({k[0] for k in keys})
        try:
            rest = await client.get_candlesticks_batch(tickers, lo, hi, 1)
        except Exception as exc:  # a REST outage must not kill the stream; retried next round
            self.log.warning(f"REST reconcile of {len(keys)} minutes failed, will retry: {exc}")
            return
        by_key = {(t, c.end_period_ts): c for t, cs in rest.items() for c in cs}
        # Only minutes that closed while the stream was still reading can be compared with REST.
        compare_until = horizon if self._stopped_at_s is None else int(self._stopped_at_s) - 2
        for key in keys - dirty:
            live = self.builder.candle(key)
            rest_candle = by_key.get(key)
            if live is None or not live.complete or key[1] > compare_until:
                continue
            self.summary.compared_minutes += 1
            if rest_candle is None or not same_values(live, rest_candle):
                self.summary.mismatched_minutes += 1
                minute = time.strftime("%H:%MZ", time.gmtime(key[1]))
                self.log.warning(
                    f"stream candle {key[0]} {minute} differs from REST: "
                    f"{differing_fields(live, rest_candle)}"
                )
        await self._flush()
        try:
            _, rejected = await asyncio.to_thread(
                write_rest_candles, self.warehouse, rest, self.infos, lo, hi
            )
        except WarehouseError as exc:
            self.summary.write_errors += 1
            self.log.error(f"writing REST candles failed, will retry: {exc}")
            return
        self.summary.reconciled_minutes += len(keys)
        self.summary.backfilled_gap_minutes += len(keys & dirty)
        self.summary.rest_rejected += rejected
        self._unreconciled -= keys
        self.builder.clear_dirty(keys)
        self.builder.evict(now_s - 60 * self.settings.keep_minutes)


def quantiles(values: Iterable[float]) -> dict[str, float]:
    """p50/p95/p99 of a sample (empty dict when fewer than two values)."""
    data = sorted(values)
    if len(data) < 2:
        return {}
    q = statistics.quantiles(data, n=100, method="inclusive")
    return {"p50": round(q[49], 3), "p95": round(q[94], 3), "p99": round(q[98], 3)}
