"""Parsing of every payload shape quoted in the Kalshi reference: exact Decimals, nulls, unknown fields."""

from __future__ import annotations

import copy
import dataclasses
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from kalshi_pipeline.kalshi.candles import (
    CANDLE_VALUE_FIELDS,
    Candlestick,
    _checked_candle_values,
    parse_candle_values,
)
from kalshi_pipeline.kalshi.errors import KalshiProtocolError
from kalshi_pipeline.kalshi.exchange import ExchangeStatus
from kalshi_pipeline.kalshi.models import (
    Event,
    HistoricalCutoff,
    Market,
    Milestone,
    Orderbook,
    Series,
    Trade,
)

MARKET: dict[str, Any] = {
    "ticker": "KXNBAGAME-26JAN07LALSAS-SAS",
    "event_ticker": "KXNBAGAME-26JAN07LALSAS",
    "market_type": "binary",
    "title": "Los Angeles L at San Antonio Winner?",
    "subtitle": "",
    "yes_sub_title": "San Antonio",
    "no_sub_title": "San Antonio",
    "created_time": "2026-01-02T15:00:00Z",
    "updated_time": "2026-01-02T15:00:00.123456Z",
    "open_time": "2026-01-03T15:00:00Z",
    "close_time": "2026-01-22T02:30:00Z",
    "expected_expiration_time": "2026-01-08T05:30:00Z",
    "expiration_time": "2026-01-22T02:30:00Z",
    "latest_expiration_time": "2026-01-22T02:30:00Z",
    "settlement_timer_seconds": 300,
    "status": "finalized",
    "notional_value_dollars": "1.0000",
    "yes_bid_dollars": "0.5600",
    "yes_ask_dollars": "0.5700",
    "no_bid_dollars": "0.4300",
    "no_ask_dollars": "0.4400",
    "yes_bid_size_fp": "1520.00",
    "yes_ask_size_fp": "310.50",
    "last_price_dollars": "0.5650",
    "previous_yes_bid_dollars": "0.5100",
    "previous_yes_ask_dollars": "0.5300",
    "previous_price_dollars": "0.5200",
    "volume_fp": "1234567.89",
    "volume_24h_fp": "98765.43",
    "open_interest_fp": "45678.00",
    "liquidity_dollars": "0.0000",
    "result": "yes",
    "can_close_early": True,
    "settlement_value_dollars": "1.0000",
    "settlement_ts": "2026-01-08T05:20:00Z",
    "expiration_value": "San Antonio",
    "occurrence_datetime": None,
    "fee_waiver_expiration_time": None,
    "strike_type": "structured",
    "floor_strike": None,
    "cap_strike": None,
    "custom_strike": {"basketball_team": "0b7c7a4e-0000-4000-8000-000000000001"},
    "rules_primary": "If San Antonio wins ...",
    "rules_secondary": "",
    "price_level_structure": "deci_cent",
    "price_ranges": [{"start": "0.0000", "end": "1.0000", "step": "0.0010"}],
    "exchange_index": 0,
    "brand_new_field_from_2027": {"anything": [1, 2, 3]},
}


def test_market_parses_exact_values_and_ignores_unknown_fields() -> None:
    market = Market.from_payload(MARKET)
    assert market.ticker == "KXNBAGAME-26JAN07LALSAS-SAS"
    assert market.yes_bid_dollars == Decimal("0.5600")
    assert str(market.last_price_dollars) == "0.5650"
    assert market.volume_fp == Decimal("1234567.89")
    assert market.yes_ask_size_fp == Decimal("310.50")
    assert market.open_interest_fp == Decimal("45678.00")
    assert market.settlement_value_dollars == Decimal("1.0000")
    assert market.expected_expiration_time == datetime(2026, 1, 8, 5, 30, tzinfo=UTC)
    assert market.updated_time == datetime(2026, 1, 2, 15, 0, 0, 123456, tzinfo=UTC)
    assert market.settlement_ts is not None and market.settlement_ts.tzinfo is not None
    assert market.occurrence_datetime is None
    assert market.can_close_early is True
    assert market.price_ranges[0].step == Decimal("0.0010")
    assert market.custom_strike == {"basketball_team": "0b7c7a4e-0000-4000-8000-000000000001"}
    assert market.raw["brand_new_field_from_2027"] == {"anything": [1, 2, 3]}
    assert market.raw == MARKET


def test_market_absent_optional_fields_are_none() -> None:
    minimal = {k: MARKET[k] for k in ("ticker", "event_ticker", "status")}
    market = Market.from_payload(minimal)
    assert market.yes_bid_dollars is None
    assert market.expected_expiration_time is None
    assert market.price_ranges == ()


@pytest.mark.parametrize("field", ["ticker", "event_ticker", "status"])
def test_market_missing_required_field_is_loud(field: str) -> None:
    payload = copy.deepcopy(MARKET)
    del payload[field]
    with pytest.raises(KalshiProtocolError) as err:
        Market.from_payload(payload)
    assert repr(field) in str(err.value)
    assert "market" in str(err.value)


def test_market_malformed_values_name_the_field() -> None:
    with pytest.raises(
        KalshiProtocolError, match=r"yes_bid_dollars.*KXNBAGAME|KXNBAGAME.*yes_bid_dollars"
    ):
        Market.from_payload({**MARKET, "yes_bid_dollars": "fifty cents"})
    # A bare number in a fixed-point field is a legacy integer (cents), never silently read as dollars.
    with pytest.raises(KalshiProtocolError, match="last_price_dollars"):
        Market.from_payload({**MARKET, "last_price_dollars": 56})
    with pytest.raises(KalshiProtocolError, match="close_time"):
        Market.from_payload({**MARKET, "close_time": "tomorrow"})
    with pytest.raises(KalshiProtocolError, match="expected a JSON object"):
        Market.from_payload(["not", "an", "object"])


EVENT_RESPONSE: dict[str, Any] = {
    "event": {
        "event_ticker": "KXNBAGAME-25DEC19SASATL",
        "series_ticker": "KXNBAGAME",
        "sub_title": "SAS at ATL (Dec 19)",
        "title": "San Antonio at Atlanta",
        "collateral_return_type": "MECNET",
        "mutually_exclusive": True,
        "category": "Sports",
        "strike_date": None,
        "strike_period": None,
        "available_on_brokers": False,
        "product_metadata": {"competition": "Pro Basketball (M)"},
        "settlement_sources": [{"name": "NBA", "url": "https://www.nba.com"}],
        "exchange_index": 0,
        "markets": [
            {
                **MARKET,
                "ticker": "KXNBAGAME-25DEC19SASATL-SAS",
                "event_ticker": "KXNBAGAME-25DEC19SASATL",
            },
            {
                **MARKET,
                "ticker": "KXNBAGAME-25DEC19SASATL-ATL",
                "event_ticker": "KXNBAGAME-25DEC19SASATL",
            },
        ],
    },
    "markets": [],
}

MILESTONES_RESPONSE: dict[str, Any] = {
    "milestones": [
        {
            "id": "3f1c2d4e-1111-4222-8333-444455556666",
            "category": "Sports",
            "type": "basketball_game",
            "start_date": "2025-12-20T00:30:00Z",
            "end_date": None,
            "related_event_tickers": ["KXNBAGAME-25DEC19SASATL", "KXNBASPREAD-25DEC19SASATL"],
            "primary_event_tickers": ["KXNBAGAME-25DEC19SASATL"],
            "title": "San Antonio at Atlanta",
            "notification_message": "",
            "source_id": "sr:match:1",
            "source_ids": {"sportradar": "sr:match:1"},
            "details": {"competition": "Pro Basketball (M)"},
            "last_updated_ts": "2025-12-19T12:00:00Z",
        }
    ],
    "cursor": "",
}


def test_event_with_nested_markets_and_milestones() -> None:
    milestones = [Milestone.from_payload(m) for m in MILESTONES_RESPONSE["milestones"]]
    event = Event.from_payload(EVENT_RESPONSE["event"], milestones=milestones)
    assert event.series_ticker == "KXNBAGAME"
    assert [m.ticker for m in event.markets] == [
        "KXNBAGAME-25DEC19SASATL-SAS",
        "KXNBAGAME-25DEC19SASATL-ATL",
    ]
    assert event.milestones[0].start_date == datetime(2025, 12, 20, 0, 30, tzinfo=UTC)
    other = Event.from_payload(
        {"event_ticker": "KXNBAGAME-25DEC19LALBOS", "series_ticker": "KXNBAGAME"},
        milestones=milestones,
    )
    assert other.milestones == () and other.markets == ()


def test_event_uses_deprecated_top_level_markets_when_not_nested() -> None:
    event_only = {k: v for k, v in EVENT_RESPONSE["event"].items() if k != "markets"}
    event = Event.from_payload(event_only, markets=EVENT_RESPONSE["event"]["markets"])
    assert len(event.markets) == 2


def test_event_missing_series_ticker_is_loud() -> None:
    with pytest.raises(KalshiProtocolError, match=r"series_ticker.*missing"):
        Event.from_payload({"event_ticker": "KXNBAGAME-25DEC19SASATL"})


def test_milestone_parses_and_requires_start_date() -> None:
    milestone = Milestone.from_payload(MILESTONES_RESPONSE["milestones"][0])
    assert milestone.type == "basketball_game"
    assert milestone.concerns("KXNBAGAME-25DEC19SASATL")
    bad = {k: v for k, v in MILESTONES_RESPONSE["milestones"][0].items() if k != "start_date"}
    with pytest.raises(KalshiProtocolError, match="start_date"):
        Milestone.from_payload(bad)


def test_series() -> None:
    series = Series.from_payload(
        {
            "ticker": "KXNBAGAME",
            "frequency": "custom",
            "title": "Professional Basketball Game",
            "category": "Sports",
            "tags": ["Basketball"],
            "settlement_sources": [{"name": "NBA", "url": "https://www.nba.com"}],
            "contract_url": "https://kalshi.com/x.pdf",
            "fee_type": "quadratic",
            "fee_multiplier": 0.07,
            "additional_prohibitions": [],
            "product_metadata": None,
            "volume_fp": "123.00",
        }
    )
    assert series.ticker == "KXNBAGAME"
    assert series.fee_multiplier == Decimal("0.07")
    assert series.tags == ("Basketball",)
    assert series.volume_fp == Decimal("123.00")


# CAPCANDLE-shaped live candle with trades in the period.
LIVE_CANDLE: dict[str, Any] = {
    "end_period_ts": 1778692380,
    "yes_bid": {
        "open_dollars": "0.5400",
        "low_dollars": "0.5300",
        "high_dollars": "0.5600",
        "close_dollars": "0.5500",
    },
    "yes_ask": {
        "open_dollars": "0.5600",
        "low_dollars": "0.5500",
        "high_dollars": "0.5800",
        "close_dollars": "0.5700",
    },
    "price": {
        "open_dollars": "0.5500",
        "low_dollars": "0.5400",
        "high_dollars": "0.5700",
        "close_dollars": "0.5650",
        "mean_dollars": "0.5587",
        "previous_dollars": "0.5450",
    },
    "volume_fp": "152.00",
    "open_interest_fp": "10345.50",
    "something_new": True,
}


def test_live_candle_exact_values() -> None:
    candle = Candlestick.from_payload(LIVE_CANDLE, ticker="T", period_interval=1, historical=False)
    assert candle.end_period_ts == 1778692380
    assert candle.price_open == Decimal("0.5500")
    assert candle.price_close == Decimal("0.5650")
    assert candle.price_mean == Decimal("0.5587")
    assert candle.price_previous == Decimal("0.5450")
    assert (candle.yes_bid_open, candle.yes_bid_high, candle.yes_bid_low, candle.yes_bid_close) == (
        Decimal("0.5400"),
        Decimal("0.5600"),
        Decimal("0.5300"),
        Decimal("0.5500"),
    )
    assert candle.yes_ask_high == Decimal("0.5800")
    assert candle.volume == Decimal("152.00")
    assert candle.open_interest == Decimal("10345.50")
    assert candle.raw is not LIVE_CANDLE and candle.raw == LIVE_CANDLE
    assert candle.historical is False


def test_no_trade_minute_carries_only_previous_price() -> None:
    payload = {
        "end_period_ts": 1778692440,
        "yes_bid": {"open_dollars": "0.0000", "low_dollars": "0.0000", "high_dollars": "0.0000",
                    "close_dollars": "0.0000"},
        "yes_ask": {"open_dollars": "1.0000", "low_dollars": "1.0000", "high_dollars": "1.0000",
                    "close_dollars": "1.0000"},
        "price": {"previous_dollars": "0.0300"},
        "volume_fp": "0.00",
        "open_interest_fp": "12.00",
    }  # fmt: skip
    candle = Candlestick.from_payload(payload, ticker="T", period_interval=1, historical=False)
    assert candle.price_open is None and candle.price_close is None and candle.price_mean is None
    assert candle.price_previous == Decimal("0.0300")
    assert candle.yes_bid_close == Decimal("0.0000")
    assert candle.yes_ask_open == Decimal("1.0000")
    assert candle.volume == Decimal("0.00")


def test_never_traded_candle_with_empty_objects_and_nulls() -> None:
    payload = {
        "end_period_ts": 1778692500,
        "yes_bid": {},
        "yes_ask": None,
        "price": {},
        "volume_fp": "0.00",
        "open_interest_fp": "0.00",
    }
    candle = Candlestick.from_payload(payload, ticker="T", period_interval=60, historical=False)
    for name in ("price_open", "price_previous", "yes_bid_open", "yes_ask_close"):
        assert getattr(candle, name) is None
    nulls = {
        **LIVE_CANDLE,
        "price": {"open_dollars": None, "close_dollars": None, "previous_dollars": None},
    }
    assert (
        Candlestick.from_payload(nulls, ticker="T", period_interval=1, historical=False).price_open
        is None
    )
    absent = {k: v for k, v in LIVE_CANDLE.items() if k not in ("price", "yes_bid", "yes_ask")}
    assert (
        Candlestick.from_payload(
            absent, ticker="T", period_interval=1, historical=False
        ).yes_bid_low
        is None
    )


HISTORICAL_CANDLE: dict[str, Any] = {
    "end_period_ts": 1760000040,
    "yes_bid": {"open": "0.4100", "low": "0.4000", "high": "0.4200", "close": "0.4150"},
    "yes_ask": {"open": "0.4300", "low": "0.4200", "high": "0.4400", "close": "0.4350"},
    "price": {"open": "0.4200", "low": "0.4100", "high": "0.4300", "close": "0.4250", "mean": "0.4213",
              "previous": "0.4190"},
    "volume": "75.00",
    "open_interest": "2210.00",
}  # fmt: skip


def test_historical_candle_normalizes_to_the_same_shape() -> None:
    candle = Candlestick.from_payload(
        HISTORICAL_CANDLE, ticker="H", period_interval=1, historical=True
    )
    assert candle.historical is True
    assert candle.price_mean == Decimal("0.4213")
    assert candle.price_previous == Decimal("0.4190")
    assert candle.yes_ask_close == Decimal("0.4350")
    assert candle.volume == Decimal("75.00")
    assert candle.open_interest == Decimal("2210.00")
    nullable = {**HISTORICAL_CANDLE, "price": None}
    assert (
        Candlestick.from_payload(
            nullable, ticker="H", period_interval=1, historical=True
        ).price_open
        is None
    )
    # The live shape under historical=True still parses (in case Kalshi aligns the shapes).
    live = Candlestick.from_payload(LIVE_CANDLE, ticker="H", period_interval=1, historical=True)
    assert live.price_close == Decimal("0.5650") and live.volume == Decimal("152.00")


def test_live_parser_never_reads_unsuffixed_legacy_fields() -> None:
    with pytest.raises(KalshiProtocolError, match="volume_fp"):
        Candlestick.from_payload(HISTORICAL_CANDLE, ticker="H", period_interval=1, historical=False)


@pytest.mark.parametrize("field", ["end_period_ts", "volume_fp", "open_interest_fp"])
def test_candle_missing_required_field_is_loud(field: str) -> None:
    payload = {k: v for k, v in LIVE_CANDLE.items() if k != field}
    with pytest.raises(KalshiProtocolError) as err:
        Candlestick.from_payload(payload, ticker="KX-T", period_interval=1, historical=False)
    assert field in str(err.value) and "KX-T" in str(err.value)


def test_candle_bad_price_names_field_and_candle() -> None:
    payload = {**LIVE_CANDLE, "price": {**LIVE_CANDLE["price"], "close_dollars": "0.5x"}}
    with pytest.raises(KalshiProtocolError, match=r"close_dollars.*0\.5x"):
        Candlestick.from_payload(payload, ticker="KX-T", period_interval=1, historical=False)


def test_trade() -> None:
    payload = {
        "trade_id": "0d5c0bcb-4f5e-4a5e-9e7c-000000000001",
        "ticker": "KXNBAGAME-25DEC19SASATL-ATL",
        "count_fp": "25.00",
        "yes_price_dollars": "0.4300",
        "no_price_dollars": "0.5700",
        "taker_side": "yes",
        "taker_outcome_side": "yes",
        "taker_book_side": "bid",
        "created_time": "2025-12-20T01:02:03.456Z",
        "is_block_trade": False,
        "new": 1,
    }
    trade = Trade.from_payload(payload)
    assert trade.count_fp == Decimal("25.00")
    assert trade.no_price_dollars is not None
    assert trade.yes_price_dollars + trade.no_price_dollars == Decimal("1.0000")
    assert trade.created_time == datetime(2025, 12, 20, 1, 2, 3, 456000, tzinfo=UTC)
    with pytest.raises(KalshiProtocolError, match="count_fp"):
        Trade.from_payload({k: v for k, v in payload.items() if k != "count_fp"})


def test_orderbook_bids_ascending_best_last_and_implied_asks() -> None:
    body = {
        "orderbook_fp": {
            "yes_dollars": [["0.4100", "10.00"], ["0.4200", "13.00"]],
            "no_dollars": [["0.5500", "3.00"], ["0.5600", "17.00"]],
        }
    }
    book = Orderbook.from_payload(body["orderbook_fp"], ticker="T")
    assert book.best_yes_bid == Decimal("0.4200")
    assert book.yes[0].count == Decimal("10.00")
    assert book.yes_ask == Decimal("0.4400")
    assert book.no_ask == Decimal("0.5800")
    empty = Orderbook.from_payload({"yes_dollars": None}, ticker="T")
    assert empty.yes == () and empty.no == () and empty.yes_ask is None
    with pytest.raises(KalshiProtocolError, match="yes_dollars"):
        Orderbook.from_payload({"yes_dollars": [["0.41"]]}, ticker="T")


def test_historical_cutoff_and_exchange_status() -> None:
    cutoff = HistoricalCutoff.from_payload(
        {
            "market_settled_ts": "2026-05-01T00:00:00Z",
            "trades_created_ts": "2026-05-01T00:00:00Z",
            "orders_updated_ts": "2026-05-01T00:00:00Z",
            "market_positions_last_updated_ts": "2026-05-01T00:00:00Z",
        }
    )
    assert cutoff.market_settled_ts == datetime(2026, 5, 1, tzinfo=UTC)
    assert cutoff.market_settled_unix == 1777593600
    with pytest.raises(KalshiProtocolError, match="market_settled_ts"):
        HistoricalCutoff.from_payload({"trades_created_ts": "2026-05-01T00:00:00Z"})
    status = ExchangeStatus.from_payload({"exchange_active": True, "trading_active": False})
    assert status.exchange_active and not status.trading_active


def test_candle_value_fields_follow_the_dataclass() -> None:
    names = [f.name for f in dataclasses.fields(Candlestick)]
    assert tuple(names[3 : 3 + len(CANDLE_VALUE_FIELDS)]) == CANDLE_VALUE_FIELDS


_ODD_VALUES: list[Any] = [None, "", " 0.5 ", "0.5x", "NaN", "Infinity", "-0", "1e2", 5, 0.5, True,
                          [], {}, "0.123456789", "00.10", "1_0"]  # fmt: skip


def _mutate(payload: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    for _ in range(rng.randrange(0, 3)):
        group = rng.choice(["price", "yes_bid", "yes_ask", None])
        target = out if group is None else out.get(group)
        if group is not None and rng.random() < 0.1:
            out[group] = rng.choice([None, {}, [], "x"])
            continue
        if not isinstance(target, dict) or not target:
            continue
        key = rng.choice(sorted(target))
        if rng.random() < 0.2:
            del target[key]
        else:
            target[key] = rng.choice(_ODD_VALUES)
    return out


@pytest.mark.parametrize("historical", [False, True])
def test_one_pass_parser_matches_the_field_by_field_parser(historical: bool) -> None:
    rng = random.Random(11)
    base = [LIVE_CANDLE, HISTORICAL_CANDLE]
    for i in range(600):
        payload = _mutate(base[i % 2], rng)
        try:
            expected: Any = _checked_candle_values(payload, "KX-T", historical)
        except KalshiProtocolError as exc:
            expected = str(exc)
        try:
            got: Any = parse_candle_values(payload, ticker="KX-T", historical=historical)
        except KalshiProtocolError as exc:
            got = str(exc)
        assert got == expected, payload
        if not isinstance(expected, str):
            assert [str(v) for v in got[1]] == [str(v) for v in expected[1]]  # same exponent too
            candle = Candlestick.from_payload(
                payload, ticker="KX-T", period_interval=1, historical=historical
            )
            assert candle == Candlestick(
                "KX-T", 1, expected[0], *expected[1], raw=payload, historical=historical
            )
