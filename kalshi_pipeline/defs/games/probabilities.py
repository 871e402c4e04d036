"""Win probabilities per game and minute from the stored candles and game states (no API calls here).

The definition, exact in decimals, for every minute `m` at which any market of a game has a 1-minute candle
in `kalshi.candlesticks`:

- per market, its latest candle ending at or before `m`: when both sides of its book exist (`yes_bid_close`
  above 0, `yes_ask_close` below 1) and the spread `ask - bid` is at most `max_spread`, the raw price is the
  mid `(bid + ask) / 2` (method `mid`); else the `price_close` of its latest candle at or before `m` that
  has one, the last trade (method `last`); else no price (method NULL). `quote_age_s` is `m` minus the end
  of the candle the price came from.
- when every market of the game has a price and they sum to more than 0: `overround = sum - 1`, and each
  probability is `raw / sum` rounded half-even to 6 decimals, except the market with the largest raw price
  (first ticker on ties), which takes `1 - the others`, so a game's probabilities sum to exactly 1. When a
  market has no price, the game's probabilities and overround at `m` are NULL (the raw prices are kept).
- the game state is the newest `kalshi.game_states` row of the game observed at or before `m`.

These rows have `source = 'candles'`. In websocket mode the stream run also writes rows with
`source = 'stream'` (see `defs/stream/game_rows.py`): the same definition applied to the stream's newest
quotes and trades within seconds of a change, `minute_ts` being the exchange time of that change. Readers of
the per-minute series (and any recomputation of this definition) select `source = 'candles'`
(`minute_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pandas as pd

from kalshi_pipeline.warehouse import Warehouse
from kalshi_pipeline.warehouse.games import MINUTE_SOURCE, replace_game_probabilities
from kalshi_pipeline.warehouse.schema import GAME_PROBABILITIES

PROBABILITY_QUANTUM = Decimal("0.000001")

#: The candle columns the definition reads.
CANDLE_COLUMNS = (
    "ticker",
    "event_ticker",
    "game_date",
    "end_period_ts",
    "yes_bid_close",
    "yes_ask_close",
    "price_close",
)
STATE_COLUMNS = ("status", "period", "clock", "home_points", "away_points")
OUTPUT_COLUMNS = tuple(c for c in GAME_PROBABILITIES.column_names if c != "ingested_at")


@dataclass(frozen=True)
class MarketPrice:
    """One market's raw price at a minute, how it was found and how old its source candle is."""

    raw: Decimal | None
    method: str | None
    quote_age_s: int | None


def market_price(
    latest: dict[str, Any] | None,
    last_trade: tuple[int, Decimal] | None,
    minute_s: int,
    max_spread: Decimal,
) -> MarketPrice:
    """The raw price of one market at `minute_s` from its latest candle and its latest trade price."""
    if latest is not None:
        bid, ask = latest["yes_bid_close"], latest["yes_ask_close"]
        if bid is not None and ask is not None and bid > 0 and ask < 1 and ask - bid <= max_spread:
            return MarketPrice((bid + ask) / 2, "mid", minute_s - latest["ts"])
    if last_trade is not None:
        return MarketPrice(last_trade[1], "last", minute_s - last_trade[0])
    return MarketPrice(None, None, None)


def normalize(raw: dict[str, Decimal]) -> dict[str, Decimal]:
    """Probabilities summing to exactly 1: proportional shares, the largest taking the rounding rest."""
    total = sum(raw.values(), Decimal(0))
    anchor = max(sorted(raw), key=lambda t: raw[t])
    out = {
        t: (v / total).quantize(PROBABILITY_QUANTUM, rounding=ROUND_HALF_EVEN)
        for t, v in raw.items()
        if t != anchor
    }
    out[anchor] = Decimal(1) - sum(out.values(), Decimal(0))
    return out


def _unix(ts: Any) -> int:
    return int(pd.Timestamp(ts).timestamp())


def game_probabilities(
    markets: pd.DataFrame, candles: pd.DataFrame, states: pd.DataFrame, max_spread: Decimal
) -> pd.DataFrame:
    """The `kalshi.game_probabilities` rows of the games in `markets` (see the module docstring).

    `markets` needs ticker, event_ticker, game_date, team; `candles` the `CANDLE_COLUMNS` (1-minute
    candles); `states` event_ticker, observed_at and the `STATE_COLUMNS`.
    """
    rows: list[dict[str, Any]] = []
    by_ticker = {t: g for t, g in candles.groupby("ticker", sort=True)}
    states_by_game = {e: g.sort_values("observed_at") for e, g in states.groupby("event_ticker")}
    for event_ticker, game in markets.groupby("event_ticker", sort=True):
        tickers = sorted(game["ticker"])
        info = {
            t: (d, team)
            for t, d, team in zip(game["ticker"], game["game_date"], game["team"], strict=True)
        }
        series = {t: _candle_records(by_ticker.get(t)) for t in tickers}
        minutes = sorted({c["ts"] for recs in series.values() for c in recs})
        if not minutes:
            continue
        game_states = _state_records(states_by_game.get(str(event_ticker)))
        cursor = dict.fromkeys(tickers, -1)
        trade: dict[str, tuple[int, Decimal] | None] = dict.fromkeys(tickers)
        s_cursor = -1
        for minute in minutes:
            prices: dict[str, MarketPrice] = {}
            for t in tickers:
                recs = series[t]
                while cursor[t] + 1 < len(recs) and recs[cursor[t] + 1]["ts"] <= minute:
                    cursor[t] += 1
                    rec = recs[cursor[t]]
                    if rec["price_close"] is not None:
                        trade[t] = (rec["ts"], rec["price_close"])
                latest = recs[cursor[t]] if cursor[t] >= 0 else None
                prices[t] = market_price(latest, trade[t], minute, max_spread)
            raw = {t: p.raw for t, p in prices.items() if p.raw is not None}
            probs: dict[str, Decimal] = {}
            overround: Decimal | None = None
            total = sum(raw.values(), Decimal(0))
            if len(raw) == len(tickers) and total > 0:
                probs = normalize(raw)
                overround = total - 1
            while s_cursor + 1 < len(game_states) and game_states[s_cursor + 1]["ts"] <= minute:
                s_cursor += 1
            state = game_states[s_cursor] if s_cursor >= 0 else None
            minute_ts = pd.Timestamp(minute, unit="s", tz="UTC")
            for t in tickers:
                row: dict[str, Any] = {
                    "ticker": t,
                    "source": MINUTE_SOURCE,
                    "minute_ts": minute_ts,
                    "event_ticker": event_ticker,
                    "game_date": info[t][0],
                    "team": info[t][1],
                    "method": prices[t].method,
                    "raw_price": prices[t].raw,
                    "probability": probs.get(t),
                    "overround": overround,
                    "quote_age_s": prices[t].quote_age_s,
                    "state_observed_at": state["observed_at"] if state else None,
                }
                for col in STATE_COLUMNS:
                    row[col] = state[col] if state else None
                rows.append(row)
    out = pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))
    out["state_observed_at"] = pd.to_datetime(out["state_observed_at"], utc=True)
    return out


def minute_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The per-minute rows (`source = 'candles'`) of some `kalshi.game_probabilities` rows."""
    return rows[rows["source"] == MINUTE_SOURCE]


def _candle_records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None:
        return []
    ordered = frame.sort_values("end_period_ts")
    return [
        {
            "ts": _unix(ts),
            "yes_bid_close": _dec(bid),
            "yes_ask_close": _dec(ask),
            "price_close": _dec(price),
        }
        for ts, bid, ask, price in zip(
            ordered["end_period_ts"],
            ordered["yes_bid_close"],
            ordered["yes_ask_close"],
            ordered["price_close"],
            strict=True,
        )
    ]


def _state_records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None:
        return []
    records = []
    for rec in frame.to_dict("records"):
        item = {c: _none(rec.get(c)) for c in STATE_COLUMNS}
        item["observed_at"] = rec["observed_at"]
        item["ts"] = _unix(rec["observed_at"])
        records.append(item)
    return records


def _dec(value: Any) -> Decimal | None:
    return None if value is None or (not isinstance(value, Decimal) and pd.isna(value)) else value


def _none(value: Any) -> Any:
    if value is None:
        return None
    try:
        return None if pd.isna(value) else value
    except (TypeError, ValueError):
        return value


@dataclass(frozen=True)
class GameProbabilities:
    """What one run of `build_game_probabilities` computed and stored."""

    games: int
    rows: pd.DataFrame
    markets: pd.DataFrame
    states: pd.DataFrame
    computed_at: datetime


def build_game_probabilities(
    wh: Warehouse,
    game_dates: Sequence[date],
    *,
    max_spread: Decimal,
    now: datetime,
    event_tickers: Sequence[str] | None = None,
) -> GameProbabilities:
    """Recompute and store the probabilities of every game of `game_dates` (or only `event_tickers`).

    Each game's minute rows are replaced as a whole in one transaction, so a minute that no longer exists
    does not linger; the stream's rows are left alone.
    """
    markets = wh.markets(game_dates)
    if event_tickers is not None:
        markets = markets[markets["event_ticker"].isin(set(event_tickers))]
    games = sorted(set(markets["event_ticker"]))
    candles = wh.candles(
        "candlesticks", game_dates, columns=list(CANDLE_COLUMNS), event_tickers=games
    )
    candles = candles[candles["ticker"].isin(set(markets["ticker"]))]
    states = wh.game_states(game_dates, event_tickers=games)
    rows = game_probabilities(markets, candles, states, max_spread)
    with wh.transaction() as tx:
        replace_game_probabilities(tx, games, rows)
    return GameProbabilities(
        games=int(markets["event_ticker"].nunique()),
        rows=rows,
        markets=markets,
        states=states,
        computed_at=now,
    )
