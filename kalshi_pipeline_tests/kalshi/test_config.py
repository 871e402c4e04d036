"""Client configuration: presets, URLs, validation, and no key material in reprs or logs.

The config reads no environment variables; the cases that tested parsing them moved to the resources (see
`MOVED_ENV_TESTS.md` next to this file).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from kalshi_pipeline.kalshi import KalshiClient
from kalshi_pipeline.kalshi.config import (
    DEFAULT_WS_URL,
    DEMO_BASE_URL,
    PRODUCTION_BASE_URL,
    KalshiConfig,
    derive_ws_url,
)
from kalshi_pipeline.kalshi.errors import KalshiConfigError
from kalshi_pipeline_tests.kalshi.conftest import KeyPair

KEY_ID = "11111111-2222-3333-4444-555555555555"


def test_defaults_to_production_without_credentials() -> None:
    config = KalshiConfig()
    assert config.base_url == PRODUCTION_BASE_URL
    assert config.websocket_url() == DEFAULT_WS_URL
    assert config.rate_limit_tier == "basic"
    assert not config.has_credentials
    assert config.signer() is None


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("demo", DEMO_BASE_URL),
        ("PROD", PRODUCTION_BASE_URL),
        ("production", PRODUCTION_BASE_URL),
        ("http://127.0.0.1:8765/trade-api/v2/", "http://127.0.0.1:8765/trade-api/v2"),
    ],
)
def test_base_url_presets_and_urls(base_url: str, expected: str) -> None:
    assert KalshiConfig(base_url=base_url).base_url == expected


def test_demo_detection() -> None:
    assert KalshiConfig(base_url="demo").is_demo
    assert not KalshiConfig().is_demo


@pytest.mark.parametrize(
    ("base_url", "ws_url", "expected"),
    [
        (PRODUCTION_BASE_URL, None, DEFAULT_WS_URL),
        ("http://h:1/trade-api/v2", None, "ws://h:1/trade-api/ws/v2"),
        ("demo", "ws://x:2/trade-api/ws/v2/", "ws://x:2/trade-api/ws/v2"),
        ("demo", None, "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2"),
        ("demo", "  ", "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2"),
        ("demo", "http://sim:3/trade-api/v2", "ws://sim:3/trade-api/ws/v2"),
    ],
)
def test_websocket_url_is_explicit_else_derived(
    base_url: str, ws_url: str | None, expected: str
) -> None:
    config = KalshiConfig(base_url=base_url, ws_url=ws_url)
    assert config.websocket_url() == expected
    if ws_url is None or not ws_url.strip():
        assert config.websocket_url() == derive_ws_url(config.base_url)


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"base_url": "external-api.kalshi.com"}, "KALSHI_API_BASE_URL"),
        ({"base_url": "ftp://x/trade-api/v2"}, "KALSHI_API_BASE_URL"),
        ({"ws_url": "ftp://nope"}, "KALSHI_WS_URL"),
        ({"rate_limit_tier": "platinum"}, "KALSHI_RATE_LIMIT_TIER"),
        ({"timeout_s": -1.0}, "timeout_s"),
        ({"connect_timeout_s": 0.0}, "connect_timeout_s"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"api_key_id": KEY_ID}, "KALSHI_PRIVATE_KEY"),
        ({"private_key_path": "/tmp/x.key"}, "KALSHI_API_KEY_ID"),
    ],
)
def test_bad_settings_are_one_line_errors(settings: dict[str, Any], needle: str) -> None:
    with pytest.raises(KalshiConfigError) as err:
        KalshiConfig(**settings)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_key_from_path_and_from_pem_text(key_pair: KeyPair, tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text(key_pair.pkcs8_pem)
    from_path = KalshiConfig(api_key_id=KEY_ID, private_key_path=str(path)).validate()
    assert from_path.signer() is not None
    escaped = key_pair.pkcs1_pem.strip().replace("\n", "\\n")
    from_text = KalshiConfig(api_key_id=KEY_ID, private_key_pem=escaped).validate()
    assert from_text.signer() is not None
    tiers = KalshiConfig(rate_limit_tier=" Premier ", max_retries=2)
    assert (tiers.rate_limit_tier, tiers.max_retries) == ("premier", 2)


def test_missing_or_malformed_key_fails_at_validate(tmp_path: Path) -> None:
    missing = tmp_path / "missing.key"
    with pytest.raises(KalshiConfigError, match="does not exist") as err:
        KalshiConfig(api_key_id=KEY_ID, private_key_path=str(missing)).validate()
    assert str(missing) in str(err.value)
    bad = tmp_path / "bad.key"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KalshiConfigError) as err2:
        KalshiConfig(api_key_id=KEY_ID, private_key_path=str(bad)).validate()
    assert str(bad) in str(err2.value) and "\n" not in str(err2.value)
    with pytest.raises(KalshiConfigError, match="KALSHI_PRIVATE_KEY"):
        KalshiConfig(api_key_id=KEY_ID, private_key_pem="garbage").validate()


def test_no_key_material_in_repr_str_or_logs(
    key_pair: KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    config = KalshiConfig(api_key_id=KEY_ID, private_key_pem=key_pair.pkcs1_pem)
    client = KalshiClient(config)
    body_line = key_pair.pkcs1_pem.splitlines()[1]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("config %s %r client %r", config, config, client)
    for text in (repr(config), str(config), repr(client), caplog.text):
        assert body_line not in text
        assert "PRIVATE KEY" not in text
        assert KEY_ID not in text
    assert "signed" in repr(client)
