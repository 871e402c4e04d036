"""The client against the local Kalshi exchange over real sockets: pagination, candles, historical data,
retries under injected faults, authentication, error bodies and staying inside the rate limit."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from kalshi_pipeline.kalshi import (
    KalshiAuthError,
    KalshiBadRequest,
    KalshiClient,
    KalshiConfig,
    KalshiError,
    KalshiNotFound,
    KalshiProtocolError,
    KalshiRateLimited,
    KalshiServerError,
    KalshiTransportError,
    Market,
)
from kalshi_pipeline.kalshi.candles import CandlePayloads
from kalshi_pipeline.kalshi.ratelimit import TokenBucket, UnlimitedLimiter, shared_limiter
from kalshi_pipeline.kalshi.tickers import market_team, parse_game_event
from kalshi_pipeline.kalshi.windows import candle_windows
from kalshi_pipeline.kalshi.ws import KalshiWebSocket

SERIES = "KXNBAGAME"
KEY_ID = "key-id"
T = TypeVar("T")


def run(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one async test body on a fresh event loop."""
    return asyncio.run(fn())


def config_for(sim: Any, **overrides: Any) -> KalshiConfig:
    """A client config for a simulator: no client-side limit, short backoff."""
    settings: dict[str, Any] = {
        "base_url": sim.base_url,
        "rate_limit_tier": "off",
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    settings.update(overrides)
    return KalshiConfig(**settings)


def test_exchange_status_and_cutoff(simulator: Any) -> None:
    async def body() -> None:
        async with KalshiClient(config_for(simulator)) as client:
            status = await client.get_exchange_status()
            cutoff = await client.get_historical_cutoff()
            assert isinstance(status.exchange_active, bool)
            assert cutoff.market_settled_ts.tzinfo is not None
            assert client.stats.requests == 2 and client.stats.retries == 0

    run(body)


def test_pagination_limit_one_matches_one_big_page(simulator: Any) -> None:
    async def body() -> None:
        async with KalshiClient(config_for(simulator)) as client:
            open_events = await client.list_events(series_ticker=SERIES, status="open")
            assert open_events, "the default world has live games"
            big = await client.list_events(series_ticker=SERIES, status="open", page_size=200)
            before = client.stats.requests
            small = await client.list_events(series_ticker=SERIES, status="open", page_size=1)
            assert [e.event_ticker for e in small] == [e.event_ticker for e in big]
            assert len({e.event_ticker for e in small}) == len(small)
            assert client.stats.requests - before >= len(small)

            event_ticker = big[0].event_ticker
            one_by_one = await client.list_markets(event_ticker=event_ticker, page_size=1)
            assert sorted(m.ticker for m in one_by_one) == sorted(
                m.ticker for m in await client.list_markets(event_ticker=event_ticker)
            )
            assert len(one_by_one) == 2
            # Filters stay on every page: every market of the walk belongs to the event.
            assert {m.event_ticker for m in one_by_one} == {event_ticker}

    run(body)


def test_events_nested_markets_milestones_and_tickers(simulator: Any) -> None:
    async def body() -> None:
        async with KalshiClient(config_for(simulator)) as client:
            events = await client.list_events(
                series_ticker=SERIES, status="open", with_nested_markets=True, with_milestones=True
            )
            for event in events:
                assert event.series_ticker == SERIES
                tickers = [m.ticker for m in event.markets]
                assert len(tickers) == 2
                game = parse_game_event(event.event_ticker, tickers)
                assert {game.away, game.home} == {market_team(t) for t in tickers}
            event = await client.get_event(events[0].event_ticker, with_nested_markets=True)
            assert len(event.markets) == 2
            assert all(e.milestones for e in events)
            milestones = await client.list_milestones(related_event_ticker=event.event_ticker)
            assert milestones and all(m.concerns(event.event_ticker) for m in milestones)
            assert milestones[0].start_date == events[0].milestones[0].start_date
            sports = await client.list_milestones(
                category="Sports",
                type="basketball_game",
                minimum_start_date=milestones[0].start_date,
                page_size=3,
            )
            assert sports and all(m.start_date >= milestones[0].start_date for m in sports)
            series = await client.get_series(SERIES)
            assert series.ticker == SERIES

    run(body)


async def _settled_live_market(client: KalshiClient) -> Market:
    """The first settled market still in the live window."""
    async for market in client.iter_markets(series_ticker=SERIES, status="settled", page_size=50):
        return market
    raise AssertionError("the simulated world has no settled market in the live window")


def test_candles_single_and_batch_agree_and_chunk(simulator: Any) -> None:
    async def body() -> None:
        async with KalshiClient(config_for(simulator)) as client:
            settled = []
            async for m in client.iter_markets(series_ticker=SERIES, status="settled", page_size=8):
                settled.append(m)
                if len(settled) == 4:
                    break
            market = settled[0]
            assert market.open_time is not None and market.settlement_ts is not None
            # Four days before the market opened up to an hour after settlement: > 5,000 minutes.
            start = int(market.open_time.timestamp()) - 4 * 86400 + 17
            end = int(market.settlement_ts.timestamp()) + 3600
            windows = candle_windows(start, end, 1, 5000)
            assert len(windows) >= 2

            singles = {}
            before = client.stats.requests
            for m in settled:
                singles[m.ticker] = await client.get_market_candlesticks(
                    SERIES, m.ticker, start, end
                )
            assert client.stats.requests - before == len(windows) * len(settled)
            single = singles[market.ticker]
            assert single, "a settled market has candles"
            ends = [c.end_period_ts for c in single]
            assert ends == sorted(set(ends))
            assert start <= ends[0] and ends[-1] <= end
            assert all(c.ticker == market.ticker and c.period_interval == 1 for c in single)

            # 4 tickers x ~8,000 periods: 5,000-period windows, 2 tickers per request (<= 10,000).
            before = client.stats.requests
            batch = await client.get_candlesticks_batch(list(singles), start, end)
            assert client.stats.requests - before == len(windows) * 2
            assert batch == singles
            assert [c.raw for c in batch[market.ticker]] == [c.raw for c in single]

            # The same candles as received, for bulk ingestion: same requests, same payloads.
            before = client.stats.requests
            payloads = await client.get_candle_payloads_batch(list(singles), start, end)
            assert client.stats.requests - before == len(windows) * 2
            assert set(payloads) == set(singles)
            for ticker, candles in singles.items():
                got = payloads[ticker]
                assert got.ends.tolist() == [c.end_period_ts for c in candles]
                assert _objects(got) == [c.raw for c in candles]
                assert not got.historical and got.period_interval == 1
            one = await client.get_market_candle_payloads(SERIES, market.ticker, start, end)
            assert _objects(one) == [c.raw for c in single] and one.ends.tolist() == ends

            event_candles = await client.get_event_candlesticks(
                SERIES, market.event_ticker, start, end
            )
            assert event_candles[market.ticker] == single
            for ticker, candles in event_candles.items():
                assert (
                    candles == (await client.get_candlesticks_batch([ticker], start, end))[ticker]
                )

            hourly = await client.get_market_candlesticks(SERIES, market.ticker, start, end, 60)
            assert hourly and all(c.end_period_ts % 3600 == 0 for c in hourly)
            assert sum(c.volume for c in hourly) == sum(c.volume for c in single)

    run(body)


def _objects(got: CandlePayloads) -> list[Any]:
    """The candles' texts decoded (each must be one JSON object, as received)."""
    return [orjson.loads(text) for text in got.payloads.to_pylist()]


def test_historical_routes(simulator: Any) -> None:
    async def body() -> None:
        async with KalshiClient(config_for(simulator)) as client:
            cutoff = await client.get_historical_cutoff()
            archived = await client.list_historical_markets(series_ticker=SERIES, page_size=1000)
            assert archived, "the simulated world has archived markets"
            market = archived[0]
            assert market.settlement_ts is None or market.settlement_ts < cutoff.market_settled_ts
            with pytest.raises(KalshiNotFound):
                await client.get_market(market.ticker)
            again = await client.get_historical_market(market.ticker)
            assert again.ticker == market.ticker
            assert market.open_time is not None and market.close_time is not None
            start, end = int(market.open_time.timestamp()), int(market.close_time.timestamp())
            candles = await client.get_historical_candlesticks(market.ticker, start, end)
            assert candles and all(c.historical for c in candles)
            assert [c.end_period_ts for c in candles] == sorted({c.end_period_ts for c in candles})
            assert "volume" in candles[0].raw and "volume_fp" not in candles[0].raw
            got = await client.get_historical_candle_payloads(market.ticker, start, end)
            assert got.historical and _objects(got) == [c.raw for c in candles]
            assert got.ends.tolist() == [c.end_period_ts for c in candles]

    run(body)


def test_trades_and_orderbooks(simulator: Any) -> None:
    async def body() -> None:
        async with KalshiClient(config_for(simulator)) as client:
            events = await client.list_events(
                series_ticker=SERIES, status="open", with_nested_markets=True
            )
            tickers = [m.ticker for e in events for m in e.markets]
            trades = [t async for t in client.iter_trades(ticker=tickers[0], page_size=100)]
            assert all(t.ticker == tickers[0] for t in trades)
            assert len({t.trade_id for t in trades}) == len(trades)
            book = await client.get_orderbook(tickers[0])
            assert [lv.price for lv in book.yes] == sorted(lv.price for lv in book.yes)
            books = await client.get_orderbooks(tickers)
            assert set(books) == set(tickers)

    run(body)


def test_client_refuses_a_second_event_loop(simulator: Any) -> None:
    client = KalshiClient(config_for(simulator))

    async def use() -> None:
        await client.get_exchange_status()

    run(use)
    with pytest.raises(KalshiError, match="another event loop"):
        run(use)


def test_many_concurrent_requests(simulator: Any) -> None:
    async def body() -> None:
        async with KalshiClient(config_for(simulator, max_concurrency=8)) as client:
            events = await client.list_events(
                series_ticker=SERIES, status="open", with_nested_markets=True
            )
            tickers = [m.ticker for e in events for m in e.markets] * 10
            markets = await asyncio.gather(*(client.get_market(t) for t in tickers))
            assert [m.ticker for m in markets] == tickers

    run(body)


def test_scripted_faults_are_retried_and_counted(start_simulator: Callable[..., Any]) -> None:
    sim = start_simulator(faults="script=429;503;reset;ok")

    async def body() -> None:
        async with KalshiClient(config_for(sim)) as client:
            status = await client.get_exchange_status()
            assert isinstance(status.trading_active, bool)
            assert client.stats.requests == 4
            assert client.stats.retries == 3
            assert client.stats.rate_limited == 1
            assert client.stats.server_errors == 1
            assert client.stats.transport_errors == 1

    run(body)


def test_random_faults_do_not_change_results(start_simulator: Callable[..., Any]) -> None:
    clean = start_simulator()
    faulty = start_simulator(faults="429=0.3,503=0.1,reset=0.05,latency=0.2:50")

    async def walk(sim: Any) -> tuple[list[str], Any]:
        async with KalshiClient(config_for(sim, max_retries=12)) as client:
            events = []
            async for event in client.iter_events(
                series_ticker=SERIES, status="settled", page_size=5
            ):
                events.append(event)
                if len(events) == 20:
                    break
            markets = await asyncio.gather(
                *(client.list_markets(event_ticker=e.event_ticker, page_size=1) for e in events)
            )
            return [m.ticker for group in markets for m in group], client.stats

    expected, clean_stats = run(lambda: walk(clean))
    got, stats = run(lambda: walk(faulty))
    assert len(expected) == 40 and clean_stats.retries == 0
    assert got == expected
    assert stats.retries > 0 and stats.rate_limited > 0 and stats.server_errors > 0


@pytest.mark.parametrize(
    ("faults", "error", "needle"),
    [
        ("503=1.0", KalshiServerError, "503"),
        ("429=1.0", KalshiRateLimited, "429"),
        ("reset=1.0", KalshiTransportError, "no answer"),
    ],
)
def test_exhausted_retries_raise_a_clear_error(
    start_simulator: Callable[..., Any], faults: str, error: type[Exception], needle: str
) -> None:
    sim = start_simulator(faults=faults)

    async def body() -> None:
        async with KalshiClient(config_for(sim, max_retries=2)) as client:
            with pytest.raises(error) as err:
                await client.get_exchange_status()
            text = str(err.value)
            assert "gave up after 3 attempts" in text and needle in text
            if error is KalshiTransportError:
                assert "check KALSHI_API_BASE_URL" in text
            else:  # the same outcome three times is said once, with its count
                assert f"outcomes: 3x {needle})" in text
            assert "GET /trade-api/v2/exchange/status" in text
            assert client.stats.requests == 3 and client.stats.retries == 2

    run(body)


@pytest.mark.integration
def test_an_unreachable_base_url_is_said_once_with_the_setting_to_check() -> None:
    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        config = KalshiConfig(
            base_url=f"http://127.0.0.1:{port}/trade-api/v2", max_retries=3, backoff_max_s=0.01
        )

        async def body() -> None:
            async with KalshiClient(config) as client:
                with pytest.raises(KalshiTransportError) as err:
                    await client.get_exchange_status()
            text = str(err.value)
            assert "\n" not in text
            assert text.count("All connection attempts failed") == 1
            assert "4x ConnectError: All connection attempts failed" in text
            assert text.endswith(
                "check KALSHI_API_BASE_URL (or KALSHI_ENV) and that the exchange is reachable from here"
            )

        run(body)


def test_signed_requests_and_auth_errors(
    start_simulator: Callable[..., Any], key_pair: Any, other_key_pair: Any
) -> None:
    sim = start_simulator(auth_keys={KEY_ID: key_pair.public_pem}, require_auth=True)

    async def body() -> None:
        good = config_for(sim, api_key_id=KEY_ID, private_key_pem=key_pair.pkcs1_pem)
        async with KalshiClient(good) as client:
            markets = await client.list_markets(series_ticker=SERIES, status="open", page_size=1)
            assert markets
            # Signed path excludes the query string (limit, cursor, filters are all in the query).
            candles_market = markets[0]
            assert await client.get_market(candles_market.ticker)
        pkcs8 = config_for(sim, api_key_id=KEY_ID, private_key_pem=key_pair.pkcs8_pem)
        async with KalshiClient(pkcs8) as client:
            assert (await client.get_exchange_status()) is not None

        wrong = config_for(sim, api_key_id=KEY_ID, private_key_pem=other_key_pair.pkcs1_pem)
        async with KalshiClient(wrong) as client:
            with pytest.raises(KalshiAuthError) as err:
                await client.get_exchange_status()
            assert err.value.status == 401
            assert "clock" in str(err.value) and "demo" in str(err.value)
            assert client.stats.retries == 0
        async with KalshiClient(config_for(sim)) as client:
            with pytest.raises(KalshiAuthError):
                await client.get_exchange_status()

    run(body)


def test_ed25519_api_key_signs_rest_and_the_websocket_handshake(
    start_simulator: Callable[..., Any], ed25519_pair: Any, key_pair: Any
) -> None:
    """An Ed25519 key (detected from its PEM) is accepted on REST and on the WebSocket upgrade."""
    sim = start_simulator(
        auth_keys={KEY_ID: ed25519_pair.public_pem, "rsa-key": key_pair.public_pem},
        require_auth=True,
    )

    async def body() -> None:
        config = config_for(sim, api_key_id=KEY_ID, private_key_pem=ed25519_pair.pkcs8_pem)
        async with KalshiClient(config) as client:
            assert (await client.get_exchange_status()) is not None
            assert await client.list_markets(series_ticker=SERIES, page_size=1)
        signer = config.signer()
        assert signer is not None and signer.algorithm == "Ed25519"
        ws = KalshiWebSocket(sim.ws_url, signer=signer.sign)
        async with ws:
            await ws.wait_connected(20)
        # The RSA key signing under the Ed25519 key's id is refused.
        wrong = config_for(sim, api_key_id=KEY_ID, private_key_pem=key_pair.pkcs8_pem)
        async with KalshiClient(wrong) as client:
            with pytest.raises(KalshiAuthError):
                await client.get_exchange_status()

    run(body)


def test_404_and_400_carry_kalshi_code_and_message(simulator: Any) -> None:
    async def body() -> None:
        async with KalshiClient(config_for(simulator)) as client:
            with pytest.raises(KalshiNotFound) as missing:
                await client.get_market("KXNBAGAME-99JAN01AAABBB-AAA")
            assert missing.value.status == 404 and missing.value.code
            assert missing.value.message
            with pytest.raises(KalshiBadRequest) as bad:
                await client.list_markets(min_created_ts=1, min_close_ts=2)
            assert bad.value.status == 400 and bad.value.code and bad.value.message
            with pytest.raises(KalshiBadRequest) as bad_period:
                market = await _settled_live_market(client)
                await client.request_json(
                    "GET",
                    f"/series/{SERIES}/markets/{market.ticker}/candlesticks",
                    {"start_ts": 0, "end_ts": 60, "period_interval": 7},
                )
            assert bad_period.value.code
            assert client.stats.retries == 0

    run(body)


def test_shared_limiter_keeps_client_under_the_basic_bucket(
    start_simulator: Callable[..., Any],
) -> None:
    sim = start_simulator(rate_limit="basic")
    requests = 70  # 40 fit the 400-token burst, the rest are paced at 20 per second

    async def hammer(limiter: Any) -> Any:
        config = config_for(sim, max_retries=0, max_concurrency=32)
        async with KalshiClient(config, limiter=limiter) as client:
            # Kalshi's bucket for this caller starts when its first request arrives; a lone first request
            # pins that instant close to the client's (the jitter headroom covers the rest).
            await client.get_exchange_status()
            results = await asyncio.gather(
                *(client.get_exchange_status() for _ in range(requests)), return_exceptions=True
            )
            return results, client.stats

    # The process-wide Basic bucket is fresh or already in debt; either way it never lets the client
    # exceed what the (fresh) simulator bucket refills.
    results, stats = run(lambda: hammer(shared_limiter("basic")))
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert stats.rate_limited == 0 and stats.requests == requests + 1
    # Control: the same burst without a limiter does hit the simulator's bucket.
    results, stats = run(lambda: hammer(UnlimitedLimiter()))
    assert stats.rate_limited > 0
    assert any(isinstance(r, KalshiRateLimited) for r in results)


def test_limiter_is_shared_across_event_loops(start_simulator: Callable[..., Any]) -> None:
    sim = start_simulator(rate_limit="basic")
    bucket = TokenBucket.for_tier("basic")

    async def batch() -> int:
        async with KalshiClient(config_for(sim, max_retries=0), limiter=bucket) as client:
            await client.get_exchange_status()
            await asyncio.gather(*(client.get_exchange_status() for _ in range(25)))
            return client.stats.rate_limited

    assert run(batch) == 0
    assert run(batch) == 0  # second asyncio.run: same bucket, already in debt, still no 429


def test_repeated_cursor_is_a_protocol_error() -> None:
    """A misbehaving server (no real one does this on purpose) that hands back the same cursor."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"markets": [], "cursor": "same"})

    transport = httpx.MockTransport(handler)

    async def body() -> None:
        config = KalshiConfig(base_url="http://kalshi.invalid/trade-api/v2", rate_limit_tier="off")
        async with KalshiClient(config, transport=transport) as client:
            with pytest.raises(KalshiProtocolError, match="cursor 'same' twice"):
                await client.list_markets()

    run(body)


def _paged_transport(pages: int, requested: list[str | None]) -> httpx.MockTransport:
    """`GET /markets` answering `pages` pages (cursors c1, c2, ...), recording each asked cursor."""

    async def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        requested.append(cursor)
        page = 0 if cursor is None else int(cursor[1:])
        following = f"c{page + 1}" if page + 1 < pages else ""
        return httpx.Response(200, json={"markets": [], "page": page, "cursor": following})

    return httpx.MockTransport(handler)


def test_read_ahead_asks_for_the_next_page_while_one_is_read() -> None:
    requested: list[str | None] = []
    config = KalshiConfig(base_url="http://kalshi.invalid/trade-api/v2", rate_limit_tier="off")

    async def body() -> list[int]:
        read: list[int] = []
        async with KalshiClient(config, transport=_paged_transport(3, requested)) as client:
            async for page in client.paginate("/markets", read_ahead=True):
                read.append(page["page"])
                if page["cursor"]:
                    # Without read-ahead nothing would ask for the next page while this one is held.
                    async with asyncio.timeout(10):
                        while page["cursor"] not in requested:
                            await asyncio.sleep(0.001)
        return read

    assert run(body) == [0, 1, 2]
    assert requested == [None, "c1", "c2"]


def test_without_read_ahead_a_caller_that_stops_asks_for_no_more_pages() -> None:
    requested: list[str | None] = []
    config = KalshiConfig(base_url="http://kalshi.invalid/trade-api/v2", rate_limit_tier="off")

    async def body() -> None:
        async with KalshiClient(config, transport=_paged_transport(3, requested)) as client:
            async for _ in client.paginate("/markets"):
                break

    run(body)
    assert requested == [None]


def test_candle_windows_cover_without_gaps_or_overlap() -> None:
    for start, end, period, cap in [
        (17, 1_000_017, 1, 5000),
        (0, 59, 1, 1),
        (3600, 3600 * 50, 60, 7),
    ]:
        windows = candle_windows(start, end, period, cap)
        assert windows[0][0] == start and windows[-1][1] == end
        for (_, hi), (lo, _) in itertools.pairwise(windows):
            assert lo == hi + 1
        step = period * 60
        for lo, hi in windows:
            aligned_ends = hi // step - -(-lo // step) + 1
            assert aligned_ends <= cap and -(-(hi - lo) // step) + 1 <= cap
    with pytest.raises(ValueError, match="period_interval"):
        candle_windows(0, 10, 5, 10)


def test_event_candles_follow_adjusted_end_ts() -> None:
    """Kalshi truncates event candles at 5,000 in total; the simulated world never holds that many per
    event, so this exchange emits a dense two-market minute grid over a real socket-free transport."""
    minute = 60
    event_markets = ["EV-A", "EV-B"]
    requests: list[tuple[int, int]] = []

    def candle(end: int) -> dict[str, Any]:
        return {"end_period_ts": end, "yes_bid": {}, "yes_ask": {}, "price": {},
                "volume_fp": "1.00", "open_interest_fp": f"{end // minute}.00"}  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params["start_ts"])
        end = int(request.url.params["end_ts"])
        requests.append((start, end))
        ends = list(range(-(-start // minute) * minute, end + 1, minute))
        adjusted = end
        if len(ends) * len(event_markets) > 5000:
            adjusted = ends[5000 // len(event_markets) - 1]
        kept = [e for e in ends if e <= adjusted]
        return httpx.Response(
            200,
            json={
                "market_tickers": event_markets,
                "market_candlesticks": [[candle(e) for e in kept] for _ in event_markets],
                "adjusted_end_ts": adjusted,
            },
        )

    async def body() -> dict[str, Any]:
        config = KalshiConfig(base_url="http://kalshi.invalid/trade-api/v2", rate_limit_tier="off")
        async with KalshiClient(config, transport=httpx.MockTransport(handler)) as client:
            return await client.get_event_candlesticks("S", "EV", 0, 9000 * minute)

    result = run(body)
    expected = list(range(0, 9000 * minute + 1, minute))
    for name in event_markets:
        assert [c.end_period_ts for c in result[name]] == expected
    assert len(requests) > 2
    assert all(lo < hi for lo, hi in requests)


def test_scalar_settlements_and_2026_fields_are_kept_exactly(simulator: Any) -> None:
    """A game called off tied settles `scalar` at 0.5000; the model keeps it (Decimal), and the new fields."""

    async def body() -> None:
        async with KalshiClient(config_for(simulator)) as client:
            settled = await client.list_markets(series_ticker=SERIES, status="settled")
            scalar = [m for m in settled if m.result == "scalar"]
            assert scalar
            for market in scalar:
                assert market.settlement_value_dollars == Decimal("0.5000")
                assert market.settlement_bounds_type == "default"
                assert market.raw["result"] == "scalar"
            pair = [m for m in settled if m.event_ticker == scalar[0].event_ticker]
            assert len(pair) == 2 and {m.result for m in pair} == {"scalar"}
            series = await client.get_series(SERIES)
            assert series.categories == ("Sports",)

    run(body)
