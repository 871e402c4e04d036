"""The stream runner loses nothing on a strict simulator: terminal errors, foreign lifecycle, outages, silence."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_pipeline.defs.stream.runner import StreamRunner, StreamSettings
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.kalshi.ws import KalshiWebSocket
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline_tests.simulated import live_tickers

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
#: Longest a stream test runs while waiting for the events it provokes (a budget, not a duration).
BUDGET_S = 120.0


def _runner(sim: Any, wh: Any, settings: StreamSettings, should_stop: Any) -> StreamRunner:
    config = KalshiConfig(
        base_url=sim.base_url, api_key_id="key-1", private_key_pem=PEM, rate_limit_tier="off"
    )
    games = [g for g in sim.app.state.world.games if g.injected]
    return StreamRunner(
        client_factory=lambda: KalshiClient(config),
        ws_factory=lambda **kw: KalshiWebSocket.from_config(
            config, url=sim.ws_url, backoff_initial=0.5, backoff_max=1.0, **kw
        ),
        warehouse=wh,
        game_date=games[0].game_date,
        event_tickers=[g.event_ticker for g in games if g.game_date == games[0].game_date],
        settings=settings,
        should_stop=should_stop,
    )


async def _rest_trades(sim: Any, tickers: list[str]) -> pd.DataFrame:
    config = KalshiConfig(
        base_url=sim.base_url, api_key_id="key-1", private_key_pem=PEM, rate_limit_tier="off"
    )
    rows = []
    async with KalshiClient(config) as client:
        for ticker in tickers:
            async for t in client.iter_trades(ticker):
                rows.append({"trade_id": t.trade_id, "ts": pd.Timestamp(t.created_time)})
    return pd.DataFrame(rows, columns=["trade_id", "ts"])


def test_terminal_error_foreign_lifecycle_and_outage_lose_no_trade(
    start_simulator: Any, fresh_pg_url: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    n = len(live_tickers(start_simulator(auth_keys={"key-1": PEM}, now=now)))
    # On the first connection: the initial ticker snapshots (one per market) are messages 1..n; the
    # foreign market's lifecycle message follows the first of them; error 25 ends the ticker and trade
    # sids at message n+1; the client subscribes them again (n snapshots: messages n+2..2n+1); the next
    # message drops the connection, and handshakes are refused until a trade printed meanwhile.
    faults = (
        f"foreign_lifecycle_after=1,overflow_after={n + 1},overflow_drop=0,"
        f"disconnect_after={2 * n + 2},outage_trades=1"
    )
    sim = start_simulator(auth_keys={"key-1": PEM}, now=now, ws_faults=faults)
    tickers = live_tickers(sim)
    wh = open_warehouse(fresh_pg_url)
    wh.ensure_schema()

    def repaired() -> bool:
        s = runner.summary
        return (
            s.events.get("connect", 0) >= 2
            # the terminal error's ticker and trade gaps, then the reconnect's
            and s.events.get("gap", 0) >= 4
            and s.backfilled_trades >= 1
            and not runner.gaps
            and runner.writer.buffered == 0
        )

    runner = _runner(
        sim,
        wh,
        StreamSettings(max_seconds=BUDGET_S, reconcile_every_s=1.0, final_delay_s=0.0),
        repaired,
    )
    summary = asyncio.run(runner.run())
    try:
        fired = sim.app.state.ws_hub.stats.faults_fired
        assert "foreign_lifecycle" in fired and "disconnect" in fired, fired
        assert any(f.startswith("terminal error 25") for f in fired), fired
        assert summary.stop_reason == "stop requested", summary.stop_reason

        events = wh.query_df(
            "SELECT kind, channel, code, detail, event_at, since_ts, until_ts "
            "FROM kalshi.stream_events ORDER BY event_at"
        )
        # The trade channel comes back within 10 s of the terminal error, on the same connection.
        error_at = events[(events.kind == "error") & (events.code == 25)].event_at.min()
        back = events[
            (events.kind == "resync")
            & events.detail.str.contains("again")
            & events.detail.str.contains("trade")
        ]
        assert len(back) >= 1
        assert (back.event_at.min() - error_at).total_seconds() < 10
        terminal_gaps = events[(events.kind == "gap") & (events.code == 25)]
        assert set(terminal_gaps.channel) == {"ticker", "trade"}
        # The outage is a row: a gap of the trade channel starting before the disconnect.
        disconnect_at = events[events.kind == "disconnect"].event_at.min()
        outage = events[
            (events.kind == "gap") & (events.channel == "trade") & (events.event_at > disconnect_at)
        ]
        assert len(outage) == 1
        since = outage.since_ts.iloc[0]
        assert since is not None and not pd.isna(since) and since <= disconnect_at, (
            "the gap starts at the last message, not at a lifecycle schedule days ahead"
        )

        # Every trade the exchange printed after the stream subscribed (the first ticker snapshot's time is
        # the subscription's: the simulator answers the ticker and trade channels at one instant), up to the
        # last stored one, is stored, exactly once, under its exchange trade id.
        stored = wh.query_df("SELECT trade_id, ticker, ts, source FROM kalshi.trades")
        assert stored.trade_id.is_unique
        rest = asyncio.run(_rest_trades(sim, tickers))
        subscribed = wh.query_df("SELECT min(ts) AS ts FROM kalshi.ticks").ts.iloc[0]
        expected = rest[(rest.ts > subscribed) & (rest.ts <= stored.ts.max())]
        missing = set(expected.trade_id) - set(stored.trade_id)
        assert not missing, f"{len(missing)} trades never stored"
        assert set(stored.trade_id) <= set(rest.trade_id)
        # The trades the stream never delivered came from REST (a trade REST returned that the resumed
        # stream then delivered too is stored once, as the stream's row), and they lie in the trade gaps'
        # windows: a window starts at the newest trade delivered before its break (REST's `min_ts` is in
        # whole seconds), so none reaches back to trades the stream delivered, or that printed before it
        # subscribed, even when a ticker message or the foreign lifecycle message was stamped later than a
        # trade still on its way.
        backfilled = stored[stored.source == "rest"]
        assert 1 <= len(backfilled) <= summary.backfilled_trades
        trade_gaps = events[(events.kind == "gap") & (events.channel == "trade")]
        assert trade_gaps.since_ts.notna().all(), (
            "a trade gap's start is known (the stream's baseline)"
        )
        early = backfilled[backfilled.ts < trade_gaps.since_ts.min().floor("s")]
        assert early.empty, f"REST-filled trades before every trade gap: {early.to_dict('records')}"
        # The outage hid at least one trade (handshakes were refused until one printed): it came from REST.
        assert (backfilled.ts >= since.floor("s")).any()

        # The outage minutes' candles are REST's: every minute of a backfilled trade has a REST candle.
        candles = wh.query_df(
            "SELECT ticker, end_period_ts, source, volume FROM kalshi.candlesticks "
            "WHERE period_interval = 1"
        )
        minutes = {
            (t, (ts.ceil("min") if ts != ts.floor("min") else ts))
            for t, ts in zip(backfilled.ticker, backfilled.ts, strict=True)
        }
        live = {
            (t, e)
            for t, e, s in zip(candles.ticker, candles.end_period_ts, candles.source, strict=True)
            if s == "live"
        }
        assert minutes <= live, minutes - live
    finally:
        wh.close()


def test_a_silent_trade_channel_is_resubscribed_and_its_trades_backfilled(
    start_simulator: Any, fresh_pg_url: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    n = len(live_tickers(start_simulator(auth_keys={"key-1": PEM}, now=now)))
    # The trade sid goes silent (no error, the socket and the ticker channel stay alive) after the first
    # market message that follows the initial ticker snapshots (one per market, sent on subscribe).
    sim = start_simulator(auth_keys={"key-1": PEM}, now=now, ws_faults=f"mute_trade_after={n + 1}")
    wh = open_warehouse(fresh_pg_url)
    wh.ensure_schema()

    def repaired() -> bool:
        s = runner.summary
        return (
            s.resubscribed_silent >= 1
            and s.events.get("gap", 0) >= 1
            and s.backfilled_trades >= 1
            and not runner.gaps
            and runner.writer.buffered == 0
        )

    runner = _runner(
        sim,
        wh,
        StreamSettings(
            max_seconds=BUDGET_S,
            reconcile_every_s=1.0,
            final_delay_s=0.0,
            # Far above the stream's delivery delay (and the pinned exchange clock's lag behind ours).
            channel_silence_s=5.0,
            silence_check_s=0.5,
        ),
        repaired,
    )
    summary = asyncio.run(runner.run())
    try:
        assert "mute_trade" in sim.app.state.ws_hub.stats.faults_fired
        assert summary.stop_reason == "stop requested", summary.stop_reason
        assert summary.events.get("connect", 0) == 1, "the socket itself never dropped"
        events = wh.query_df("SELECT kind, channel, detail FROM kalshi.stream_events")
        silent = events[(events.kind == "gap") & events.detail.str.contains("REST shows")]
        assert list(silent.channel) == ["trade"]
        stored = wh.query_df("SELECT trade_id, ts, source FROM kalshi.trades")
        rest = asyncio.run(_rest_trades(sim, live_tickers(sim)))
        assert summary.backfilled_trades >= 1 and (stored.source == "rest").sum() >= 1
        expected = rest[rest.ts <= stored.ts.max()]
        first = stored.ts.min()
        assert not set(expected[expected.ts >= first].trade_id) - set(stored.trade_id)
    finally:
        wh.close()
