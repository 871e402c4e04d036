"""The simulator is as strict as Kalshi: a terminal error ends its sid, outages and foreign lifecycle messages."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import websockets
from websockets.exceptions import InvalidStatus

from kalshi_pipeline_tests.simulated import live_tickers
from kalshi_pipeline_tests.simulator.test_ws import PUBLIC_PEM, recv_json, signed_headers, subscribe


def test_error_25_ends_the_sid_and_consumes_a_seq_of_a_sequenced_channel(
    start_simulator: Any,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    tickers = live_tickers(start_simulator(auth_keys={"key-1": PUBLIC_PEM}, now=now))
    sim = start_simulator(
        auth_keys={"key-1": PUBLIC_PEM},
        now=now,
        ws_faults=f"overflow_after={len(tickers) + 1},overflow_drop=0,ping_interval=0",
    )

    async def go() -> None:
        async with websockets.connect(sim.ws_url, additional_headers=signed_headers()) as ws:
            await subscribe(ws, 1, {"channels": ["ticker", "trade"], "market_tickers": tickers})
            sids: dict[str, int] = {}
            errors: dict[int, dict[str, Any]] = {}
            trade_seq = 0
            while len(errors) < 2:
                frame = await recv_json(ws, 30.0)
                if frame["type"] == "subscribed":
                    sids[frame["msg"]["channel"]] = frame["msg"]["sid"]
                elif frame["type"] == "trade":
                    trade_seq = frame["seq"]
                elif frame["type"] == "error":
                    assert frame["msg"]["code"] == 25 and "id" not in frame
                    errors[frame["sid"]] = frame
            assert set(errors) == set(sids.values())
            assert errors[sids["trade"]]["seq"] == trade_seq + 1, "the error consumes a trade seq"
            assert "seq" not in errors[sids["ticker"]], "the ticker channel has no seq"
            # Nothing more arrives on the ended sids; the server no longer lists them.
            await ws.send(json.dumps({"id": 2, "cmd": "list_subscriptions"}))
            while True:
                frame = await recv_json(ws, 30.0)
                if frame.get("id") == 2:
                    break
                assert frame.get("sid") not in errors, f"a dead sid sent {frame}"
            assert frame["type"] == "ok" and frame["msg"] == []

    asyncio.run(go())


def test_an_outage_refuses_handshakes_until_trades_printed(start_simulator: Any) -> None:
    sim = start_simulator(
        auth_keys={"key-1": PUBLIC_PEM}, ws_faults="disconnect_after=1,outage_trades=2"
    )
    tickers = live_tickers(sim)

    async def go() -> int:
        async with websockets.connect(sim.ws_url, additional_headers=signed_headers()) as ws:
            await subscribe(ws, 1, {"channels": ["ticker"], "market_tickers": tickers})
            try:
                while True:
                    await recv_json(ws, 30.0)
            except websockets.ConnectionClosed:
                pass
        refused = 0
        while True:
            try:
                async with websockets.connect(sim.ws_url, additional_headers=signed_headers()):
                    return refused
            except InvalidStatus as exc:
                assert exc.response.status_code == 503
                refused += 1
                await asyncio.sleep(0.2)

    refused = asyncio.run(go())
    fired = sim.app.state.ws_hub.stats.faults_fired
    assert refused >= 1 and any(f.startswith("outage over") for f in fired), fired
    over = next(f for f in fired if f.startswith("outage over"))
    assert int(over.split(" after ")[1].split()[0]) >= 2
