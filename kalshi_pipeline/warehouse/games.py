"""Writes of the live-game tables (`kalshi.game_states`, `kalshi.game_probabilities`, migrations 3 and 4).

Game states are observations, so they are upserted (a repeated poll of the same instant overwrites itself).
A game's per-minute probabilities (`source = 'candles'`) are derived rows, recomputed as a whole:
`replace_game_probabilities` deletes the games' minute rows and writes the new ones in the caller's
transaction, so a minute that no longer exists in the source candles does not linger. The websocket
stream's rows (`source = 'stream'`) are only ever added, by `upsert_stream_probabilities`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from kalshi_pipeline.warehouse.base import Transaction, Warehouse
from kalshi_pipeline.warehouse.errors import WarehouseDataError
from kalshi_pipeline.warehouse.schema import GAME_PROBABILITIES, GAME_STATES

#: `kalshi.game_probabilities.source` of the per-minute rows, the ones `replace_game_probabilities` owns.
MINUTE_SOURCE = "candles"
#: `kalshi.game_probabilities.source` of the rows the websocket stream writes.
STREAM_SOURCE = "stream"


def replace_game_probabilities(
    tx: Transaction, event_tickers: Sequence[str], rows: pd.DataFrame
) -> int:
    """Replace every per-minute `kalshi.game_probabilities` row of these games by `rows`; return rows written."""
    if isinstance(event_tickers, str):
        raise WarehouseDataError("replace_game_probabilities takes a list of event tickers")
    games = [str(e) for e in event_tickers]
    stray = set(rows["event_ticker"]) - set(games) if len(rows) else set()
    if stray:
        raise WarehouseDataError(f"rows of games not being replaced: {sorted(stray)[:5]}")
    foreign = set(rows["source"]) - {MINUTE_SOURCE} if len(rows) else set()
    if foreign:
        raise WarehouseDataError(f"only source={MINUTE_SOURCE!r} rows are replaced, got {foreign}")
    if games:
        tx.execute(
            f"DELETE FROM {GAME_PROBABILITIES.qualified} WHERE event_ticker = ANY(%s) AND source = %s",
            [games, MINUTE_SOURCE],
        )
    return tx.upsert(GAME_PROBABILITIES.name, rows) if len(rows) else 0


def upsert_stream_probabilities(tx: Transaction, rows: pd.DataFrame) -> int:
    """Add the stream's `kalshi.game_probabilities` rows (`source = 'stream'`); return rows written."""
    if not len(rows):
        return 0
    foreign = set(rows["source"]) - {STREAM_SOURCE}
    if foreign:
        raise WarehouseDataError(f"stream rows must have source={STREAM_SOURCE!r}, got {foreign}")
    return tx.upsert(GAME_PROBABILITIES.name, rows)


def known_milestones(reader: Warehouse, event_tickers: Sequence[str]) -> dict[str, str]:
    """The milestone id of each of these games seen most recently in `kalshi.game_states` (absent: none)."""
    games = [str(e) for e in event_tickers]
    if not games:
        return {}
    df = reader.query_df(
        f"SELECT event_ticker, milestone_id, max(observed_at) AS seen FROM {GAME_STATES.qualified} "
        "WHERE event_ticker = ANY(%s) AND milestone_id <> '' GROUP BY event_ticker, milestone_id",
        [games],
    )
    df = df.sort_values("seen")
    return {str(e): str(m) for e, m in zip(df["event_ticker"], df["milestone_id"], strict=True)}


def upsert_game_states(tx: Transaction, rows: pd.DataFrame) -> int:
    """Upsert game-state observations (key: event_ticker, observed_at); return rows written."""
    return tx.upsert(GAME_STATES.name, rows) if len(rows) else 0
