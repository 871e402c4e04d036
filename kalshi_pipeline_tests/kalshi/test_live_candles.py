"""Tests of the stream-built 1-minute candles: semantics, gaps, and exact equality with REST candles."""

from __future__ import annotations

import asyncio
import time
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.kalshi.auth import KalshiSigner
from kalshi_pipeline.kalshi.candles import Candlestick
from kalshi_pipeline.kalshi.live_candles import LiveCandle, LiveCandleBuilder, period_end
from kalshi_pipeline.kalshi.ws import KalshiWebSocket, StreamEvent, TickerMessage, TradeMessage
from kalshi_pipeline_tests.kalshi.conftest import KeyPair

D = Decimal
T = "KXNBAGAME-25DEC19SASATL-ATL"
NOON = int(datetime(2025, 12, 19, 12, 0, tzinfo=UTC).timestamp()) * 1000


def _frame(kind: str, sid: int, ts_ms: int) -> dict[str, Any]:
    """The `WsMessage` fields of an unsequenced frame of market `T` received the instant it was sent."""
    return {
        "type": kind,
        "sid": sid,
        "seq": None,
        "ts_ms": ts_ms,
        "received_ms": ts_ms,
        "raw": {},
        "market_ticker": T,
    }


def ticker(
    ts_ms: int,
    bid: str,
    ask: str,
    *,
    price: str = "0.5000",
    volume: str = "10.00",
    oi: str = "5.00",
) -> TickerMessage:
    return TickerMessage(
        **_frame("ticker", 1, ts_ms),
        price=D(price),
        yes_bid=D(bid),
        yes_ask=D(ask),
        volume=D(volume),
        open_interest=D(oi),
    )


def trade(ts_ms: int, price: str, count: str) -> TradeMessage:
    return TradeMessage(
        **_frame("trade", 2, ts_ms),
        yes_price=D(price),
        count=D(count),
    )


def test_end_period_ts_is_the_inclusive_period_end() -> None:
    assert period_end(NOON + 30_000) == NOON // 1000 + 60  # 12:00:30 -> candle ending 12:01:00
    assert period_end(NOON + 60_000) == NOON // 1000 + 60  # exactly 12:01:00.000 -> same candle
    assert period_end(NOON + 60_001) == NOON // 1000 + 120
    assert period_end(NOON) == NOON // 1000


def test_candle_fields_follow_rest_semantics() -> None:
    b = LiveCandleBuilder()
    assert (
        b.apply(ticker(NOON - 5_000, "0.4800", "0.5200", price="0.4900", oi="5.00")) == set()
    )  # seed
    end = NOON // 1000 + 60
    b.apply(trade(NOON + 10_000, "0.5200", "2.00"))
    b.apply(ticker(NOON + 10_000, "0.4800", "0.5200", price="0.5200", volume="12.00", oi="7.00"))
    b.apply(ticker(NOON + 20_000, "0.5000", "0.5400"))
    b.apply(ticker(NOON + 25_000, "0.4600", "0.5300"))
    b.apply(trade(NOON + 30_000, "0.4600", "1.00"))
    b.apply(trade(NOON + 60_000, "0.4700", "1.00"))  # 12:01:00.000 is still this candle
    b.apply(ticker(NOON + 60_000, "0.4600", "0.5300", oi="9.00"))
    candle = b.candle((T, end))
    assert candle is not None
    assert (candle.price_open, candle.price_high, candle.price_low, candle.price_close) == (
        D("0.52"),
        D("0.52"),
        D("0.46"),
        D("0.47"),
    )
    # Volume-weighted mean, rounded half-up to 0.0001: (1.04 + 0.46 + 0.47) / 4 = 0.4925.
    assert candle.price_mean == D("0.4925") and candle.volume == D("4.00")
    assert candle.price_previous == D("0.4900")
    assert (candle.yes_bid_open, candle.yes_bid_high, candle.yes_bid_low, candle.yes_bid_close) == (
        D("0.48"),
        D("0.50"),
        D("0.46"),
        D("0.46"),
    )
    assert (candle.yes_ask_open, candle.yes_ask_high, candle.yes_ask_low, candle.yes_ask_close) == (
        D("0.52"),
        D("0.54"),
        D("0.52"),
        D("0.53"),
    )
    assert candle.open_interest == D("9.00")
    # The stream started inside the previous minute, so this minute is complete; no earlier minute exists.
    assert candle.complete and b.candle((T, end - 60)) is None
    # A quiet minute has no candle; the next active one carries the close as `previous`.
    b.apply(ticker(NOON + 150_000, "0.4500", "0.5300"))
    later = b.candle((T, NOON // 1000 + 180))
    assert later is not None and later.price_open is None and later.price_previous == D("0.47")
    assert later.volume == 0 and later.yes_bid_open == D("0.46") and later.yes_bid_low == D("0.45")


def test_never_traded_market_has_no_previous_price() -> None:
    b = LiveCandleBuilder()
    b.apply(ticker(NOON - 1_000, "0.4000", "0.6000", price="0.0000", volume="0.00", oi="0.00"))
    b.apply(ticker(NOON + 5_000, "0.4100", "0.6000", price="0.0000", volume="0.00", oi="0.00"))
    candle = b.candle((T, NOON // 1000 + 60))
    assert candle is not None and candle.price_previous is None and candle.open_interest == 0


def test_gaps_mark_minutes_incomplete_until_the_next_message() -> None:
    b = LiveCandleBuilder()
    b.apply(ticker(NOON - 1_000, "0.4000", "0.6000"))
    b.apply(trade(NOON + 5_000, "0.4100", "1.00"))
    seq_gap = StreamEvent(
        "gap",
        at_ms=0,
        connection=1,
        channel="trade",
        market_tickers=(T,),
        since_ms=NOON + 5_000,
        until_ms=NOON + 70_000,
    )
    assert b.apply(seq_gap) == {(T, NOON // 1000 + 60), (T, NOON // 1000 + 120)}
    gapped = b.candle((T, NOON // 1000 + 60))
    assert gapped is not None and not gapped.complete
    # A reconnect gap has no end yet: it closes at the market's first message of the new connection.
    b.apply(StreamEvent("connect", at_ms=0, connection=2))
    b.apply(
        StreamEvent(
            "gap",
            at_ms=0,
            connection=2,
            channel="ticker",
            market_tickers=(T,),
            since_ms=NOON + 200_000,
            until_ms=None,
        )
    )
    touched = b.apply(
        ticker(NOON + 330_000, "0.4000", "0.6000")
    )  # the re-sent snapshot only reseeds
    assert (T, NOON // 1000 + 360) in touched and (T, NOON // 1000 + 240) in b.dirty_keys()
    assert b.candle((T, NOON // 1000 + 360)) is None
    b.clear_dirty(b.dirty_keys())
    assert b.dirty_keys() == set()
    assert b.evict(NOON // 1000 + 120) == 1


# --------------------------------------------------------------------------- stream vs REST, over sockets

VALUE_FIELDS = [f.name for f in fields(LiveCandle) if f.name not in ("complete", "last_ts_ms")]


def same(live: LiveCandle, rest: Candlestick) -> bool:
    return all(getattr(live, name) == getattr(rest, name) for name in VALUE_FIELDS)


class Window:
    """The minute both streams must cover in full: it is chosen once both have their first snapshots."""

    def __init__(self, streams: int, tickers: list[str]) -> None:
        self.streams = streams
        self.tickers = set(tickers)
        self.seeded_ms: list[int] = []
        self.until_ms: int | None = None

    def seeded(self, snapshot_ms: int) -> None:
        """One stream has a snapshot of every market, the newest sent at `snapshot_ms` (exchange time)."""
        self.seeded_ms.append(snapshot_ms)
        if len(self.seeded_ms) == self.streams:
            # The first minute that starts after both streams' snapshots, and a moment for its last frames.
            self.until_ms = (self.boundary() + 60) * 1000 + 1500

    def boundary(self) -> int:
        """The start (Unix seconds) of the minute compared: the first minute start after every snapshot."""
        return -(-max(self.seeded_ms) // 60_000) * 60

    def open(self, sim_ms: int) -> bool:
        """Whether a stream whose exchange clock reads `sim_ms` must keep reading."""
        return self.until_ms is None or sim_ms < self.until_ms


async def stream_into_builder(
    sim: Any, signer: KalshiSigner, tickers: list[str], window: Window
) -> tuple[LiveCandleBuilder, list[StreamEvent]]:
    builder = LiveCandleBuilder()
    seen: list[StreamEvent] = []
    snapshots: dict[str, int] = {}
    seeded = False
    ws = KalshiWebSocket(sim.ws_url, signer=signer.sign, backoff_initial=0.05, backoff_max=0.2)
    await ws.subscribe(["ticker", "trade"], tickers)
    world = sim.app.state.world
    async with ws:
        while window.open(world.now_ms()):
            try:
                item = await ws.next_item(0.5)
            except TimeoutError:
                continue
            if isinstance(item, StreamEvent):
                seen.append(item)
            if isinstance(item, TickerMessage) and item.ts_ms is not None and not seeded:
                snapshots.setdefault(item.market_ticker, item.ts_ms)
                if set(snapshots) >= window.tickers:
                    seeded = True
                    window.seeded(max(snapshots.values()))
            builder.apply(item)
    return builder, seen


@pytest.mark.slow
def test_stream_candles_equal_rest_candles_and_faults_lose_nothing(
    start_simulator: Any, key_pair: KeyPair
) -> None:
    # Both exchanges' clocks start a few seconds before a minute; the minute compared is the first that
    # starts after both streams have their first snapshots (a minute covered only in part is rightly
    # incomplete), so on a busy machine that seeds slowly the test compares the next minute instead.
    wall = int(time.time())
    now = datetime.fromtimestamp((wall // 60 + 1) * 60 - 8, UTC)
    common = {"now": now, "auth_keys": {"key-1": key_pair.pkcs8_pem}, "live_games": 2}
    signer = KalshiSigner("key-1", key_pair.private_key)
    clean = start_simulator(**common)
    faulty = start_simulator(
        **common,
        ws_faults="disconnect_after=40,drop_seq_after=30,drop_seq_channel=trade,"
        "overflow_after=150,overflow_drop=6,malformed_every=50",
    )
    world = clean.app.state.world
    tickers = [t for g in world.games if g.injected for t in g.market_tickers]
    window = Window(streams=2, tickers=tickers)

    async def both() -> tuple[
        tuple[LiveCandleBuilder, list[StreamEvent]], tuple[LiveCandleBuilder, list[StreamEvent]]
    ]:
        return await asyncio.gather(
            stream_into_builder(clean, signer, tickers, window),
            stream_into_builder(faulty, signer, tickers, window),
        )

    (clean_b, clean_events), (faulty_b, faulty_events) = asyncio.run(both())
    boundary = window.boundary()
    closed_end = boundary + 60

    async def rest() -> dict[str, list[Candlestick]]:
        config = KalshiConfig(base_url=clean.base_url, rate_limit_tier="off")
        async with KalshiClient(config) as client:
            return await client.get_candlesticks_batch(tickers, boundary - 120, closed_end, 1)

    rest_candles = asyncio.run(rest())
    compared = 0
    for market in tickers:
        by_end = {c.end_period_ts: c for c in rest_candles[market]}
        assert closed_end in by_end, "live games trade every minute"
        # Clean stream: the fully covered minute equals REST exactly; the partial first one is flagged.
        live = clean_b.candle((market, closed_end))
        assert live is not None and live.complete
        assert same(live, by_end[closed_end]), (live, by_end[closed_end])
        compared += 1
        first = clean_b.candle((market, boundary))
        assert first is None or not first.complete
        # Faulty stream: every REST minute is either reproduced exactly or flagged for REST backfill.
        for end, rest_candle in by_end.items():
            if end <= boundary:
                continue
            key = (market, end)
            if key in faulty_b.dirty_keys():
                continue
            candle = faulty_b.candle(key)
            assert candle is not None and candle.complete, f"{key} was lost without a gap mark"
            assert same(candle, rest_candle), (candle, rest_candle)
    assert compared == len(tickers)
    kinds = {e.kind for e in faulty_events}
    assert {"disconnect", "gap", "error"} <= kinds
    assert faulty_b.dirty_keys(), "the injected faults must have been detected"
    assert not clean_b.dirty_keys() and not [e for e in clean_events if e.kind == "gap"]
