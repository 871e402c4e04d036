"""Calibration scores on hand-made probabilities whose Brier score and log loss are known."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from kalshi_pipeline.defs.games.calibration import reliability_png, scored_rows, scores, season_of

T0 = pd.Timestamp("2026-01-10T00:00:00Z")


def _markets() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": ["G1-A", "G1-H", "G2-A", "G2-H"],
            "event_ticker": ["G1", "G1", "G2", "G2"],
            "result": ["no", "yes", "yes", "no"],
            "scheduled_start": [T0, T0, T0, T0],
        }
    )


def _row(ticker: str, minutes: int, p: str, period: int | None, status: str | None) -> dict:
    return {
        "ticker": ticker,
        "event_ticker": ticker.split("-")[0],
        "game_date": date(2026, 1, 9),
        "minute_ts": T0 + pd.Timedelta(minutes=minutes),
        "probability": Decimal(p),
        "period": period,
        "status": status,
    }


def test_scores_at_tipoff_quarters_and_overall() -> None:
    rows = []
    for game, home_p_tip, home_p_q1 in (("G1", "0.6", "0.8"), ("G2", "0.7", "0.4")):
        for minutes, home_p, period, status in (
            (0, home_p_tip, None, None),
            (30, home_p_q1, 1, "live"),
        ):
            rows.append(_row(f"{game}-H", minutes, home_p, period, status))
            rows.append(_row(f"{game}-A", minutes, str(1 - Decimal(home_p)), period, status))
    scored = scored_rows(_markets(), pd.DataFrame(rows))
    table = scores(scored).set_index("moment")
    assert list(table.index) == ["tip-off", "end Q1", "overall"]
    # Tip-off: G1 home won at 0.6 -> (0.4)^2 twice; G2 away won at 0.3 -> (0.7)^2 twice.
    assert table.loc["tip-off", "brier"] == pytest.approx((0.16 * 2 + 0.49 * 2) / 4)
    assert table.loc["tip-off", "log_loss"] == pytest.approx(
        -(2 * math.log(0.6) + 2 * math.log(0.3)) / 4
    )
    # End of Q1: G1 home (won) at 0.8 -> (0.2)^2 twice; G2 home at 0.4, away (won) at 0.6 -> (0.4)^2 twice.
    assert table.loc["end Q1", "brier"] == pytest.approx((0.04 * 2 + 0.16 * 2) / 4)
    assert table.loc["overall", "n"] == 8 and table.loc["overall", "games"] == 2
    assert season_of(date(2026, 1, 9)) == "2025-26" and season_of(date(2026, 10, 21)) == "2026-27"
    assert reliability_png(scored, "2025-26").startswith(b"\x89PNG")


def test_unsettled_games_are_not_scored() -> None:
    markets = _markets().assign(result=pd.Series(["no", "yes", None, None], dtype=object))
    rows = [_row("G2-H", 0, "0.5", None, None), _row("G2-A", 0, "0.5", None, None)]
    assert scored_rows(markets, pd.DataFrame(rows)).empty
