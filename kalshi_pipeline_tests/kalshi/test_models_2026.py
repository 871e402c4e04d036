"""The 2026 fields of markets and series: scalar settlements, settlement bounds, series categories."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kalshi_pipeline.kalshi.errors import KalshiProtocolError
from kalshi_pipeline.kalshi.models import Market, Series
from kalshi_pipeline_tests.kalshi.test_models import MARKET


def test_a_tied_game_settles_scalar_at_its_settlement_value() -> None:
    tied = Market.from_payload(
        {
            **MARKET,
            "status": "finalized",
            "result": "scalar",
            "settlement_value_dollars": "0.5000",
            "settlement_bounds_type": "default",
            "settlement_floor_dollars": "0.0000",
        }
    )
    assert tied.result == "scalar" and tied.settlement_value_dollars == Decimal("0.5000")
    assert tied.settlement_bounds_type == "default"
    assert tied.settlement_floor_dollars == Decimal("0.0000")


@pytest.mark.parametrize("value", [None, "1.2000", "-0.0100"])
def test_a_scalar_result_without_a_value_in_bounds_is_refused(value: str | None) -> None:
    payload = {**MARKET, "status": "finalized", "result": "scalar"}
    payload.pop("settlement_value_dollars", None)
    if value is not None:
        payload["settlement_value_dollars"] = value
    with pytest.raises(KalshiProtocolError, match="scalar"):
        Market.from_payload(payload)


def test_series_categories_are_kept() -> None:
    series = Series.from_payload(
        {
            "ticker": "KXNBAGAME",
            "frequency": "custom",
            "title": "Professional Basketball Game",
            "category": "Sports",
            "categories": ["Sports", "Basketball"],
            "tags": [],
            "settlement_sources": [],
            "contract_url": "https://kalshi.com/x.pdf",
        }
    )
    assert series.categories == ("Sports", "Basketball")
