"""A candle answer without its candle list is a protocol error (asked again, then raised), never "no candles".

The local exchange always answers well-formed, so the malformed answers come from an httpx transport that
plays a misbehaving server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig, KalshiProtocolError

BASE = "http://kalshi.invalid/trade-api/v2"
CANDLE = {
    "end_period_ts": 1_700_000_040,
    "yes_bid": {
        "open_dollars": "0.4000",
        "low_dollars": "0.4000",
        "high_dollars": "0.4100",
        "close_dollars": "0.4100",
    },
    "yes_ask": {
        "open_dollars": "0.4200",
        "low_dollars": "0.4200",
        "high_dollars": "0.4300",
        "close_dollars": "0.4300",
    },
    "price": {"previous_dollars": "0.4100"},
    "volume_fp": "0.00",
    "open_interest_fp": "12.00",
}


def _client(answers: list[dict[str, Any]], seen: list[str]) -> KalshiClient:
    """A client whose server gives `answers` in turn (the last one repeats)."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=answers[min(len(seen), len(answers)) - 1])

    config = KalshiConfig(
        base_url=BASE,
        rate_limit_tier="off",
        max_retries=2,
        backoff_base_s=0.001,
        backoff_max_s=0.001,
    )
    return KalshiClient(config, transport=httpx.MockTransport(handler))


def _run(answers: list[dict[str, Any]], call: Callable[[KalshiClient], Any]) -> tuple[Any, int]:
    seen: list[str] = []

    async def body() -> Any:
        async with _client(answers, seen) as client:
            return await call(client)

    return asyncio.run(body()), len(seen)


def _single(client: KalshiClient) -> Any:
    return client.get_historical_candlesticks("KX-T", 1_700_000_000, 1_700_000_100)


def _batch(client: KalshiClient) -> Any:
    return client.get_candlesticks_batch(["KX-T"], 1_700_000_000, 1_700_000_100)


@pytest.mark.parametrize(
    ("call", "missing"),
    [
        (_single, {"ticker": "KX-T"}),
        (_single, {"ticker": "KX-T", "candlesticks": None}),
        (_batch, {}),
        (_batch, {"markets": [{"market_ticker": "KX-T"}]}),
    ],
)
def test_an_answer_without_its_list_is_retried_then_a_protocol_error(
    call: Callable[[KalshiClient], Any], missing: dict[str, Any]
) -> None:
    with pytest.raises(KalshiProtocolError, match="protocol error, not an empty market"):
        _run([missing], call)
    # One first attempt and max_retries=2 more.
    seen: list[str] = []

    async def count() -> None:
        async with _client([missing], seen) as client:
            with pytest.raises(KalshiProtocolError):
                await call(client)
            assert client.stats.retries == 2

    asyncio.run(count())
    assert len(seen) == 3


def test_a_missing_list_that_comes_back_on_retry_is_used() -> None:
    good_single = {"ticker": "KX-T", "candlesticks": [CANDLE]}
    candles, requests = _run([{"ticker": "KX-T"}, good_single], _single)
    assert requests == 2 and [c.end_period_ts for c in candles] == [1_700_000_040]

    good_batch = {"markets": [{"market_ticker": "KX-T", "candlesticks": [CANDLE]}]}
    by_ticker, requests = _run([{"markets": None}, good_batch], _batch)
    assert requests == 2 and [c.end_period_ts for c in by_ticker["KX-T"]] == [1_700_000_040]


def test_an_empty_list_is_no_candles_and_a_wrong_type_is_not_retried() -> None:
    candles, requests = _run([{"ticker": "KX-T", "candlesticks": []}], _single)
    assert candles == [] and requests == 1
    by_ticker, _ = _run([{"markets": []}], _batch)
    assert by_ticker == {"KX-T": []}
    with pytest.raises(KalshiProtocolError, match="should be a list"):
        _run([{"ticker": "KX-T", "candlesticks": {"oops": 1}}], _single)
