"""Tests of `kalshi-pipeline probe` against the simulator over a real socket."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_pipeline.cli import main
from kalshi_pipeline.kalshi import KalshiConfig
from kalshi_pipeline.kalshi.probe import exchange_report, render_exchange

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


def _use(running: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Point the CLI's settings at a running simulator with the probe's key."""
    key_file = tmp_path / "probe.pem"
    key_file.write_text(PEM)
    monkeypatch.setenv("KALSHI_API_KEY_ID", "probe")
    monkeypatch.setenv("KALSHI_PRIVATE_KEY_PATH", str(key_file))
    monkeypatch.delenv("KALSHI_PRIVATE_KEY", raising=False)
    monkeypatch.setenv("KALSHI_API_BASE_URL", running.base_url)
    monkeypatch.delenv("KALSHI_WS_URL", raising=False)
    return running


@pytest.fixture
def sim(start_simulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    running = start_simulator(auth_keys={"probe": PEM}, ws_faults="ping_interval=0.25")
    return _use(running, monkeypatch, tmp_path)


def _z(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_probe_reports_the_exchange_status_and_the_next_maintenance_window(
    start_simulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now + timedelta(hours=2), now + timedelta(hours=4)
    _use(
        start_simulator(auth_keys={"probe": PEM}, now=now, maintenance_windows=((start, end),)),
        monkeypatch,
        tmp_path,
    )
    out = tmp_path / "probe.json"
    assert main(["probe", "--channels", "ticker", "--seconds", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert json.loads(out.read_text())["exchange"] == {
        "exchange_active": True,
        "trading_active": True,
        "exchange_estimated_resume_time": None,
        "exchange_index_statuses": [
            {
                "exchange_index": 0,
                "description": "Default",
                "exchange_active": True,
                "trading_active": True,
                "intra_exchange_transfers_active": True,
            }
        ],
        "next_maintenance": {"start": _z(start), "end": _z(end), "in_effect": False},
        "trading_expected_now": True,
    }
    assert "exchange          active True, trading True; index 0 Default: trading True" in table
    assert f"maintenance       next {_z(start)} to {_z(end)}" in table


def test_the_exchange_report_in_a_maintenance_window(start_simulator: Any) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now - timedelta(minutes=1), now + timedelta(hours=1)
    sim = start_simulator(now=now, maintenance_windows=((start, end),))
    exchange_now = datetime.fromtimestamp(sim.app.state.world.now_ms() / 1000, UTC)
    config = KalshiConfig(base_url=sim.base_url, rate_limit_tier="off")
    report = asyncio.run(exchange_report(config, now=exchange_now))
    assert (report["exchange_active"], report["trading_active"]) == (True, False)
    assert [s["trading_active"] for s in report["exchange_index_statuses"]] == [False]
    assert report["exchange_estimated_resume_time"] == _z(end)
    assert report["next_maintenance"] == {"start": _z(start), "end": _z(end), "in_effect": True}
    assert report["trading_expected_now"] is False
    lines = render_exchange(report)
    assert f"(resumes about {_z(end)})" in lines[0]
    assert lines[1] == f"maintenance       in effect {_z(start)} to {_z(end)}"
    assert render_exchange(None) == [
        "exchange          not checked (no REST endpoint for this WebSocket URL)"
    ]


def test_probe_reports_types_rates_latency_pings_and_reconnects(
    sim: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = sim.app.state.world
    tickers = [t for g in world.games if g.injected for t in g.market_tickers]
    out = tmp_path / "probe.json"
    argv = ["probe", "--seconds", "3", "--force-reconnect", "1.5", "--json", str(out)]
    for t in tickers:
        argv += ["--market", t]
    assert main(argv) == 0  # the URL comes from KALSHI_API_BASE_URL
    table = capsys.readouterr().out
    assert "orderbook_delta" in table and "reconnects 1 (forced: True)" in table
    report = json.loads(out.read_text())
    assert report["url"] == sim.ws_url
    assert report["message_types"]["subscribed"] >= 8  # four channels, subscribed twice
    assert report["message_types"]["orderbook_snapshot"] >= 2 * len(tickers)
    # At least the initial ticker snapshots, on both connections.
    assert "ticker" in report["channel_rates_per_s"]
    assert report["latency_ms"]["ticker"]["n"] >= 2 * len(tickers)
    assert all(q["p50"] >= 0 and q["max"] >= q["p50"] for q in report["latency_ms"].values())
    assert report["reconnects"] == 1 and report["reconnect_seconds"] and report["forced_reconnect"]
    assert report["pings_received"] >= 2 and report["ping_payloads"] == {
        "heartbeat": report["pings_received"]
    }
    assert {s["channel"] for s in report["list_subscriptions"]} == {
        "ticker",
        "trade",
        "orderbook_delta",
        "market_lifecycle_v2",
    }
    assert report["seq_gaps"] == 0


def test_probe_errors_are_one_line_with_exit_codes(
    sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", "--channels", "ticker,fills", "--seconds", "1"]) == 2
    assert "--channels" in capsys.readouterr().err
    monkeypatch.delenv("KALSHI_API_KEY_ID")
    monkeypatch.delenv("KALSHI_PRIVATE_KEY_PATH")
    assert main(["probe", "--url", sim.ws_url, "--channels", "ticker", "--seconds", "1"]) == 3
    err = capsys.readouterr().err
    assert "401" in err and "no credentials" in err


def test_probe_without_markets_follows_the_most_traded_open_market(
    sim: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The default command used to fail ("orderbook_delta needs at least one --market").
    world = sim.app.state.world
    open_markets = {t for g in world.games for t in g.market_tickers}
    out = tmp_path / "probe.json"
    assert main(["probe", "--seconds", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["markets"] == [] and len(report["orderbook_markets"]) == 1
    picked = report["orderbook_markets"][0]
    assert picked in open_markets and f"orderbook_delta follows {picked}" in printed
    assert report["message_types"]["orderbook_snapshot"] >= 1
    assert {s["channel"] for s in report["list_subscriptions"]} == {
        "ticker",
        "trade",
        "orderbook_delta",
        "market_lifecycle_v2",
    }
    # Asking only for a book at a WebSocket URL unrelated to the configured REST one skips it plainly.
    other = sim.ws_url.replace("127.0.0.1", "localhost")
    assert main(["probe", "--url", other, "--channels", "orderbook_delta", "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert "orderbook_delta skipped" in err and "needs a --market" in err
