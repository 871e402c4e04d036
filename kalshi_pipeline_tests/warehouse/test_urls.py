"""URL resolution, validation and password redaction."""

from __future__ import annotations

import pytest

from kalshi_pipeline.warehouse import WarehouseConfigError, open_warehouse, redact_url
from kalshi_pipeline.warehouse.urls import DEFAULT_URL, ENV_VAR, resolve_url


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///x.db",
        "mysql://u@h/db",
        "duckdb://relative.duckdb",
        "duckdb:///",
        "postgresql://u@h:5432",
        "",
    ],
)
def test_unsupported_urls_name_the_accepted_forms(url: str) -> None:
    with pytest.raises(WarehouseConfigError, match="accepted forms: postgresql://") as info:
        open_warehouse(url)
    assert "\n" not in str(info.value)


def test_password_never_appears_in_redacted_forms() -> None:
    url = "postgresql://kalshi:hunter2@db.example:5432/kalshi?sslmode=require&password=hunter2"
    parsed = resolve_url(url)
    assert parsed.dialect == "postgres"
    assert "hunter2" not in parsed.redacted and "hunter2" not in repr(parsed)
    assert (
        parsed.redacted
        == "postgresql://kalshi:***@db.example:5432/kalshi?sslmode=require&password=***"
    )
    assert "hunter2" not in repr(open_warehouse(url))
    with pytest.raises(WarehouseConfigError) as info:
        open_warehouse("mysql://kalshi:hunter2@db/kalshi")
    assert "hunter2" not in str(info.value)
    assert redact_url("postgresql://kalshi@db/kalshi") == "postgresql://kalshi@db/kalshi"


def test_resolution_never_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # KALSHI_WAREHOUSE_URL reaches the warehouse through the `warehouse` resource (defs/settings.py).
    monkeypatch.setenv(ENV_VAR, "duckdb:////abs/path/wh.duckdb")
    assert resolve_url().raw == DEFAULT_URL
    assert resolve_url().duckdb_path == "data/kalshi.duckdb"
    assert resolve_url("duckdb:////abs/path/wh.duckdb").duckdb_path == "/abs/path/wh.duckdb"
    assert resolve_url("duckdb:///:memory:").in_memory
    assert resolve_url("postgres://u@h/db").dialect == "postgres"
