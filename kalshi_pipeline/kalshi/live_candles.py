"""Live 1-minute candlesticks built from the WebSocket stream, with Kalshi's REST candle semantics.

Semantics (matched field by field to `GET /series/{s}/markets/{t}/candlesticks`):

- A candle with `end_period_ts = E` covers exchange times `(E - 60 s, E]`: `end_period_ts` is the inclusive
  period end, so a trade at 12:00:30 (or at exactly 12:01:00.000) belongs to the candle ending 12:01:00.
- A candle exists only for periods with activity: a trade or a ticker message (Kalshi sends one whenever
  any ticker field changes).
- `price_*`: open/high/low/close of the trades' YES prices in the period; `price_mean` is the volume-weighted
  mean rounded half-up to 0.0001 dollars; `price_previous` is the last trade price before the period;
  all price fields are None without trades (`price_previous` None when the market never traded).
- `yes_bid_*` / `yes_ask_*`: open is the best quote in effect when the period starts (the first quote of the
  period when there was none before), high/low include that open, close is the quote in effect at the end.
- `volume`: contracts traded in the period; `open_interest`: open interest at the end of the period.

Inputs are `TickerMessage`s (quotes, open interest) and `TradeMessage`s (prices, volume) from
`kalshi_pipeline.kalshi.ws`, plus its gap `StreamEvent`s. The first ticker message of a market (Kalshi's
initial snapshot) only seeds the state; it is not activity. A candle is `complete` when the stream covered its
whole period without a gap; incomplete candles are still emitted (fresh data is better than none) but must
be replaced by REST (the caller backfills `dirty` minutes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from kalshi_pipeline.kalshi.candles import CandleFields
from kalshi_pipeline.kalshi.ws import StreamEvent, TickerMessage, TradeMessage

PERIOD_S = 60
_PERIOD_MS = PERIOD_S * 1000
_MEAN_QUANTUM = Decimal("0.0001")

CandleKey = tuple[str, int]
"""`(market_ticker, end_period_ts)` with `end_period_ts` in Unix seconds."""


def period_end(ts_ms: int, period_s: int = PERIOD_S) -> int:
    """The `end_period_ts` (Unix s) of the period holding exchange time `ts_ms`: `(E - period, E]`."""
    period_ms = period_s * 1000
    return -(-ts_ms // period_ms) * period_s


@dataclass(frozen=True)
class LiveCandle(CandleFields):
    """One stream-built candle: the fields of a REST `Candlestick`, plus stream coverage and recency.

    Attributes:
        complete: Whether the stream covered the whole period without a gap (else REST must replace it).
        last_ts_ms: Exchange time (Unix ms) of the latest message folded into the candle.
    """

    complete: bool
    last_ts_ms: int


@dataclass
class _Quote:
    yes_bid: Decimal | None = None
    yes_ask: Decimal | None = None


@dataclass
class _Minute:
    end_ts: int
    bid_open: Decimal | None
    ask_open: Decimal | None
    bid_high: Decimal | None
    bid_low: Decimal | None
    ask_high: Decimal | None
    ask_low: Decimal | None
    bid_close: Decimal | None
    ask_close: Decimal | None
    previous: Decimal | None
    previous_ts_ms: int
    open_interest: Decimal
    price_open: Decimal | None = None
    price_high: Decimal | None = None
    price_low: Decimal | None = None
    price_close: Decimal | None = None
    volume: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    trades: int = 0
    last_ts_ms: int = 0


def _max(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return b if a is None else a if b is None else min(a, b)


@dataclass
class _MarketState:
    seeded: bool = False
    quote: _Quote = field(default_factory=_Quote)
    last_price: Decimal | None = None
    last_price_ts_ms: int = -1
    open_interest: Decimal = Decimal(0)
    covered_from_ms: int | None = None
    open_gap_since_ms: int | None = None
    minutes: dict[int, _Minute] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)


class LiveCandleBuilder:
    """Folds ticker and trade messages into 1-minute candles per market.

    Call `apply(item)` for every stream item in arrival order; it returns the candle keys it changed. Read
    candles with `candle(key)`; `gap_minutes(event)` marks the minutes a gap may have corrupted. Memory is
    bounded by `evict(before_end_ts)`, which the caller runs once older minutes are written.
    """

    def __init__(self, period_s: int = PERIOD_S) -> None:
        """Create an empty builder for periods of `period_s` seconds (Kalshi: 60, 3600, 86400)."""
        self.period_s = period_s
        self._markets: dict[str, _MarketState] = {}

    def reseed(self, tickers: Iterable[str]) -> None:
        """Forget the carried quote of `tickers` so the next ticker message (a fresh snapshot) seeds again."""
        for ticker in tickers:
            state = self._markets.get(ticker)
            if state is not None:
                state.seeded = False

    def apply(self, item: TickerMessage | TradeMessage | StreamEvent | object) -> set[CandleKey]:
        """Fold one stream item in; return the `(ticker, end_period_ts)` keys whose candle changed."""
        if isinstance(item, TradeMessage):
            return self._trade(item)
        if isinstance(item, TickerMessage):
            return self._ticker(item)
        if isinstance(item, StreamEvent) and item.kind == "gap":
            return self.gap_minutes(item)
        if isinstance(item, StreamEvent) and item.kind == "connect" and item.connection > 1:
            # Kalshi re-sends an initial ticker snapshot per market after a resubscribe.
            self.reseed(self._markets)
        return set()

    def _minute(self, state: _MarketState, end_ts: int) -> _Minute:
        minute = state.minutes.get(end_ts)
        if minute is None:
            q = state.quote
            minute = _Minute(
                end_ts=end_ts,
                bid_open=q.yes_bid,
                ask_open=q.yes_ask,
                bid_high=q.yes_bid,
                bid_low=q.yes_bid,
                ask_high=q.yes_ask,
                ask_low=q.yes_ask,
                bid_close=q.yes_bid,
                ask_close=q.yes_ask,
                previous=state.last_price,
                previous_ts_ms=state.last_price_ts_ms,
                open_interest=state.open_interest,
            )
            state.minutes[end_ts] = minute
        return minute

    def _ticker(self, msg: TickerMessage) -> set[CandleKey]:
        state = self._markets.setdefault(msg.market_ticker, _MarketState())
        if msg.ts_ms is None:
            return set()
        touched = self._close_open_gap(msg.market_ticker, state, msg.ts_ms)
        if not state.seeded:
            state.seeded = True
            state.quote = _Quote(msg.yes_bid, msg.yes_ask)
            # Kalshi reports price 0 for a market that never traded; REST then has no `previous`.
            if msg.price is not None and (msg.volume or 0) > 0:
                state.last_price = msg.price
            if msg.open_interest is not None:
                state.open_interest = msg.open_interest
            if state.covered_from_ms is None:
                state.covered_from_ms = msg.ts_ms
            return touched
        end_ts = period_end(msg.ts_ms, self.period_s)
        minute = self._minute(state, end_ts)
        state.quote = _Quote(msg.yes_bid, msg.yes_ask)
        if minute.bid_open is None and minute.ask_open is None:
            minute.bid_open, minute.ask_open = msg.yes_bid, msg.yes_ask
        minute.bid_high = _max(minute.bid_high, msg.yes_bid)
        minute.bid_low = _min(minute.bid_low, msg.yes_bid)
        minute.ask_high = _max(minute.ask_high, msg.yes_ask)
        minute.ask_low = _min(minute.ask_low, msg.yes_ask)
        minute.bid_close, minute.ask_close = msg.yes_bid, msg.yes_ask
        if msg.open_interest is not None:
            state.open_interest = msg.open_interest
            minute.open_interest = msg.open_interest
        minute.last_ts_ms = max(minute.last_ts_ms, msg.ts_ms)
        return touched | {(msg.market_ticker, end_ts)}

    def _close_open_gap(self, ticker: str, state: _MarketState, ts_ms: int) -> set[CandleKey]:
        """Mark the minutes of a gap that lasted until this message (reconnects, overflows)."""
        if state.open_gap_since_ms is None:
            return set()
        since, state.open_gap_since_ms = state.open_gap_since_ms, None
        return self._mark(
            ticker, state, period_end(since, self.period_s), period_end(ts_ms, self.period_s)
        )

    def _mark(self, ticker: str, state: _MarketState, lo: int, hi: int) -> set[CandleKey]:
        keys = set()
        for end_ts in range(lo, hi + 1, self.period_s):
            state.dirty.add(end_ts)
            keys.add((ticker, end_ts))
        return keys

    def _trade(self, msg: TradeMessage) -> set[CandleKey]:
        if msg.ts_ms is None or msg.yes_price is None:
            return set()
        state = self._markets.setdefault(msg.market_ticker, _MarketState())
        touched = self._close_open_gap(msg.market_ticker, state, msg.ts_ms)
        end_ts = period_end(msg.ts_ms, self.period_s)
        minute = self._minute(state, end_ts)
        price = msg.yes_price
        if minute.price_open is None:
            minute.price_open = price
        minute.price_high = _max(minute.price_high, price)
        minute.price_low = _min(minute.price_low, price)
        minute.price_close = price
        minute.volume += msg.count
        minute.notional += msg.count * price
        minute.trades += 1
        minute.last_ts_ms = max(minute.last_ts_ms, msg.ts_ms)
        if msg.ts_ms >= state.last_price_ts_ms:
            state.last_price, state.last_price_ts_ms = price, msg.ts_ms
        # A later minute created before this (late) trade arrived must see it as its `previous`.
        for later_end, later in state.minutes.items():
            if later_end > end_ts and msg.ts_ms >= later.previous_ts_ms:
                later.previous, later.previous_ts_ms = price, msg.ts_ms
        return touched | {(msg.market_ticker, end_ts)}

    def gap_minutes(self, event: StreamEvent) -> set[CandleKey]:
        """Mark the minutes a gap event may have corrupted as incomplete and return their keys.

        Without `since_ms` the gap reaches back to the oldest minute held. Without `until_ms` (a reconnect
        or a buffer overflow) it lasts until the next message of each market, which closes it.
        """
        if event.channel not in (None, "ticker", "trade"):
            return set()
        tickers = event.market_tickers or tuple(self._markets)
        keys: set[CandleKey] = set()
        for ticker in tickers:
            state = self._markets.setdefault(ticker, _MarketState())
            held = sorted(state.minutes)
            if event.since_ms is not None:
                lo: int | None = period_end(event.since_ms, self.period_s)
            else:
                lo = held[0] if held else None
            if lo is None:
                continue  # nothing held and no start: no minute of this market can be marked
            if event.until_ms is None:
                since = event.since_ms if event.since_ms is not None else lo * 1000
                if state.open_gap_since_ms is None or since < state.open_gap_since_ms:
                    state.open_gap_since_ms = since
                hi = held[-1] if held else lo
            else:
                hi = period_end(event.until_ms, self.period_s)
            if hi is None:
                continue
            keys |= self._mark(ticker, state, lo, hi)
        return keys

    def is_complete(self, key: CandleKey) -> bool:
        """Whether the stream saw the whole period of this candle without a gap."""
        ticker, end_ts = key
        state = self._markets.get(ticker)
        if state is None or state.covered_from_ms is None or end_ts in state.dirty:
            return False
        return (end_ts - self.period_s) * 1000 >= state.covered_from_ms

    def dirty_keys(self) -> set[CandleKey]:
        """All minutes marked by gaps (the caller backfills them from REST)."""
        return {(t, e) for t, s in self._markets.items() for e in s.dirty}

    def clear_dirty(self, keys: Iterable[CandleKey]) -> None:
        """Forget gap marks once those minutes were replaced by REST candles."""
        for ticker, end_ts in keys:
            state = self._markets.get(ticker)
            if state is not None:
                state.dirty.discard(end_ts)

    def candle(self, key: CandleKey) -> LiveCandle | None:
        """The current candle of `key`, or None when that period had no activity (or was evicted)."""
        ticker, end_ts = key
        state = self._markets.get(ticker)
        minute = state.minutes.get(end_ts) if state else None
        if minute is None:
            return None
        mean = None
        if minute.trades and minute.volume > 0:
            mean = (minute.notional / minute.volume).quantize(_MEAN_QUANTUM, rounding=ROUND_HALF_UP)
        return LiveCandle(
            ticker=ticker,
            period_interval=self.period_s // 60,
            end_period_ts=end_ts,
            price_open=minute.price_open,
            price_high=minute.price_high,
            price_low=minute.price_low,
            price_close=minute.price_close,
            price_mean=mean,
            price_previous=minute.previous,
            yes_bid_open=minute.bid_open,
            yes_bid_high=minute.bid_high,
            yes_bid_low=minute.bid_low,
            yes_bid_close=minute.bid_close,
            yes_ask_open=minute.ask_open,
            yes_ask_high=minute.ask_high,
            yes_ask_low=minute.ask_low,
            yes_ask_close=minute.ask_close,
            volume=minute.volume,
            open_interest=minute.open_interest,
            complete=self.is_complete(key),
            last_ts_ms=minute.last_ts_ms,
        )

    def evict(self, before_end_ts: int) -> int:
        """Drop minutes ending before `before_end_ts` (and their gap marks); return how many were dropped."""
        dropped = 0
        for state in self._markets.values():
            old = [e for e in state.minutes if e < before_end_ts]
            for end_ts in old:
                del state.minutes[end_ts]
            dropped += len(old)
            state.dirty = {e for e in state.dirty if e >= before_end_ts}
        return dropped
