"""How the live mode is chosen from the environment."""

import pytest

from kalshi_pipeline.defs.live.planning import LiveSettings, resolve_live_mode

KEYS = {"KALSHI_API_KEY_ID": "key-id", "KALSHI_PRIVATE_KEY_PATH": "/keys/kalshi.pem"}


def test_unset_mode_streams_only_with_credentials() -> None:
    assert resolve_live_mode({}) == ("rest", "")
    assert resolve_live_mode({"KALSHI_API_KEY_ID": "key-id"}) == ("rest", "")
    assert resolve_live_mode(KEYS) == ("websocket", "")
    assert resolve_live_mode({"KALSHI_API_KEY_ID": "k", "KALSHI_PRIVATE_KEY": "PEM"}) == (
        "websocket",
        "",
    )


def test_explicit_mode_wins_and_websocket_without_keys_falls_back_with_a_reason() -> None:
    assert resolve_live_mode({**KEYS, "KALSHI_LIVE_MODE": "rest"}) == ("rest", "")
    mode, note = resolve_live_mode({"KALSHI_LIVE_MODE": "websocket"})
    assert mode == "rest"
    assert "KALSHI_API_KEY_ID" in note and "REST" in note
    settings = LiveSettings.from_env({"KALSHI_LIVE_MODE": "WebSocket", **KEYS})
    assert (settings.mode, settings.note) == ("websocket", "")


def test_unknown_mode_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="KALSHI_LIVE_MODE='grpc' is not one of rest, websocket"):
        resolve_live_mode({"KALSHI_LIVE_MODE": "grpc"})
