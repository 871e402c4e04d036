"""Configuration from environment variables: presets, validation, and no key material in reprs or logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kalshi_pipeline.kalshi import KalshiClient
from kalshi_pipeline.kalshi.config import DEMO_BASE_URL, PRODUCTION_BASE_URL, KalshiConfig
from kalshi_pipeline.kalshi.errors import KalshiConfigError

KEY_ID = "11111111-2222-3333-4444-555555555555"


def test_defaults_to_production_without_credentials() -> None:
    config = KalshiConfig.from_env({})
    assert config.base_url == PRODUCTION_BASE_URL
    assert config.rate_limit_tier == "basic"
    assert not config.has_credentials
    assert config.signer() is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"KALSHI_ENV": "demo"}, DEMO_BASE_URL),
        ({"KALSHI_API_BASE_URL": "demo"}, DEMO_BASE_URL),
        ({"KALSHI_API_BASE_URL": "PROD"}, PRODUCTION_BASE_URL),
        ({"KALSHI_ENV": "demo", "KALSHI_API_BASE_URL": "http://127.0.0.1:8765/trade-api/v2/"},
         "http://127.0.0.1:8765/trade-api/v2"),
    ],
)  # fmt: skip
def test_base_url_presets_and_override(env: dict[str, str], expected: str) -> None:
    assert KalshiConfig.from_env(env).base_url == expected


def test_demo_detection() -> None:
    assert KalshiConfig(base_url="demo").is_demo
    assert not KalshiConfig().is_demo


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"KALSHI_API_BASE_URL": "external-api.kalshi.com"}, "KALSHI_API_BASE_URL"),
        ({"KALSHI_API_BASE_URL": "ftp://x/trade-api/v2"}, "KALSHI_API_BASE_URL"),
        ({"KALSHI_ENV": "staging"}, "KALSHI_ENV"),
        ({"KALSHI_RATE_LIMIT_TIER": "platinum"}, "KALSHI_RATE_LIMIT_TIER"),
        ({"KALSHI_MAX_RETRIES": "many"}, "KALSHI_MAX_RETRIES"),
        ({"KALSHI_TIMEOUT_S": "-1"}, "timeout_s"),
        ({"KALSHI_API_KEY_ID": KEY_ID}, "KALSHI_PRIVATE_KEY"),
        ({"KALSHI_PRIVATE_KEY_PATH": "/tmp/x.key"}, "KALSHI_API_KEY_ID"),
    ],
)
def test_bad_settings_are_one_line_errors(env: dict[str, str], needle: str) -> None:
    with pytest.raises(KalshiConfigError) as err:
        KalshiConfig.from_env(env)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_key_from_path_and_from_pem_text(key_pair, tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text(key_pair.pkcs8_pem)
    from_path = KalshiConfig.from_env(
        {"KALSHI_API_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY_PATH": str(path)}
    )
    assert from_path.signer() is not None
    escaped = key_pair.pkcs1_pem.strip().replace("\n", "\\n")
    from_text = KalshiConfig.from_env({"KALSHI_API_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY": escaped})
    assert from_text.signer() is not None
    tiers = KalshiConfig.from_env(
        {"KALSHI_RATE_LIMIT_TIER": " Premier ", "KALSHI_MAX_RETRIES": "2"}
    )
    assert (tiers.rate_limit_tier, tiers.max_retries) == ("premier", 2)


def test_missing_or_malformed_key_file_fails_at_from_env(tmp_path: Path) -> None:
    missing = tmp_path / "missing.key"
    with pytest.raises(KalshiConfigError, match="does not exist") as err:
        KalshiConfig.from_env(
            {"KALSHI_API_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY_PATH": str(missing)}
        )
    assert str(missing) in str(err.value)
    bad = tmp_path / "bad.key"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KalshiConfigError) as err2:
        KalshiConfig.from_env({"KALSHI_API_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY_PATH": str(bad)})
    assert str(bad) in str(err2.value) and "\n" not in str(err2.value)
    with pytest.raises(KalshiConfigError, match="KALSHI_PRIVATE_KEY"):
        KalshiConfig.from_env({"KALSHI_API_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY": "garbage"})


def test_no_key_material_in_repr_str_or_logs(key_pair, caplog: pytest.LogCaptureFixture) -> None:
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
