"""Gap windows start at the newest delivered trade; their trades come from REST, behind the cutoff too."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from kalshi_pipeline.defs.stream.repair import (
    GapLedger,
    GapWindow,
    backfill_trades,
    rest_trade_row,
)
from kalshi_pipeline.defs.stream.rows import MarketInfo
from kalshi_pipeline.defs.stream.runner import StreamRunner
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.kalshi.models import Trade
from kalshi_pipeline.kalshi.parsing import unix_ms
from kalshi_pipeline.kalshi.ws import KalshiWebSocket, StreamEvent, TradeMessage
from kalshi_pipeline.warehouse import open_warehouse

MARKETS = ("M-A", "M-B")


def _gap(channel: str | None, since_ms: int | None) -> StreamEvent:
    return StreamEvent(
        kind="gap",
        at_ms=10_000,
        connection=1,
        channel=channel,
        market_tickers=MARKETS,
        since_ms=since_ms,
    )


def _delivered(trade: Trade, ticker: str) -> TradeMessage:
    """The stream's message of a trade REST returned."""
    ts_ms = unix_ms(trade.created_time)
    return TradeMessage(
        type="trade",
        sid=2,
        seq=None,
        ts_ms=ts_ms,
        received_ms=ts_ms + 5,
        raw={},
        trade_id=trade.trade_id,
        market_ticker=ticker,
        yes_price=trade.yes_price_dollars,
        no_price=trade.no_price_dollars,
        count=trade.count_fp,
        taker_outcome_side=trade.taker_outcome_side,
    )


def _trade(ts_ms: int) -> TradeMessage:
    return TradeMessage(
        type="trade", sid=2, seq=1, ts_ms=ts_ms, received_ms=ts_ms + 5, raw={}, trade_id="t1"
    )


def test_a_trade_gap_starts_at_the_newest_delivered_trade_when_the_client_says_later() -> None:
    ledger = GapLedger()
    ledger.delivered(_trade(1_000))
    ledger.delivered(_trade(900))  # an older one arriving late does not move the start back
    # The client's start came from a later message of another channel (a ticker or lifecycle message
    # stamped after a trade still on its way): the trade at 1_000 < t < 3_000 would be lost.
    event = ledger.add(_gap("trade", 3_000), MARKETS)
    assert event.since_ms == 1_000
    assert ledger.windows() == [GapWindow(frozenset(MARKETS), 1_000)]


def test_a_trade_gap_keeps_the_client_start_when_it_is_earlier() -> None:
    ledger = GapLedger()
    ledger.delivered(_trade(5_000))  # delivered after the client had dropped older messages
    assert ledger.add(_gap("trade", 2_000), MARKETS).since_ms == 2_000


def test_a_trade_gap_before_any_trade_starts_at_the_baseline() -> None:
    ledger = GapLedger()
    assert ledger.add(_gap("trade", None), MARKETS).since_ms is None  # nothing known: everything
    ledger = GapLedger()
    ledger.baseline_ms = 700
    assert ledger.add(_gap("trade", None), MARKETS).since_ms == 700
    # The client's start (its subscribe command) is later than the baseline: trades printed between the
    # baseline and the subscription reached neither the stream nor the window otherwise.
    assert ledger.add(_gap("trade", 900), MARKETS).since_ms == 700
    assert ledger.add(_gap("trade", 600), MARKETS).since_ms == 600


def test_only_trade_gaps_open_trade_windows() -> None:
    ledger = GapLedger()
    ticker_gap = _gap("ticker", 100)
    assert ledger.add(ticker_gap, MARKETS) is ticker_gap
    assert ledger.add(_gap("orderbook_delta", 100), MARKETS).since_ms == 100
    assert not ledger
    ledger.add(_gap("trade", 2_000), ("M-B", "M-X"))  # a market not ours is ignored
    ledger.add(_gap("trade", 1_500), ("M-A",))
    assert sorted(ledger.windows(), key=lambda w: w.since_ms or 0) == [
        GapWindow(frozenset({"M-A"}), 1_500),
        GapWindow(frozenset({"M-B"}), 2_000),
    ]
    ledger.add(_gap("trade", 1_800), ("M-A", "M-B"))  # the earliest start wins per market
    windows = ledger.windows()
    assert sorted(windows, key=lambda w: w.since_ms or 0) == [
        GapWindow(frozenset({"M-A"}), 1_500),
        GapWindow(frozenset({"M-B"}), 1_800),
    ]
    ledger.close(windows)
    assert not ledger


#: The simulator's historical cutoff is UTC midnight 90 days back: 2025-12-01, when this game's markets
#: were open (they trade from 2025-11-30 to 2025-12-02).
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STRADDLING_EVENT = "KXNBAGAME-25DEC01SACDEN"


def test_a_window_behind_the_trades_cutoff_is_repaired_from_historical_trades(
    start_simulator: Any, tmp_path: Path
) -> None:
    sim = start_simulator(now=NOW, live_games=0)
    ticker = f"{STRADDLING_EVENT}-DEN"
    config = KalshiConfig(base_url=sim.base_url, rate_limit_tier="off")

    async def scenario() -> None:
        async with KalshiClient(config) as client:
            cutoff = (await client.get_historical_cutoff()).trades_created_ts
            assert cutoff is not None
            cutoff_ms = int(cutoff.timestamp() * 1000)
            since_ms = cutoff_ms - 3_600_000
            window = GapWindow(frozenset({ticker}), since_ms)
            live = [t async for t in client.iter_trades(ticker, min_ts=since_ms // 1000)]
            old = [t async for t in client.iter_historical_trades(ticker, min_ts=since_ms // 1000)]
            assert old and live, "the market trades on both sides of the cutoff"
            assert all(unix_ms(t.created_time) < cutoff_ms for t in old)
            assert all(unix_ms(t.created_time) >= cutoff_ms for t in live)

            seen = {live[0].trade_id}
            found = await backfill_trades(client, [window], seen, cutoff_ms)
            assert {t.trade_id for t in found.trades} == {t.trade_id for t in old + live} - seen
            assert len(found.trades) == len(old) + len(live) - 1  # each once
            assert found.minutes >= {
                (ticker, -(-unix_ms(t.created_time) // 60_000) * 60) for t in old[:3]
            }
            # A window after the cutoff asks only /markets/trades.
            after = GapWindow(frozenset({ticker}), cutoff_ms + 60_000)
            later = await backfill_trades(client, [after], set(), cutoff_ms)
            assert later.fetched == len(
                [t async for t in client.iter_trades(ticker, min_ts=(cutoff_ms + 60_000) // 1000)]
            )

            # The runner's repair asks the cutoff and stores both parts.
            runner = StreamRunner(
                client_factory=lambda: KalshiClient(config),
                ws_factory=lambda **kw: KalshiWebSocket.from_config(config, **kw),
                warehouse=wh,
                game_date=date(2025, 12, 1),
                event_tickers=[STRADDLING_EVENT],
            )
            runner.gaps.add(_gap("trade", since_ms), {ticker})
            await runner._repair_trades(client)
            assert not runner.gaps
            assert runner.summary.backfilled_trades == len(old) + len(live)
            runner.writer.flush()
            stored = wh.query_df("SELECT trade_id, source FROM kalshi.trades")
            assert set(stored.trade_id) == {t.trade_id for t in old + live}
            assert set(stored.source) == {"rest"}

            # A repaired trade that the resumed stream delivers too is stored once, as the stream's row
            # (written in a later batch, or in the same one).
            runner.infos[ticker] = MarketInfo(
                ticker, STRADDLING_EVENT, "KXNBAGAME", date(2025, 12, 1)
            )
            late, same_batch = live[0], live[1]
            runner._handle(_delivered(late, ticker))
            runner.writer.flush()
            runner.writer.add("trades", rest_trade_row(same_batch))
            runner._handle(_delivered(same_batch, ticker))
            runner.writer.flush()
            stored = wh.query_df("SELECT trade_id, source FROM kalshi.trades")
            assert stored.trade_id.is_unique and len(stored) == len(old) + len(live)
            by_id = dict(zip(stored.trade_id, stored.source, strict=True))
            assert (by_id[late.trade_id], by_id[same_batch.trade_id]) == ("ws", "ws")

    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    wh.ensure_schema()
    try:
        asyncio.run(scenario())
    finally:
        wh.close()
