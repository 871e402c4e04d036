"""Protocol tests of the simulator's WebSocket endpoint over a real socket, with a bare `websockets` client.

These tests deliberately avoid `kalshi_pipeline.kalshi`: they check the wire shapes Kalshi documents.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode

from kalshi_pipeline.simulator.paths import WS_PATH
from kalshi_pipeline.simulator.ws.faults import WsFaults
from kalshi_pipeline_tests.simulated import live_tickers
from kalshi_pipeline_tests.simulator import signing
from kalshi_pipeline_tests.simulator.signing import public_pem

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = public_pem(KEY)


def signed_headers(
    key: rsa.RSAPrivateKey = KEY, key_id: str = "key-1", path: str = WS_PATH
) -> dict[str, str]:
    """Kalshi's three handshake headers, signed here independently of the client package."""
    return signing.signed_headers(key, "GET", path, key_id)


class PingCounting(ClientConnection):
    """Counts Ping frames and remembers their payloads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pings: list[bytes] = []

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pings.append(bytes(event.data))
        super().process_event(event)


@pytest.fixture(scope="module")
def sim(start_simulator_module: Any) -> Any:
    return start_simulator_module(auth_keys={"key-1": PUBLIC_PEM}, ws_faults="ping_interval=0.3")


async def subscribe(ws: ClientConnection, command_id: int, params: dict[str, Any]) -> None:
    """Send a `subscribe` command with these params."""
    await ws.send(json.dumps({"id": command_id, "cmd": "subscribe", "params": params}))


async def recv_json(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws: ClientConnection, predicate: Any, limit: int = 2000) -> dict[str, Any]:
    for _ in range(limit):
        frame = await recv_json(ws)
        if predicate(frame):
            return frame
    raise AssertionError("expected frame never arrived")


def test_handshake_without_headers_is_401(sim: Any) -> None:
    async def go() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(sim.ws_url):
                pass
        assert info.value.response.status_code == 401

    asyncio.run(go())


@pytest.mark.parametrize(
    "headers",
    [
        lambda: signed_headers(
            OTHER_KEY
        ),  # signed by a key the exchange does not know under this id
        lambda: signed_headers(KEY, key_id="unknown"),
        lambda: signed_headers(KEY, path="/trade-api/v2"),  # the REST path instead of the WS path
        lambda: {**signed_headers(), "KALSHI-ACCESS-SIGNATURE": "not base64!"},
    ],
    ids=["wrong-key", "unknown-key-id", "rest-path-signed", "garbage-signature"],
)
def test_handshake_with_bad_signature_is_401(sim: Any, headers: Any) -> None:
    async def go() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(sim.ws_url, additional_headers=headers()):
                pass
        assert info.value.response.status_code == 401
        assert b"authentication_error" in info.value.response.body

    asyncio.run(go())


def test_without_configured_keys_any_signed_handshake_passes_but_unsigned_fails(
    start_simulator_module: Any,
) -> None:
    open_sim = start_simulator_module()

    async def go() -> None:
        async with websockets.connect(
            open_sim.ws_url, additional_headers=signed_headers(OTHER_KEY)
        ) as ws:
            await ws.send(json.dumps({"id": 1, "cmd": "list_subscriptions"}))
            assert await recv_json(ws) == {"type": "ok", "id": 1, "msg": []}
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(open_sim.ws_url):
                pass
        assert info.value.response.status_code == 401

    asyncio.run(go())


def test_subscribe_acks_sids_and_list_subscriptions(sim: Any) -> None:
    tickers = live_tickers(sim)

    async def go() -> None:
        async with websockets.connect(sim.ws_url, additional_headers=signed_headers()) as ws:
            await subscribe(ws, 1, {"channels": ["ticker", "trade"], "market_tickers": tickers})
            acks = [await recv_until(ws, lambda f: f["type"] == "subscribed") for _ in range(2)]
            assert acks == [
                {"type": "subscribed", "id": 1, "msg": {"channel": "ticker", "sid": 1}},
                {"type": "subscribed", "id": 1, "msg": {"channel": "trade", "sid": 2}},
            ]
            await ws.send(json.dumps({"id": 2, "cmd": "list_subscriptions"}))
            listed = await recv_until(ws, lambda f: f.get("id") == 2)
            assert listed == {
                "type": "ok",
                "id": 2,
                "msg": [{"channel": "ticker", "sid": 1}, {"channel": "trade", "sid": 2}],
            }
            # A repeated subscribe adds markets and is answered with `ok` (consuming a seq).
            await subscribe(ws, 3, {"channels": ["trade"], "market_ticker": tickers[0]})
            ok = await recv_until(ws, lambda f: f.get("id") == 3)
            assert ok["type"] == "ok" and ok["sid"] == 2 and isinstance(ok["seq"], int)
            assert ok["msg"]["market_tickers"] == sorted(tickers)
            await ws.send(json.dumps({"id": 4, "cmd": "unsubscribe", "params": {"sids": [1]}}))
            gone = await recv_until(ws, lambda f: f.get("id") == 4)
            assert gone["type"] == "unsubscribed" and gone["sid"] == 1 and gone["seq"] == 1

    asyncio.run(go())


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("{not json", 1),
        ({"id": 5, "cmd": "subscribe"}, 2),
        ({"id": 5, "cmd": "subscribe", "params": {"channels": []}}, 3),
        ({"id": 5, "cmd": "unsubscribe", "params": {}}, 4),
        ({"id": 5, "cmd": "launch_rockets"}, 5),
        ({"id": 5, "cmd": "unsubscribe", "params": {"sids": [99]}}, 7),
        ({"id": 5, "cmd": "subscribe", "params": {"channels": ["ticker_v2"]}}, 8),
        (
            {
                "id": 5,
                "cmd": "update_subscription",
                "params": {"sids": [1, 2], "action": "add_markets"},
            },
            12,
        ),
        ({"id": 5, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"]}}, 14),
        (
            {
                "id": 5,
                "cmd": "subscribe",
                "params": {"channels": ["trade"], "market_ticker": "NOPE-1"},
            },
            11,  # 16 "Market not found" is retired (AsyncAPI 2.0.0): never emitted
        ),
    ],
)
def test_command_errors_use_kalshi_codes(sim: Any, command: Any, code: int) -> None:
    assert code not in (6, 16, 17), "retired codes are never sent"

    async def go() -> None:
        async with websockets.connect(sim.ws_url, additional_headers=signed_headers()) as ws:
            await ws.send(command if isinstance(command, str) else json.dumps(command))
            frame = await recv_json(ws)
            assert frame["type"] == "error"
            assert frame["msg"]["code"] == code
            assert isinstance(frame["msg"]["msg"], str) and frame["msg"]["msg"]
            if isinstance(command, dict):
                assert frame["id"] == 5

    asyncio.run(go())


def test_update_subscription_errors(sim: Any) -> None:
    tickers = live_tickers(sim)

    async def go() -> None:
        async with websockets.connect(sim.ws_url, additional_headers=signed_headers()) as ws:
            await subscribe(ws, 1, {"channels": ["ticker"], "market_tickers": tickers[:1]})
            await recv_until(ws, lambda f: f["type"] == "subscribed")
            cases = [
                ({"sids": [1], "market_tickers": tickers[:1]}, 15),
                ({"sids": [1], "market_tickers": tickers[:1], "action": "explode"}, 13),
                ({"sids": [1], "action": "add_markets"}, 14),
                ({"sids": [1], "market_tickers": tickers[:1], "action": "get_snapshot"}, 13),
            ]
            for i, (params, code) in enumerate(cases, start=10):
                await ws.send(json.dumps({"id": i, "cmd": "update_subscription", "params": params}))
                frame = await recv_until(ws, lambda f, i=i: f.get("id") == i)
                assert (frame["type"], frame["msg"]["code"]) == ("error", code)

    asyncio.run(go())


def test_ticker_has_no_seq_and_trade_fields_are_fixed_point(sim: Any) -> None:
    tickers = live_tickers(sim)

    async def go() -> None:
        async with websockets.connect(sim.ws_url, additional_headers=signed_headers()) as ws:
            await subscribe(
                ws,
                1,
                {
                    "channels": ["ticker"],
                    "market_tickers": tickers,
                    "send_initial_snapshot": True,
                },
            )
            await recv_until(ws, lambda f: f["type"] == "subscribed")
            frame = await recv_until(ws, lambda f: f["type"] == "ticker")
            assert "seq" not in frame and frame["sid"] == 1
            msg = frame["msg"]
            assert msg["market_ticker"] in tickers
            for key in ("price_dollars", "yes_bid_dollars", "yes_ask_dollars"):
                assert len(msg[key].split(".")[1]) == 4
                assert Decimal(0) <= Decimal(msg[key]) <= Decimal(1)
            for key in ("volume_fp", "open_interest_fp", "yes_bid_size_fp", "yes_ask_size_fp"):
                assert len(msg[key].split(".")[1]) == 2
            assert isinstance(msg["ts_ms"], int) and msg["ts"] == msg["ts_ms"] // 1000

    asyncio.run(go())


def test_orderbook_snapshot_then_deltas_reconstructs_the_rest_orderbook(sim: Any) -> None:
    ticker = live_tickers(sim)[0]

    def rest_book() -> dict[str, dict[Decimal, Decimal]]:
        body = httpx.get(f"{sim.base_url}/markets/{ticker}/orderbook").json()["orderbook_fp"]
        return {
            side: {Decimal(p): Decimal(c) for p, c in body.get(f"{side}_dollars") or []}
            for side in ("yes", "no")
        }

    async def go() -> None:
        async with websockets.connect(sim.ws_url, additional_headers=signed_headers()) as ws:
            await subscribe(ws, 1, {"channels": ["orderbook_delta"], "market_ticker": ticker})
            assert (await recv_json(ws))["type"] == "subscribed"
            snapshot = await recv_json(ws)
            assert snapshot["type"] == "orderbook_snapshot" and snapshot["seq"] == 1
            book = {
                side: {
                    Decimal(p): Decimal(c) for p, c in snapshot["msg"].get(f"{side}_dollars_fp", [])
                }
                for side in ("yes", "no")
            }
            for side in ("yes", "no"):
                levels = snapshot["msg"].get(f"{side}_dollars_fp", [])
                assert levels == sorted(levels, key=lambda lv: Decimal(lv[0]))
            seq, deltas, matched = 1, 0, 0
            # Read deltas until several quiet moments where the rebuilt book equals REST's book.
            while matched < 3 or deltas == 0:
                try:
                    frame = await recv_json(ws, timeout=0.4)
                except TimeoutError:
                    if await asyncio.to_thread(rest_book) == book:
                        matched += 1
                    continue
                assert frame["type"] == "orderbook_delta"
                assert frame["seq"] == seq + 1, "seq must grow by exactly one per message"
                seq = frame["seq"]
                deltas += 1
                msg = frame["msg"]
                side = book[msg["side"]]
                price, change = Decimal(msg["price_dollars"]), Decimal(msg["delta_fp"])
                size = side.get(price, Decimal(0)) + change
                assert size >= 0
                if size == 0:
                    side.pop(price, None)
                else:
                    side[price] = size
            assert deltas > 0

    asyncio.run(go())


def test_server_pings_with_heartbeat_payload(sim: Any) -> None:
    async def go() -> None:
        async with websockets.connect(
            sim.ws_url, additional_headers=signed_headers(), create_connection=PingCounting
        ) as ws:
            assert isinstance(ws, PingCounting)
            deadline = time.monotonic() + 20
            while len(ws.pings) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert len(ws.pings) >= 2
            assert set(ws.pings) == {b"heartbeat"}

    asyncio.run(go())


def test_client_pings_are_answered(sim: Any) -> None:
    async def go() -> None:
        async with websockets.connect(sim.ws_url, additional_headers=signed_headers()) as ws:
            latency = await asyncio.wait_for(await ws.ping(b"are you there"), 10)
            assert latency >= 0

    asyncio.run(go())


def test_open_connections_get_close_1012_when_the_server_stops(start_simulator: Any) -> None:
    server = start_simulator()

    async def go() -> None:
        async with websockets.connect(server.ws_url, additional_headers=signed_headers()) as ws:
            await subscribe(ws, 1, {"channels": ["market_lifecycle_v2"]})
            assert (await recv_json(ws))["type"] == "subscribed"
            stopping = asyncio.create_task(asyncio.to_thread(server.stop))
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await recv_json(ws)
            await stopping
        assert info.value.rcvd is not None and info.value.rcvd.code == 1012

    asyncio.run(go())


def test_lifecycle_subscription_takes_no_markets(sim: Any) -> None:
    async def go() -> None:
        async with websockets.connect(sim.ws_url, additional_headers=signed_headers()) as ws:
            await subscribe(ws, 1, {"channels": ["market_lifecycle_v2"]})
            assert await recv_json(ws) == {
                "type": "subscribed",
                "id": 1,
                "msg": {"channel": "market_lifecycle_v2", "sid": 1},
            }

    asyncio.run(go())


def test_ws_faults_spec_is_validated() -> None:
    assert WsFaults.parse("ping_interval=0.5, disconnect_after=10").disconnect_after == 10
    assert WsFaults.parse(None) == WsFaults()
    with pytest.raises(ValueError, match="not key=value"):
        WsFaults.parse("explode=1")
    with pytest.raises(ValueError, match="not a number"):
        WsFaults.parse("disconnect_after=soon")
    with pytest.raises(ValueError, match="drop_seq_channel"):
        WsFaults.parse("drop_seq_channel=fills")


def test_use_yes_price_reports_no_levels_in_yes_leg_prices(sim: Any) -> None:
    """With `use_yes_price` the NO bids come as 1 - price (the REST book's NO side, mirrored)."""
    ticker = live_tickers(sim)[0]

    def rest_no_side() -> dict[Decimal, Decimal]:
        body = httpx.get(f"{sim.base_url}/markets/{ticker}/orderbook").json()["orderbook_fp"]
        return {Decimal(p): Decimal(c) for p, c in body.get("no_dollars") or []}

    async def go() -> None:
        async with websockets.connect(sim.ws_url, additional_headers=signed_headers()) as ws:
            params = {"channels": ["orderbook_delta"], "market_ticker": ticker}
            await subscribe(ws, 1, {**params, "use_yes_price": "yes"})
            error = await recv_json(ws)
            assert error["type"] == "error" and error["msg"]["code"] == 11
            await subscribe(ws, 2, {**params, "use_yes_price": True})
            assert (await recv_json(ws))["type"] == "subscribed"
            await recv_json(ws)  # the first snapshot
            for attempt in range(60):
                # Ask again until a snapshot and the REST book agree (quotes move between the two reads).
                await ws.send(json.dumps({"id": 10 + attempt, "cmd": "update_subscription",
                    "params": {"sid": 1, "market_tickers": [ticker], "action": "get_snapshot"}}))  # fmt: skip
                snapshot = await recv_until(ws, lambda f: f["type"] == "orderbook_snapshot")
                levels = snapshot["msg"].get("no_dollars_fp", [])
                assert levels == sorted(levels, key=lambda lv: Decimal(lv[0]))
                mirrored = {1 - Decimal(p): Decimal(c) for p, c in levels}
                if mirrored == await asyncio.to_thread(rest_no_side) and mirrored:
                    return
                await asyncio.sleep(0.2)
            raise AssertionError("a use_yes_price snapshot never matched the REST book")

    asyncio.run(go())
