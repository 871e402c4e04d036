"""Writes of the live-game tables (`kalshi.game_states`, `kalshi.game_probabilities`, migration 3).

Game states are observations, so they are upserted (a repeated poll of the same instant overwrites itself).
A game's probabilities are derived rows, recomputed as a whole: `replace_game_probabilities` deletes the
games' rows and writes the new ones in the caller's transaction, so a minute that no longer exists in the
source candles does not linger.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from kalshi_pipeline.warehouse.base import Transaction
from kalshi_pipeline.warehouse.errors import WarehouseDataError
from kalshi_pipeline.warehouse.schema import GAME_PROBABILITIES, GAME_STATES


def replace_game_probabilities(
    tx: Transaction, event_tickers: Sequence[str], rows: pd.DataFrame
) -> int:
    """Replace every `kalshi.game_probabilities` row of these games by `rows`; return rows written."""
    if isinstance(event_tickers, str):
        raise WarehouseDataError("replace_game_probabilities takes a list of event tickers")
    games = [str(e) for e in event_tickers]
    stray = set(rows["event_ticker"]) - set(games) if len(rows) else set()
    if stray:
        raise WarehouseDataError(f"rows of games not being replaced: {sorted(stray)[:5]}")
    if games:
        tx.execute(
            f"DELETE FROM {GAME_PROBABILITIES.qualified} WHERE event_ticker = ANY(%s)", [games]
        )
    return tx.upsert(GAME_PROBABILITIES.name, rows) if len(rows) else 0


def upsert_game_states(tx: Transaction, rows: pd.DataFrame) -> int:
    """Upsert game-state observations (key: event_ticker, observed_at); return rows written."""
    return tx.upsert(GAME_STATES.name, rows) if len(rows) else 0
