"""The stream's game feed: probability rows within seconds of each change, and live game states polled in-run."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import pandas as pd
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_pipeline.defs.games.probabilities import market_price, normalize
from kalshi_pipeline.defs.markets.assets import markets
from kalshi_pipeline.defs.stream.game_rows import GameFeed, _Market
from kalshi_pipeline.defs.stream.runner import StreamRunner, StreamSettings
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.kalshi.ws import KalshiWebSocket, TickerMessage, TradeMessage
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline_tests.defs.markets.helpers import resources

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
#: Longest the stream test runs while waiting for the rows it expects (a budget, not a duration).
BUDGET_S = 120.0
DAY = date(2026, 1, 20)
T0 = 1_768_900_000_000


def _ticker(ticker: str, bid: str, ask: str, ts_ms: int) -> TickerMessage:
    return TickerMessage(
        type="ticker",
        sid=1,
        seq=None,
        ts_ms=ts_ms,
        received_ms=ts_ms + 5,
        raw={},
        market_ticker=ticker,
        yes_bid=Decimal(bid),
        yes_ask=Decimal(ask),
    )


def _trade(ticker: str, price: str, ts_ms: int) -> TradeMessage:
    return TradeMessage(
        type="trade",
        sid=2,
        seq=None,
        ts_ms=ts_ms,
        received_ms=ts_ms + 5,
        raw={},
        trade_id=f"t{ts_ms}",
        market_ticker=ticker,
        yes_price=Decimal(price),
    )


def _feed() -> GameFeed:
    feed = GameFeed(
        warehouse=None,  # type: ignore[arg-type] # game_rows reads no warehouse
        game_date=DAY,
        event_tickers=["G"],
        max_spread=Decimal("0.10"),
    )
    feed.markets = {"G-AAA": _Market("G", DAY, "AAA"), "G-BBB": _Market("G", DAY, "BBB")}
    return feed


def test_stream_rows_follow_the_minute_definition() -> None:
    feed = _feed()
    feed.observe(_ticker("G-AAA", "0.40", "0.44", T0))
    feed.observe(_ticker("G-BBB", "0.55", "0.60", T0 + 1_500))
    rows = {r["ticker"]: r for r in feed.game_rows("G", T0 + 2_600)}
    assert rows["G-AAA"]["method"] == rows["G-BBB"]["method"] == "mid"
    assert rows["G-AAA"]["raw_price"] == Decimal("0.42")
    assert rows["G-BBB"]["raw_price"] == Decimal("0.575")
    assert rows["G-AAA"]["overround"] == Decimal("-0.005")
    # 0.42 / 0.995 = 0.4221105..., and the larger price takes the rest so the game sums to exactly 1.
    assert rows["G-AAA"]["probability"] == Decimal("0.422111")
    assert rows["G-BBB"]["probability"] == Decimal("0.577889")
    assert rows["G-AAA"]["quote_age_s"] == 2 and rows["G-BBB"]["quote_age_s"] == 1
    assert {r["source"] for r in rows.values()} == {"stream"}
    assert rows["G-AAA"]["minute_ts"] == pd.Timestamp(T0 + 2_600, unit="ms", tz="UTC")

    # A spread wider than the limit falls back to the last trade; without a trade there is no price.
    feed.observe(_ticker("G-BBB", "0.50", "0.70", T0 + 3_000))
    rows = {r["ticker"]: r for r in feed.game_rows("G", T0 + 3_000)}
    assert rows["G-BBB"]["method"] is None and rows["G-BBB"]["probability"] is None
    assert rows["G-AAA"]["probability"] is None and rows["G-AAA"]["raw_price"] == Decimal("0.42")
    feed.observe(_trade("G-BBB", "0.61", T0 + 4_000))
    rows = {r["ticker"]: r for r in feed.game_rows("G", T0 + 9_000)}
    assert rows["G-BBB"]["method"] == "last" and rows["G-BBB"]["raw_price"] == Decimal("0.61")
    assert rows["G-BBB"]["quote_age_s"] == 5
    assert rows["G-AAA"]["probability"] + rows["G-BBB"]["probability"] == 1


def test_feed_ignores_foreign_markets_and_marks_changed_games() -> None:
    feed = _feed()
    feed.observe(_ticker("OTHER-X", "0.40", "0.44", T0))
    assert not feed._dirty
    feed.observe(_trade("G-AAA", "0.41", T0 + 10))
    feed.observe(_ticker("G-AAA", "0.40", "0.44", T0 + 5))
    assert feed._dirty == {"G": T0 + 10}


def _recompute(
    row: pd.Series, ticks: pd.DataFrame, trades: pd.DataFrame, cutoff: pd.Timestamp
) -> tuple[Any, ...]:
    """(method, raw price, quote age) of a stream row from the ticks and trades received by `cutoff`."""
    at = row["minute_ts"]
    at_ms = int(at.value // 1_000_000)
    ticks = ticks[ticks["received_at"] <= cutoff]
    trades = trades[trades["received_at"] <= cutoff]
    quotes = ticks[(ticks["ticker"] == row["ticker"]) & (ticks["ts"] <= at)]
    latest = None
    if len(quotes):
        q = quotes.iloc[-1]
        latest = {
            "yes_bid_close": q["yes_bid"],
            "yes_ask_close": q["yes_ask"],
            "ts": int(q["ts"].value // 1_000_000),
        }
    prints = trades[(trades["ticker"] == row["ticker"]) & (trades["ts"] <= at)]
    trade = None
    if len(prints):
        newest = prints[prints["ts"] == prints["ts"].max()]
        # Trades of the same millisecond: the stream keeps the one that arrived last.
        t = newest.sort_values("received_at").iloc[-1]
        trade = (int(t["ts"].value // 1_000_000), t["yes_price"])
    price = market_price(latest, trade, at_ms, Decimal("0.10"))
    age = None if price.quote_age_s is None else price.quote_age_s // 1000
    return price.method, price.raw, age


def test_stream_run_polls_game_states_and_writes_probability_rows(
    start_simulator: Any, fresh_pg_url: str
) -> None:
    sim = start_simulator(auth_keys={"key-1": PEM})
    games = [g for g in sim.app.state.world.games if g.injected]
    day = games[0].game_date
    events = sorted(g.event_ticker for g in games if g.game_date == day)
    dg.materialize(
        [markets], resources=resources(sim.base_url, fresh_pg_url), partition_key=day.isoformat()
    )
    wh = open_warehouse(fresh_pg_url)
    feed = GameFeed(
        warehouse=wh,
        game_date=day,
        event_tickers=events,
        max_spread=Decimal("0.10"),
        state_poll_s=1.0,
    )
    feed.load_markets()
    assert {m.event_ticker for m in feed.markets.values()} == set(events)
    checked = {"at": 0.0, "done": False}

    def enough() -> bool:
        # Every game polled at least twice and priced by the stream at least three times.
        now = time.monotonic()
        if now - checked["at"] >= 1.0:
            checked["at"] = now
            counts = wh.query_df(
                "SELECT event_ticker, count(DISTINCT minute_ts) AS n FROM kalshi.game_probabilities "
                "WHERE source = 'stream' AND probability IS NOT NULL GROUP BY event_ticker"
            )
            priced = dict(zip(counts["event_ticker"], counts["n"], strict=True))
            checked["done"] = feed.stats.state_polls >= 2 and all(
                priced.get(e, 0) >= 3 for e in events
            )
        return bool(checked["done"])

    config = KalshiConfig(
        base_url=sim.base_url, api_key_id="key-1", private_key_pem=PEM, rate_limit_tier="off"
    )
    runner = StreamRunner(
        client_factory=lambda: KalshiClient(config),
        ws_factory=lambda **kw: KalshiWebSocket.from_config(config, url=sim.ws_url, **kw),
        warehouse=wh,
        game_date=day,
        event_tickers=events,
        settings=StreamSettings(max_seconds=BUDGET_S),
        should_stop=enough,
        game_feed=feed,
    )
    started = datetime.now(UTC)
    try:
        summary = asyncio.run(runner.run())
        assert summary.stop_reason == "stop requested", summary.stop_reason

        states = wh.game_states([day], event_tickers=events)
        polled = states[(states["source"] == "live_data") & (states["observed_at"] >= started)]
        assert set(polled["event_ticker"]) == set(events)
        assert (polled.groupby("event_ticker").size() >= 2).all()
        assert set(polled["status"]) == {"live"} and polled["clock"].notna().all()

        probs = wh.game_probabilities([day], event_tickers=events)
        stream = probs[probs["source"] == "stream"].sort_values(["minute_ts", "ticker"])
        assert len(stream) and set(stream["event_ticker"]) == set(events)
        # Stamped at the exchange time of a change, not on the minute.
        assert (stream["minute_ts"] != stream["minute_ts"].dt.floor("min")).any()
        priced = stream[stream["probability"].notna()]
        sums = priced.groupby(["event_ticker", "minute_ts"])["probability"].apply(
            lambda p: sum(p, Decimal(0))
        )
        assert (sums == 1).all()
        assert priced["probability"].between(0, 1).all()
        # The state beside a priced row is the newest poll at or before it (the first polls come first).
        stated = priced[priced["state_observed_at"].notna()]
        assert len(stated) and set(stated["status"]) == {"live"}
        assert (stated["state_observed_at"] <= stated["minute_ts"]).all()

        # Each row follows the definition recomputed from the ticks and stream trades stored beside it, as
        # received up to some moment before the row was written (a message of another market stamped
        # before the row's time may arrive after it; the game's next row then reflects it).
        ticks = wh.query_df(
            "SELECT ticker, ts, received_at, yes_bid, yes_ask FROM kalshi.ticks "
            "WHERE yes_bid IS NOT NULL AND yes_ask IS NOT NULL ORDER BY ticker, ts"
        )
        trades = wh.query_df(
            "SELECT ticker, ts, received_at, yes_price FROM kalshi.trades WHERE source = 'ws'"
        )
        for _, row in stream.iterrows():
            got = (row["method"], row["raw_price"], row["quote_age_s"])
            got = tuple(None if v is None or pd.isna(v) else v for v in got)
            mine = pd.concat(
                [
                    ticks[ticks["ticker"] == row["ticker"]]["received_at"],
                    trades[trades["ticker"] == row["ticker"]]["received_at"],
                ]
            )
            cutoffs = sorted(set(mine[mine <= row["ingested_at"]]), reverse=True)
            assert any(got == _recompute(row, ticks, trades, c) for c in cutoffs[:200]), (
                row["ticker"],
                row["minute_ts"],
                got,
            )
        for (_, at), game in priced.groupby(["event_ticker", "minute_ts"]):
            raw = dict(zip(game["ticker"], game["raw_price"], strict=True))
            assert dict(zip(game["ticker"], game["probability"], strict=True)) == normalize(raw)
            assert set(game["overround"]) == {sum(raw.values(), Decimal(0)) - 1}, at
    finally:
        wh.close()
