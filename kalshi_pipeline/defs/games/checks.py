"""What the games assets check, as plain functions over the rows they wrote (each returns its problems).

- `probability_problems`: every probability is in [0, 1] and each priced game-minute sums to exactly 1.
- `settlement_problems`: a settled game's last priced minute favours the team the market settled on, at
  `SETTLED_MIN_PROBABILITY` or more.
- `missing_state_fields`: which game-state fields the live data lacked, in words for the check result.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pandas as pd

SETTLED_MIN_PROBABILITY = Decimal("0.9")


def probability_problems(rows: pd.DataFrame) -> list[str]:
    """Game-minutes whose probabilities leave [0, 1] or do not sum to exactly 1."""
    problems: list[str] = []
    priced = rows[rows["probability"].notna()]
    for (event, minute), g in priced.groupby(["event_ticker", "minute_ts"], sort=True):
        values = list(g["probability"])
        total = sum(values, Decimal(0))
        if any(not Decimal(0) <= v <= Decimal(1) for v in values):
            problems.append(f"{event} {minute}: a probability outside [0, 1]: {values}")
        elif total != 1:
            problems.append(f"{event} {minute}: probabilities sum to {total}")
    return problems


def settlement_problems(rows: pd.DataFrame, markets: pd.DataFrame) -> tuple[list[str], int]:
    """Settled games whose last priced minute does not end at their result; also how many were checked."""
    problems: list[str] = []
    checked = 0
    settled = markets[markets["result"].isin(["yes", "no"])]
    for event, game in settled.groupby("event_ticker", sort=True):
        winners = list(game[game["result"] == "yes"]["ticker"])
        if len(game) != int((markets["event_ticker"] == event).sum()) or len(winners) != 1:
            continue
        priced = rows[(rows["event_ticker"] == event) & rows["probability"].notna()]
        if priced.empty:
            problems.append(f"{event}: settled ({winners[0]}) but no priced minute")
            continue
        checked += 1
        last = priced[priced["minute_ts"] == priced["minute_ts"].max()]
        won = last[last["ticker"] == winners[0]]["probability"]
        p = won.iloc[0] if len(won) else None
        if p is None or p < SETTLED_MIN_PROBABILITY:
            problems.append(f"{event}: settled on {winners[0]} but ends at {p}")
    return problems, checked


def missing_state_fields(missing: Mapping[str, int], observations: int) -> str:
    """`none`, or e.g. `clock absent in 3 of 12 observations; period absent in 12 of 12`."""
    parts = [f"{k} absent in {n} of {observations} observations" for k, n in missing.items() if n]
    return "; ".join(parts) or "none"
