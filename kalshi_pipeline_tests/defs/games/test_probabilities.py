"""Game states and win probabilities built against the simulator, checked against an independent recomputation."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest

from kalshi_pipeline.defs.candlesticks.clean import clean_candles
from kalshi_pipeline.defs.candlesticks.ingest import ingest_raw_candles
from kalshi_pipeline.defs.games.probabilities import (
    build_game_probabilities,
    market_price,
    normalize,
)
from kalshi_pipeline.defs.games.states import observe_games
from kalshi_pipeline.defs.markets.refresh import refresh_markets
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.kalshi.ratelimit import UnlimitedLimiter
from kalshi_pipeline.simulator.scoring import game_score
from kalshi_pipeline.warehouse import Warehouse, open_warehouse

T = TypeVar("T")
START = datetime(2026, 1, 20, 23, 0, tzinfo=UTC)
MAX_SPREAD = Decimal("0.10")


def with_client(base_url: str, work: Callable[[KalshiClient], Awaitable[T]]) -> T:
    async def run() -> T:
        config = KalshiConfig(base_url=base_url, rate_limit_tier="off")
        async with KalshiClient(config, limiter=UnlimitedLimiter()) as client:
            return await work(client)

    return asyncio.run(run())


@dataclass
class Built:
    sim: Any
    wh: Warehouse
    day: date
    now: datetime


@pytest.fixture(scope="module")
def built(
    start_simulator_module: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    sim = start_simulator_module(now=START, game_minutes=None, live_games=0)
    world = sim.app.state.world
    days: dict[date, int] = {}
    for g in world.games:
        if START.timestamp() - 6 * 86400 < g.settled_s < START.timestamp() - 86400:
            days[g.game_date] = days.get(g.game_date, 0) + 1
    day = min(days, key=lambda d: (days[d], d))
    path: Path = tmp_path_factory.mktemp("games") / "wh.duckdb"
    wh = open_warehouse(f"duckdb:///{path}")
    now = datetime.fromtimestamp(world.now_ms() / 1000, UTC)
    url = sim.base_url
    with_client(url, lambda c: refresh_markets(wh, c, ["KXNBAGAME"], [day], now=now))
    with_client(url, lambda c: ingest_raw_candles(wh, c, [day], now=now, preview_rows=0))
    clean_candles(wh, [day], now=now, preview_rows=0)
    try:
        yield Built(sim, wh, day, now)
    finally:
        wh.close()


def test_game_states_from_live_data_and_play_by_play(built: Built) -> None:
    done = with_client(
        built.sim.base_url, lambda c: observe_games(built.wh, c, [built.day], now=built.now)
    )
    world = built.sim.app.state.world
    games = [g for g in world.games if g.game_date == built.day]
    assert (
        done.games == len(games) and done.without_milestone == () and done.without_live_data == ()
    )
    assert (
        done.live_rows == len(games) and done.pbp_rows > 100 * len(games) and done.pbp_skipped == 0
    )
    assert done.missing_fields == dict.fromkeys(done.missing_fields, 0)
    states = built.wh.game_states([built.day])
    for game in games:
        rows = states[states["event_ticker"] == game.event_ticker]
        live = rows[rows["source"] == "live_data"].iloc[-1]
        home, away = game_score(game, world.seed).final
        assert live["status"] == "finished" and (live["home_points"], live["away_points"]) == (
            home,
            away,
        )
        assert live["winner"] == ("home" if game.home_wins else "away")
        replayed = rows[rows["source"] == "pbp"].sort_values("observed_at")
        assert (
            list(replayed["home_points"])[-1] == home and list(replayed["away_points"])[-1] == away
        )
        assert replayed["home_points"].is_monotonic_increasing


def recompute(
    markets: pd.DataFrame, candles: pd.DataFrame, states: pd.DataFrame
) -> dict[tuple[str, int], dict[str, Any]]:
    """The definition written out plainly, one market and one minute at a time."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for event, game in markets.groupby("event_ticker"):
        tickers = sorted(game["ticker"])
        per = {t: candles[candles["ticker"] == t].sort_values("end_period_ts") for t in tickers}
        minutes = sorted({int(ts.timestamp()) for t in tickers for ts in per[t]["end_period_ts"]})
        st = states[states["event_ticker"] == event].sort_values("observed_at")
        st_ts = [int(ts.timestamp()) for ts in st["observed_at"]]
        for m in minutes:
            raw: dict[str, Any] = {}
            for t in tickers:
                c = per[t]
                ts = [int(x.timestamp()) for x in c["end_period_ts"]]
                i = bisect.bisect_right(ts, m) - 1
                price, method, age = None, None, None
                if i >= 0:
                    bid, ask = c["yes_bid_close"].iloc[i], c["yes_ask_close"].iloc[i]
                    if (
                        bid is not None
                        and ask is not None
                        and bid > 0
                        and ask < 1
                        and ask - bid <= MAX_SPREAD
                    ):
                        price, method, age = (bid + ask) / 2, "mid", m - ts[i]
                    else:
                        for j in range(i, -1, -1):
                            if c["price_close"].iloc[j] is not None:
                                price, method, age = c["price_close"].iloc[j], "last", m - ts[j]
                                break
                raw[t] = (price, method, age)
            prices = {t: v[0] for t, v in raw.items() if v[0] is not None}
            total = sum(prices.values(), Decimal(0))
            complete = len(prices) == len(tickers) and total > 0
            k = bisect.bisect_right(st_ts, m) - 1
            for t in tickers:
                share = None
                if complete:
                    top = max(sorted(prices), key=lambda x: prices[x])
                    others = {
                        x: (prices[x] / total).quantize(Decimal("0.000001"), ROUND_HALF_EVEN)
                        for x in tickers
                        if x != top
                    }
                    share = others[t] if t != top else 1 - sum(others.values(), Decimal(0))
                out[(t, m)] = {
                    "method": raw[t][1],
                    "raw_price": raw[t][0],
                    "probability": share,
                    "overround": total - 1 if complete else None,
                    "quote_age_s": raw[t][2],
                    "home_points": None if k < 0 else int(st["home_points"].iloc[k]),
                    "period": None if k < 0 else int(st["period"].iloc[k]),
                }
    return out


@pytest.mark.slow
def test_table_agrees_exactly_with_the_definition(built: Built) -> None:
    with_client(
        built.sim.base_url, lambda c: observe_games(built.wh, c, [built.day], now=built.now)
    )
    done = build_game_probabilities(built.wh, [built.day], max_spread=MAX_SPREAD, now=built.now)
    stored = built.wh.game_probabilities([built.day])
    assert len(stored) == len(done.rows) > 0 and done.games == stored["event_ticker"].nunique()
    markets = built.wh.markets([built.day])
    candles = built.wh.candles("candlesticks", [built.day])
    expected = recompute(markets, candles, built.wh.game_states([built.day]))
    assert len(expected) == len(stored)
    for row in stored.to_dict("records"):
        want = expected[(row["ticker"], int(row["minute_ts"].timestamp()))]
        got = {
            k: (
                None
                if row[k] is None or (not isinstance(row[k], Decimal) and pd.isna(row[k]))
                else row[k]
            )
            for k in want
        }
        assert got == want, (row["ticker"], row["minute_ts"])
    # Every game-minute with prices sums to exactly 1; in play the state is known.
    priced = stored[stored["probability"].notna()]
    sums = priced.groupby(["event_ticker", "minute_ts"])["probability"].apply(
        lambda s: sum(s, Decimal(0))
    )
    assert set(sums) == {Decimal(1)}
    assert "mid" in set(stored["method"].dropna()) <= {"mid", "last"}
    in_play = stored[stored["status"].notna()]
    assert len(in_play) > 0 and set(in_play["status"]) <= {"live", "finished"}


def test_normalize_sums_to_one_exactly() -> None:
    raw = {"A": Decimal("0.335"), "B": Decimal("0.335"), "C": Decimal("0.335")}
    probs = normalize(raw)
    assert sum(probs.values()) == 1 and probs["B"] == probs["C"] == Decimal("0.333333")
    assert probs["A"] == Decimal("0.333334")
    two = normalize({"X": Decimal("0.62"), "Y": Decimal("0.40")})
    assert two == {"X": Decimal("0.607843"), "Y": Decimal("0.392157")}


def test_market_price_falls_back_to_the_last_trade() -> None:
    quote = {"ts": 600, "yes_bid_close": Decimal("0.40"), "yes_ask_close": Decimal("0.55")}
    trade = (540, Decimal("0.47"))
    wide = market_price(quote, trade, 660, MAX_SPREAD)
    assert (wide.raw, wide.method, wide.quote_age_s) == (Decimal("0.47"), "last", 120)
    tight = market_price({**quote, "yes_ask_close": Decimal("0.50")}, trade, 660, MAX_SPREAD)
    assert (tight.raw, tight.method, tight.quote_age_s) == (Decimal("0.45"), "mid", 60)
    one_sided = market_price({**quote, "yes_bid_close": Decimal("0")}, None, 660, MAX_SPREAD)
    assert (one_sided.raw, one_sided.method, one_sided.quote_age_s) == (None, None, None)
