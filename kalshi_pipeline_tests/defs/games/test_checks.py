"""The games checks fail on bad rows, and say which live-data keys were absent."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from kalshi_pipeline.defs.games.checks import (
    missing_state_fields,
    probability_problems,
    settlement_problems,
)

T = pd.Timestamp("2026-01-10T03:00:00Z")


def _rows(values: dict[str, str | None], minute: pd.Timestamp = T) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_ticker": ["G"] * len(values),
            "ticker": list(values),
            "minute_ts": [minute] * len(values),
            "probability": [None if v is None else Decimal(v) for v in values.values()],
        }
    )


def test_probability_problems() -> None:
    assert probability_problems(_rows({"G-A": "0.4", "G-H": "0.6"})) == []
    assert probability_problems(_rows({"G-A": None, "G-H": None})) == []
    assert "sum to 1.000001" in probability_problems(_rows({"G-A": "0.4", "G-H": "0.600001"}))[0]
    assert "outside [0, 1]" in probability_problems(_rows({"G-A": "-0.1", "G-H": "1.1"}))[0]


def test_settlement_problems() -> None:
    markets = pd.DataFrame(
        {"event_ticker": ["G", "G"], "ticker": ["G-A", "G-H"], "result": ["no", "yes"]}
    )
    early = _rows({"G-A": "0.9", "G-H": "0.1"}, T - pd.Timedelta(hours=1))
    good = pd.concat([early, _rows({"G-A": "0.02", "G-H": "0.98"})])
    assert settlement_problems(good, markets) == ([], 1)
    bad = pd.concat(
        [
            _rows({"G-A": "0.02", "G-H": "0.98"}, T - pd.Timedelta(hours=1)),
            _rows({"G-A": "0.6", "G-H": "0.4"}),
        ]
    )
    problems, checked = settlement_problems(bad, markets)
    assert checked == 1 and "settled on G-H but ends at 0.4" in problems[0]
    unsettled = markets.assign(result=pd.Series([None, None], dtype=object))
    assert settlement_problems(bad, unsettled) == ([], 0)


def test_missing_state_fields_in_words() -> None:
    assert missing_state_fields({"status": 0, "clock": 0}, 4) == "none"
    assert missing_state_fields({"status": 0, "clock": 3, "period": 4}, 4) == (
        "clock absent in 3 of 4 observations; period absent in 4 of 4 observations"
    )
