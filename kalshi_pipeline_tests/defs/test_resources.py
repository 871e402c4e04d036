"""The `kalshi` and `warehouse` resources: env wiring, secrets kept out of reprs, clear errors."""

from pathlib import Path

import dagster as dg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_pipeline.defs.resources import (
    KalshiApiResource,
    WarehouseResource,
    resources_from_env,
)
from kalshi_pipeline.kalshi.ratelimit import UnlimitedLimiter


@pytest.fixture
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_env_vars_feed_the_resource_through_envvar(
    monkeypatch: pytest.MonkeyPatch, pem: str
) -> None:
    monkeypatch.setenv("KALSHI_API_BASE_URL", "http://127.0.0.1:9/trade-api/v2")
    monkeypatch.setenv("KALSHI_API_KEY_ID", "key-123")
    monkeypatch.setenv("KALSHI_PRIVATE_KEY", pem)
    monkeypatch.setenv("KALSHI_SERIES", " kxnbagame, KXNHLGAME,KXNBAGAME ")
    monkeypatch.setenv("KALSHI_RATE_LIMIT_TIER", "advanced")
    resource = resources_from_env()["kalshi"]
    assert isinstance(resource.private_key, dg.EnvVar)
    assert isinstance(resource.base_url, dg.EnvVar)

    @dg.asset
    def probe(kalshi: KalshiApiResource) -> dict[str, object]:
        config = kalshi.client_config()
        assert config.has_credentials and config.private_key_pem == pem
        assert pem not in repr(kalshi) and pem not in repr(config)
        return {
            "series": kalshi.series_tickers(),
            "base": config.base_url,
            "tier": kalshi.rate_limit_tier,
        }

    result = dg.materialize([probe], resources={"kalshi": resource})
    out = result.output_for_node("probe")
    assert out == {
        "series": ["KXNBAGAME", "KXNHLGAME"],
        "base": "http://127.0.0.1:9/trade-api/v2",
        "tier": "advanced",
    }


def test_defaults_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "KALSHI_API_BASE_URL",
        "KALSHI_API_KEY_ID",
        "KALSHI_PRIVATE_KEY",
        "KALSHI_PRIVATE_KEY_PATH",
        "KALSHI_SERIES",
        "KALSHI_WAREHOUSE_URL",
        "KALSHI_RATE_LIMIT_TIER",
        "KALSHI_ENV",
    ):
        monkeypatch.delenv(name, raising=False)
    kalshi = resources_from_env()["kalshi"]
    assert kalshi.client_config().base_url == "https://external-api.kalshi.com/trade-api/v2"
    assert kalshi.series_tickers() == ["KXNBAGAME"]
    assert kalshi.private_key is None and kalshi.api_key_id is None
    assert not kalshi.client_config().has_credentials
    assert resources_from_env()["warehouse"].url == "duckdb:///data/kalshi.duckdb"


def test_empty_series_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="KALSHI_SERIES is empty"):
        KalshiApiResource(series=" , ").series_tickers()


def test_off_tier_never_waits() -> None:
    resource = KalshiApiResource(base_url="http://127.0.0.1:9/trade-api/v2", rate_limit_tier="off")
    assert isinstance(resource.limiter(), UnlimitedLimiter)


def test_warehouse_resource_creates_schema_and_hides_password(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/nested/dir/wh.duckdb"
    with WarehouseResource(url=url).open() as wh:
        assert wh.query_df("SELECT count(*) AS n FROM kalshi.markets")["n"].iloc[0] == 0
    assert (tmp_path / "nested/dir/wh.duckdb").exists()
    assert "hunter2" not in repr(WarehouseResource(url="postgresql://u:hunter2@h/db"))


def test_kalshi_env_picks_the_demo_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KALSHI_API_BASE_URL", raising=False)
    monkeypatch.setenv("KALSHI_ENV", "demo")

    @dg.asset
    def base(kalshi: KalshiApiResource) -> str:
        return kalshi.client_config().base_url

    result = dg.materialize([base], resources={"kalshi": resources_from_env()["kalshi"]})
    assert result.output_for_node("base") == "https://external-api.demo.kalshi.co/trade-api/v2"


def test_the_run_log_names_the_duckdb_file_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kalshi_pipeline.defs.resources as resources_module

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(resources_module, "_NAMED_FILES", set())

    @dg.asset
    def probe(warehouse: WarehouseResource) -> None:
        with warehouse.open():
            pass

    # `duckdb:///proc/y.duckdb` is relative: the run's log says which file that really is.
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [probe],
            resources={"warehouse": WarehouseResource(url="duckdb:///proc/y.duckdb")},
            instance=instance,
        )
        records = instance.all_logs(result.run_id)
    texts = [r.user_message for r in records]
    assert f"warehouse: DuckDB file {tmp_path / 'proc' / 'y.duckdb'}" in texts
    assert (tmp_path / "proc" / "y.duckdb").is_file()
