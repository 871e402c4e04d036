"""Candle answers read from their bytes: texts as received, end times, and the object decoder's outcomes."""

from __future__ import annotations

import functools
import json
from typing import Any

import orjson
import pytest

from kalshi_pipeline.kalshi.candle_answers import read_batch_answer, read_single_answer
from kalshi_pipeline.kalshi.candle_endpoints import (
    _batch_problem,
    _decoded_object,
    _single_problem,
)
from kalshi_pipeline.kalshi.candles import CandlePayloads
from kalshi_pipeline.kalshi.errors import KalshiProtocolError

PATH = "/markets/candlesticks"
decoded = functools.partial(_decoded_object, label=f"GET /trade-api/v2{PATH}", path=PATH)


def candle(end: int, price: str = "0.5500") -> dict[str, Any]:
    return {
        "end_period_ts": end,
        "price": {"open_dollars": price, "close_dollars": price},
        "yes_bid": {"open_dollars": "0.5400"},
        "yes_ask": {"open_dollars": "0.5600"},
        "volume_fp": "3.00",
        "open_interest_fp": "10.00",
    }


def batch(*entries: tuple[str, Any]) -> dict[str, Any]:
    return {"markets": [{"market_ticker": t, "candlesticks": c} for t, c in entries]}


def read_batch(body: bytes) -> list[CandlePayloads] | str:
    return read_batch_answer(body, decoded, _batch_problem, period_interval=1)


def test_plain_answer_keeps_each_candle_text_exactly_as_received() -> None:
    # Spacing, key order, escapes and an unknown field, as a server may send them: stored byte for byte.
    first = (
        '{"end_period_ts": 120, "price": {"close_dollars": "0.5500"}, "note": "caf\\u00e9 \\"x\\""}'
    )
    second = '{"volume_fp":"1.00","end_period_ts":60,"open_interest_fp":"2.00","yes_bid":null}'
    body = f'{{"markets":[{{"market_ticker":"A","candlesticks":[{first}, {second}]}},{{"candlesticks":[],"market_ticker":"B"}}],"cursor":""}}'
    got = read_batch(body.encode())
    assert not isinstance(got, str)
    a, b = got
    assert (a.ticker, b.ticker, len(b)) == ("A", "B", 0)
    # Ascending by end time; the texts are the answer's own bytes.
    assert a.ends.tolist() == [60, 120]
    assert a.payloads.to_pylist() == [second, first]
    assert [orjson.loads(t) for t in a.payloads.to_pylist()] == [
        json.loads(second),
        json.loads(first),
    ]


def test_repeated_end_time_keeps_the_last_candle_given() -> None:
    body = orjson.dumps(batch(("A", [candle(60, "0.1000"), candle(120), candle(60, "0.2000")])))
    got = read_batch(body)
    assert not isinstance(got, str)
    (a,) = got
    assert a.ends.tolist() == [60, 120]
    assert orjson.loads(a.payloads[0].as_py())["price"]["open_dollars"] == "0.2000"
    merged = CandlePayloads.merged([a, a], ticker="A", period_interval=1, historical=False)
    assert merged.ends.tolist() == [60, 120] and merged.payloads.equals(a.payloads)


def test_same_candles_as_the_object_decoder() -> None:
    items = [candle(60 * i, f"0.{i:02d}00") for i in range(1, 50)]
    body = orjson.dumps(batch(("A", items), ("B", items[:3])))
    got = read_batch(body)
    assert not isinstance(got, str)
    for block, (ticker, expected) in zip(got, (("A", items), ("B", items[:3])), strict=True):
        reference = CandlePayloads.from_items(
            expected, ticker=ticker, period_interval=1, historical=False
        )
        assert block.ends.tolist() == reference.ends.tolist()
        assert block.payloads.equals(reference.payloads)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (batch(("A", None)), "answer's markets[0] (A) has no 'candlesticks' list"),
        ({"cursor": ""}, "answer has no 'markets' list"),
        ({"markets": {"A": []}}, "malformed answer: field 'markets' should be a list"),
        (
            {"markets": [{"candlesticks": []}]},
            "malformed answer: markets[0] has no 'market_ticker'",
        ),
        (
            batch(("A", {"x": 1})),
            "malformed answer: markets[0] field 'candlesticks' should be a list",
        ),
    ],
)
def test_unusual_shapes_get_the_endpoint_problem(body: dict[str, Any], problem: str) -> None:
    got = read_batch(orjson.dumps(body))
    assert isinstance(got, str) and got.startswith(problem)


@pytest.mark.parametrize(
    ("candles", "message"),
    [
        ([{"price": {}}], "end_period_ts"),
        ([{**candle(0), "end_period_ts": "60"}], "integer end time"),
        ([{**candle(0), "end_period_ts": 60.0}], "end_period_ts"),
        (["not a candle"], "candlestick of 'A'"),
    ],
)
def test_candle_without_an_integer_end_time_is_a_protocol_error(
    candles: list[Any], message: str
) -> None:
    with pytest.raises(KalshiProtocolError, match=message):
        read_batch(orjson.dumps(batch(("A", candles))))


def test_bytes_that_are_not_json_or_not_an_object() -> None:
    good = orjson.dumps(batch(("A", [candle(60)])))
    broken = good.replace(b'"0.5500"', b'"0.55\xff0"', 1)
    with pytest.raises(KalshiProtocolError, match="answer is not JSON"):
        read_batch(broken)
    with pytest.raises(KalshiProtocolError, match="answer is not JSON"):
        read_batch(good[:-5])
    with pytest.raises(KalshiProtocolError, match="expected a JSON object, got list"):
        read_batch(b"[]")


def test_single_market_answer() -> None:
    items = [candle(120), candle(60)]
    got = read_single_answer(
        orjson.dumps({"candlesticks": items, "ticker": "A"}),
        decoded,
        _single_problem,
        ticker="A",
        period_interval=1,
        historical=True,
    )
    assert isinstance(got, CandlePayloads) and got.historical and got.ends.tolist() == [60, 120]
    assert got.payloads.to_pylist() == [orjson.dumps(c).decode() for c in reversed(items)]
    missing = read_single_answer(
        b'{"candlesticks":null}',
        decoded,
        _single_problem,
        ticker="A",
        period_interval=1,
        historical=True,
    )
    assert missing == "answer has no 'candlesticks' list"
