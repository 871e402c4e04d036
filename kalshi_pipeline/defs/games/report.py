"""Per-game summaries and chart files from the warehouse, for `make demo` and `kalshi-pipeline chart`.

`game_summaries` gives, per game of some dates: teams, final score, the home team's probability at
tip-off (last priced minute at or before the scheduled start), at halftime (last priced minute of period 2)
and in the final minute (last priced minute while the game was live or just finished), and the winner.
`write_chart` renders one game's chart (`chart.game_chart_png`) to a PNG file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd

from kalshi_pipeline.defs.games.chart import game_chart_png
from kalshi_pipeline.defs.games.probabilities import minute_rows
from kalshi_pipeline.kalshi import parse_game_event
from kalshi_pipeline.warehouse import Warehouse


@dataclass(frozen=True)
class GameSummary:
    """One game as the demo's table shows it (probabilities are the home team's)."""

    event_ticker: str
    away_team: str
    home_team: str
    away_points: int | None
    home_points: int | None
    at_tipoff: Decimal | None
    at_halftime: Decimal | None
    final_minute: Decimal | None
    winner: str | None


def _home_probability(rows: pd.DataFrame, mask: pd.Series) -> Decimal | None:
    chosen = rows[mask & rows["probability"].notna()]
    if chosen.empty:
        return None
    return chosen.sort_values("minute_ts")["probability"].iloc[-1]


def game_summaries(wh: Warehouse, game_dates: Sequence[date]) -> list[GameSummary]:
    """One `GameSummary` per game of `game_dates`, ordered by date and event ticker."""
    markets = wh.markets(game_dates)
    probs = minute_rows(wh.game_probabilities(game_dates))
    states = wh.game_states(game_dates)
    out = []
    markets = markets.sort_values(["game_date", "event_ticker"])
    for event, game in markets.groupby("event_ticker", sort=False):
        first = game.iloc[0]
        home_ticker = game[game["team"] == first["home_team"]]["ticker"]
        rows = probs[probs["ticker"].isin(list(home_ticker))]
        tip = game["scheduled_start"].min()
        at_tip = _home_probability(rows, rows["minute_ts"] <= tip) if not pd.isna(tip) else None
        halftime = _home_probability(rows, (rows["period"] == 2) & (rows["status"] == "live"))
        final = _home_probability(rows, rows["status"].isin(["live", "finished"]))
        game_states = states[states["event_ticker"] == event].sort_values("observed_at")
        done = game_states[game_states["status"] == "finished"]
        last = done.iloc[-1] if len(done) else (game_states.iloc[-1] if len(game_states) else None)
        winners = game[game["result"] == "yes"]["team"].tolist()
        out.append(
            GameSummary(
                event_ticker=str(event),
                away_team=str(first["away_team"]),
                home_team=str(first["home_team"]),
                away_points=_int(last["away_points"]) if last is not None else None,
                home_points=_int(last["home_points"]) if last is not None else None,
                at_tipoff=at_tip,
                at_halftime=halftime,
                final_minute=final,
                winner=str(winners[0]) if winners else None,
            )
        )
    return out


def _int(value: object) -> int | None:
    return None if value is None or pd.isna(value) else int(str(value))  # type: ignore[arg-type] # pd.isna accepts any object


def write_chart(wh: Warehouse, event_ticker: str, path: Path) -> Path:
    """Render `event_ticker`'s chart from the warehouse to `path` (directories created).

    Raises:
        ValueError: The game has no rows in `kalshi.game_probabilities` (materialize it first).
    """
    day = parse_game_event(event_ticker).game_date
    probs = minute_rows(wh.game_probabilities([day], event_tickers=[event_ticker]))
    if probs.empty:
        raise ValueError(
            f"{event_ticker} has no rows in kalshi.game_probabilities; materialize "
            f"kalshi/game_probabilities for {day} first"
        )
    states = wh.game_states([day], event_tickers=[event_ticker])
    markets = wh.markets([day])
    png = game_chart_png(event_ticker, probs, states, markets)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path
