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
- polls the markets' status over REST (and listens to lifecycle messages) to stop once all have settled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from kalshi_pipeline.defs.candlesticks.validation import PARSED_COLUMNS, to_table, validate_candles
from kalshi_pipeline.kalshi.candles import Candlestick
from kalshi_pipeline.kalshi.client import KalshiClient
from kalshi_pipeline.kalshi.live_candles import CandleKey, LiveCandle, LiveCandleBuilder
from kalshi_pipeline.kalshi.ws import (
    KalshiWebSocket,
    LifecycleMessage,
    StreamEvent,
    TickerMessage,
    TradeMessage,
)
from kalshi_pipeline.warehouse import SETTLED_STATUSES, Warehouse
from kalshi_pipeline.warehouse.errors import WarehouseError
from kalshi_pipeline.warehouse.schema import (
    CANDLE_VALUE_COLUMNS,
    CANDLESTICKS,
    CANDLESTICKS_RAW,
    CANDLESTICKS_REJECTED,
)
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


@dataclass(frozen=True)
class MarketInfo:
    """What a candle row needs to know about its market."""

    ticker: str
    event_ticker: str
    series_ticker: str
    game_date: date


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
    rest_rejected: int = 0
    flushes: int = 0
    write_errors: int = 0
    latency_ms: list[float] = field(default_factory=list)
    stop_reason: str = ""
    seconds: float = 0.0
    newest_candle_ts: int | None = None
    started: float = field(default_factory=time.monotonic)


def candle_row(candle: LiveCandle, info: MarketInfo) -> dict[str, Any]:
    """A `kalshi.candlesticks_ws` row for a stream-built candle."""
    row: dict[str, Any] = {
        "ticker": candle.ticker,
        "event_ticker": info.event_ticker,
        "series_ticker": info.series_ticker,
        "game_date": info.game_date,
        "period_interval": candle.period_interval,
        "end_period_ts": pd.Timestamp(candle.end_period_ts, unit="s", tz="UTC"),
    }
    for name in CANDLE_VALUE_COLUMNS:
        row[name] = getattr(candle, name)
    row["complete"] = candle.complete
    row["last_event_ts"] = (
        pd.Timestamp(candle.last_ts_ms, unit="ms", tz="UTC") if candle.last_ts_ms else None
    )
    return row


def _ts(ms: int | None) -> pd.Timestamp | None:
    return None if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC")


def event_row(event: StreamEvent, run_id: str) -> dict[str, Any]:
    """A `kalshi.stream_events` row."""
    return {
        "event_id": str(uuid.uuid4()),
        "run_id": run_id,
        "event_at": _ts(event.at_ms),
        "kind": event.kind,
        "connection": event.connection,
        "channel": event.channel,
        "sid": event.sid,
        "market_tickers": ",".join(event.market_tickers) or None,
        "since_ts": _ts(event.since_ms),
        "until_ts": _ts(event.until_ms),
        "code": event.code,
        "detail": event.detail[:2000],
    }


def tick_row(msg: TickerMessage) -> dict[str, Any]:
    """A `kalshi.ticks` row."""
    return {
        "ticker": msg.market_ticker,
        "ts": _ts(msg.ts_ms if msg.ts_ms is not None else msg.received_ms),
        "received_at": _ts(msg.received_ms),
        "price": msg.price,
        "yes_bid": msg.yes_bid,
        "yes_ask": msg.yes_ask,
        "yes_bid_size": msg.yes_bid_size,
        "yes_ask_size": msg.yes_ask_size,
        "volume": msg.volume,
        "open_interest": msg.open_interest,
    }


def trade_row(msg: TradeMessage) -> dict[str, Any]:
    """A `kalshi.trades` row (`source = 'ws'`)."""
    return {
        "trade_id": msg.trade_id or f"ws:{msg.market_ticker}:{msg.ts_ms}:{msg.count}",
        "ticker": msg.market_ticker,
        "ts": _ts(msg.ts_ms if msg.ts_ms is not None else msg.received_ms),
        "received_at": _ts(msg.received_ms),
        "yes_price": msg.yes_price,
        "no_price": msg.no_price,
        "count": msg.count,
        "taker_outcome_side": msg.taker_outcome_side or msg.taker_side,
        "taker_book_side": msg.taker_book_side,
        "is_block_trade": msg.is_block_trade,
        "source": "ws",
    }


def same_values(live: LiveCandle, rest: Candlestick) -> bool:
    """Whether a stream-built candle equals the REST candle in every price and count field."""
    return not differing_fields(live, rest)


def differing_fields(live: LiveCandle, rest: Candlestick | None) -> str:
    """The fields where a stream-built candle and the REST candle differ, as `name ws->rest` (one line)."""
    if rest is None:
        return "REST has no candle for this minute"
    return ", ".join(
        f"{name} {getattr(live, name)}->{getattr(rest, name)}"
        for name in CANDLE_VALUE_COLUMNS
        if getattr(live, name) != getattr(rest, name)
    )


def write_rest_candles(
    warehouse: Warehouse,
    candles: dict[str, list[Candlestick]],
    infos: dict[str, MarketInfo],
    lo: int,
    hi: int,
) -> tuple[int, int]:
    """Replace the window `[lo, hi]` (Unix s) of these markets with REST candles; return (valid, rejected).

    Raw payloads go to `candlesticks_raw`, rows passing the candle asset's pandera rules to `candlesticks`
    (`source = 'live'`), the others to `candlesticks_rejected` with their payload; stream rows REST does
    not have are removed.
    """
    now = pd.Timestamp.now(tz="UTC").floor("s")
    raw_rows: list[dict[str, Any]] = []
    parsed: list[dict[str, Any]] = []
    for ticker, items in candles.items():
        info = infos[ticker]
        for c in items:
            base = {
                "ticker": ticker,
                "event_ticker": info.event_ticker,
                "series_ticker": info.series_ticker,
                "game_date": info.game_date,
                "period_interval": c.period_interval,
                "end_period_ts": c.end_period_ts,
                "source": "live",
            }
            base["payload"] = json.dumps(c.raw, separators=(",", ":"))
            raw_rows.append(base)
            parsed.append({**base, **{n: getattr(c, n) for n in CANDLE_VALUE_COLUMNS}})
    cols = list(PARSED_COLUMNS)
    frame = pd.DataFrame(parsed, columns=cols)
    valid, rejected = validate_candles(frame, set(infos)) if len(frame) else (frame, frame)

    tickers = sorted(candles)
    with warehouse.transaction() as tx:
        tx.delete_candles("candlesticks", tickers, lo, hi, period_interval=1, source="ws")
        if raw_rows:
            tx.upsert(
                "candlesticks_raw",
                to_table(pd.DataFrame(raw_rows), CANDLESTICKS_RAW.column_names, now),
            )
        if len(valid):
            tx.upsert("candlesticks", to_table(valid, CANDLESTICKS.column_names, now))
        if len(rejected):
            tx.upsert(
                "candlesticks_rejected", to_table(rejected, CANDLESTICKS_REJECTED.column_names, now)
            )
    return len(valid), len(rejected)


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
        self.ws: KalshiWebSocket | None = None
        self._stopped_at_s: float | None = None

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
            self.ws = ws = self.ws_factory(
                queue_size=s.queue_size, heartbeat_timeout=s.heartbeat_timeout_s
            )
            await ws.subscribe(s.channels, tickers)
            last_reconcile = last_poll = last_progress = time.monotonic()
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
                        now = time.monotonic()
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
                await self._flush()
                self._stopped_at_s = time.time()
            await self._reconcile(client, final=True)
        self.summary.seconds = round(time.monotonic() - started, 3)
        self.summary.flushes = self.writer.flushes
        return self.summary

    def _handle(self, item: Any) -> None:
        self.summary.messages += 1
        if isinstance(item, StreamEvent):
            self.summary.events[item.kind] = self.summary.events.get(item.kind, 0) + 1
            level = (
                "warning"
                if item.kind in ("gap", "error", "disconnect", "heartbeat_timeout")
                else "info"
            )
            getattr(self.log, level)(
                f"stream {item.kind} (connection {item.connection}"
                f"{', ' + item.channel if item.channel else ''}): {item.detail}"
            )
            self.writer.add("stream_events", event_row(item, self.run_id))
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
            self.summary.trades += 1
            self._pending_latency.append(item.received_ms)
        elif isinstance(item, LifecycleMessage):
            if item.market_ticker in self.infos and item.event_type in ("settled", "determined"):
                self.settled.add(item.market_ticker)
            return
        keys = self.builder.apply(item)
        for key in keys:
            candle = self.builder.candle(key)
            if candle is not None and key[0] in self.infos:
                self.writer.add_candle(candle_row(candle, self.infos[key[0]]))
                self._touched.add(key)
                newest = self.summary.newest_candle_ts
                self.summary.newest_candle_ts = key[1] if newest is None else max(newest, key[1])
        self._unreconciled |= {k for k in keys if k[0] in self.infos}

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
