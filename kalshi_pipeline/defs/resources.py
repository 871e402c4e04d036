"""Dagster resources: the Kalshi API client and the warehouse.

Both are typed `dg.ConfigurableResource`s wired from environment variables with `dg.EnvVar`, so the
Dagster UI shows which variable feeds a field, never its value. The private key is only ever read from
`KALSHI_PRIVATE_KEY_PATH` / `KALSHI_PRIVATE_KEY`; it never enters run config or metadata.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field

from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.kalshi.config import PRODUCTION_BASE_URL
from kalshi_pipeline.kalshi.ratelimit import RateLimiter, shared_limiter, tier_bucket
from kalshi_pipeline.warehouse import Warehouse, open_warehouse
from kalshi_pipeline.warehouse.rate_budget import shared_rate_budget
from kalshi_pipeline.warehouse.urls import redact_url

DEFAULT_BASE_URL = PRODUCTION_BASE_URL
DEFAULT_SERIES = "KXNBAGAME"
DEFAULT_RATE_LIMIT_TIER = "basic"
DEFAULT_WAREHOUSE_URL = "duckdb:///data/kalshi.duckdb"


class KalshiApiResource(dg.ConfigurableResource):
    """Connection settings for the Kalshi Trade API v2; `client()` builds a `KalshiClient`.

    Public market data needs no key; when `api_key_id` and a private key are set, requests are signed.
    """

    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="REST base URL incl. /trade-api/v2, or a preset name: prod, demo.",
    )
    api_key_id: str | None = Field(default=None, description="Kalshi API key id (optional).")
    private_key_path: str | None = Field(
        default=None, description="Path to the RSA private key PEM."
    )
    private_key: str | None = Field(default=None, description="The RSA private key PEM text.")
    rate_limit_tier: str = Field(
        default=DEFAULT_RATE_LIMIT_TIER,
        description="Kalshi rate-limit tier (basic, advanced, ...).",
    )
    series: str = Field(
        default=DEFAULT_SERIES, description="Comma-separated series tickers to ingest (KXNBAGAME)."
    )
    shared_budget: bool = Field(
        default=True,
        description=(
            "Draw from the rate budget shared by every process of the deployment (Postgres row when "
            "KALSHI_RATE_BUDGET_URL or a Postgres warehouse is set, else a locked file) instead of a "
            "per-process token bucket."
        ),
    )

    def __repr__(self) -> str:
        return (
            f"KalshiApiResource(base_url={self.base_url!r}, api_key_id={self.api_key_id!r}, "
            f"rate_limit_tier={self.rate_limit_tier!r}, series={self.series!r})"
        )

    __str__ = __repr__

    def series_tickers(self) -> list[str]:
        """Return the configured series tickers, upper-cased, in order, without blanks or repeats."""
        seen: list[str] = []
        for part in self.series.split(","):
            ticker = part.strip().upper()
            if ticker and ticker not in seen:
                seen.append(ticker)
        if not seen:
            raise ValueError(
                "KALSHI_SERIES is empty: set at least one series ticker, e.g. KXNBAGAME"
            )
        return seen

    def client_config(self) -> KalshiConfig:
        """Build the client's configuration from this resource's fields."""
        return KalshiConfig(
            base_url=self.base_url,
            api_key_id=self.api_key_id or None,
            private_key_path=self.private_key_path or None,
            private_key_pem=self.private_key or None,
            rate_limit_tier=self.rate_limit_tier,
        )

    def limiter(self) -> RateLimiter:
        """Return the rate limiter of this deployment's requests for the configured tier."""
        config = self.client_config()
        if config.rate_limit_tier == "off" or not self.shared_budget:
            return shared_limiter(config.rate_limit_tier)
        bucket = tier_bucket(config.rate_limit_tier)
        return shared_rate_budget(config.base_url, bucket.rate_per_s, bucket.capacity)

    def client(self) -> KalshiClient:
        """Return a new async client (use it as `async with resource.client() as client:`)."""
        return KalshiClient(self.client_config(), limiter=self.limiter())


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse (Postgres or embedded DuckDB) the assets read from and write to."""

    url: str = Field(
        default=DEFAULT_WAREHOUSE_URL,
        description="postgresql://... or duckdb:///path (default: embedded DuckDB in data/).",
    )

    def __repr__(self) -> str:
        return f"WarehouseResource(url={redact_url(self.url)!r})"

    __str__ = __repr__

    @contextmanager
    def open(self) -> Iterator[Warehouse]:
        """Open the warehouse, make sure the schema exists, and close it afterwards."""
        if self.url.startswith("duckdb:///"):
            parent = os.path.dirname(self.url.removeprefix("duckdb:///"))
            if parent:
                os.makedirs(parent, exist_ok=True)
        wh = open_warehouse(self.url)
        try:
            wh.ensure_schema()
            yield wh
        finally:
            close = getattr(wh, "close", None)
            if callable(close):
                close()


def _env_or(name: str, default: Any) -> Any:
    """Use `dg.EnvVar(name)` when the variable is set (so the UI shows the source), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def kalshi_resource_from_env() -> KalshiApiResource:
    """Build the `kalshi` resource from KALSHI_* environment variables (defaults: public Kalshi API)."""
    return KalshiApiResource(
        # KALSHI_ENV (prod | demo) picks a preset when no URL is given; the client resolves the name.
        base_url=_env_or("KALSHI_API_BASE_URL", _env_or("KALSHI_ENV", DEFAULT_BASE_URL)),
        api_key_id=_env_or("KALSHI_API_KEY_ID", None),
        private_key_path=_env_or("KALSHI_PRIVATE_KEY_PATH", None),
        private_key=_env_or("KALSHI_PRIVATE_KEY", None),
        rate_limit_tier=_env_or("KALSHI_RATE_LIMIT_TIER", DEFAULT_RATE_LIMIT_TIER),
        series=_env_or("KALSHI_SERIES", DEFAULT_SERIES),
    )


def warehouse_resource_from_env() -> WarehouseResource:
    """Build the `warehouse` resource from KALSHI_WAREHOUSE_URL (default embedded DuckDB)."""
    return WarehouseResource(url=_env_or("KALSHI_WAREHOUSE_URL", DEFAULT_WAREHOUSE_URL))


def resources_from_env() -> dict[str, dg.ConfigurableResource]:
    """Return new resources keyed `kalshi` and `warehouse`, built from the environment."""
    return {"kalshi": kalshi_resource_from_env(), "warehouse": warehouse_resource_from_env()}


@functools.cache
def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Return the code location's resources, the same objects on every call.

    Every defs package passes these to its `dg.Definitions`; `Definitions.merge` accepts one resource
    key from several packages only when it is the very same object.
    """
    return resources_from_env()
