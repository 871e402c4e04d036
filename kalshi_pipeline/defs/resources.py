"""The code location's resources: the Kalshi API client, the warehouse and the live-refresh settings.

Every setting of the project is a field of one of these `dg.ConfigurableResource`s, filled from the
environment once by `settings.resource_fields()` (`dg.EnvVar` for text and secrets, so the Dagster UI shows
the variable that feeds a field and never its value). Each resource hands the code below it typed objects:
`KalshiApiResource.client_config()` a `KalshiConfig`, `WarehouseResource.open()` a `Warehouse`,
`LiveResource.settings()` the sensor's `LiveSettings`. Nothing else reads a `KALSHI_*` variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from kalshi_pipeline.defs.live.planning import LIVE_MODES, LiveSettings
from kalshi_pipeline.defs.settings import SettingError, resolved_text, resource_fields
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig, KalshiError
from kalshi_pipeline.kalshi.config import ENVIRONMENTS, PRODUCTION_BASE_URL
from kalshi_pipeline.kalshi.ratelimit import RateLimiter, shared_limiter, tier_bucket
from kalshi_pipeline.warehouse import Warehouse, WarehouseError, open_warehouse, resolve_url
from kalshi_pipeline.warehouse.rate_budget import shared_rate_budget
from kalshi_pipeline.warehouse.urls import redact_url

DEFAULT_SERIES = "KXNBAGAME"
DEFAULT_RATE_LIMIT_TIER = "basic"
DEFAULT_WAREHOUSE_URL = "duckdb:///data/kalshi.duckdb"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


class KalshiApiResource(dg.ConfigurableResource):
    """Connection settings for the Kalshi Trade API v2 (REST and WebSocket); `client()` builds a client.

    Public market data needs no key; when `api_key_id` and a private key are set, requests and WebSocket
    handshakes are signed.
    """

    base_url: str = Field(
        default=PRODUCTION_BASE_URL,
        description="REST base URL incl. /trade-api/v2, or a preset: prod, demo (KALSHI_API_BASE_URL, KALSHI_ENV).",
    )
    api_key_id: str | None = Field(
        default=None, description="Kalshi API key id (KALSHI_API_KEY_ID)."
    )
    private_key_path: str | None = Field(
        default=None, description="Path of the private key PEM (KALSHI_PRIVATE_KEY_PATH)."
    )
    private_key: str | None = Field(
        default=None, description="The private key PEM text (KALSHI_PRIVATE_KEY)."
    )
    rate_limit_tier: str = Field(
        default=DEFAULT_RATE_LIMIT_TIER,
        description="Kalshi rate-limit tier: basic, advanced, ..., or off (KALSHI_RATE_LIMIT_TIER).",
    )
    series: str = Field(
        default=DEFAULT_SERIES,
        description="Comma-separated series tickers to ingest (KALSHI_SERIES).",
    )
    ws_url: str | None = Field(
        default=None,
        description="WebSocket URL; derived from the REST base URL when unset (KALSHI_WS_URL).",
    )
    timeout_s: float = Field(
        default=15.0, gt=0, description="Read timeout of one HTTP attempt, s (KALSHI_TIMEOUT_S)."
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, description="Connect timeout, s (KALSHI_CONNECT_TIMEOUT_S)."
    )
    max_retries: int = Field(
        default=6, ge=0, description="Retries after the first attempt (KALSHI_MAX_RETRIES)."
    )
    backoff_max_s: float = Field(
        default=10.0, gt=0, description="Cap of the retry backoff, s (KALSHI_BACKOFF_MAX_S)."
    )
    max_concurrency: int = Field(
        default=16, ge=1, description="Requests in flight per client (KALSHI_MAX_CONCURRENCY)."
    )
    shared_budget: bool = Field(
        default=True,
        description=(
            "Draw from the rate budget shared by every process of the deployment (a Postgres row when "
            "rate_budget_url is set, else a locked file in rate_budget_dir) instead of a per-process bucket."
        ),
    )
    rate_budget_url: str | None = Field(
        default=None,
        description="postgresql:// URL holding the shared rate budget (KALSHI_RATE_BUDGET_URL; default: a Postgres warehouse).",
    )
    rate_budget_dir: str | None = Field(
        default=None,
        description="Directory of the file rate budget (KALSHI_RATE_BUDGET_DIR; default: DAGSTER_HOME).",
    )

    def __repr__(self) -> str:
        return (
            f"KalshiApiResource(base_url={self.base_url!r}, signed={bool(self.api_key_id)}, "
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

    @property
    def has_credentials(self) -> bool:
        """Whether a key id and a private key are configured (needed for the WebSocket)."""
        return bool(self.api_key_id) and bool(self.private_key or self.private_key_path)

    def client_config(self) -> KalshiConfig:
        """Build the client's configuration from every field of this resource."""
        return KalshiConfig(
            base_url=self.base_url,
            api_key_id=self.api_key_id or None,
            private_key_path=os.path.expanduser(self.private_key_path)
            if self.private_key_path and not self.private_key
            else None,
            private_key_pem=self.private_key or None,
            rate_limit_tier=self.rate_limit_tier,
            ws_url=self.ws_url or None,
            timeout_s=self.timeout_s,
            connect_timeout_s=self.connect_timeout_s,
            max_retries=self.max_retries,
            backoff_max_s=self.backoff_max_s,
            max_concurrency=self.max_concurrency,
        )

    def settings_metadata(self) -> dict[str, str]:
        """The client's non-secret settings as run metadata, so a run shows what it ran with."""
        config = self.client_config()
        return {
            "api": f"{config.base_url} ({'signed' if config.has_credentials else 'unsigned'})",
            "api_client": (
                f"tier {config.rate_limit_tier}, timeout {config.timeout_s:g} s, connect "
                f"{config.connect_timeout_s:g} s, retries {config.max_retries}, backoff cap "
                f"{config.backoff_max_s:g} s, concurrency {config.max_concurrency}"
            ),
        }

    def limiter(self) -> RateLimiter:
        """Return the rate limiter of this deployment's requests for the configured tier."""
        config = self.client_config()
        if config.rate_limit_tier == "off" or not self.shared_budget:
            return shared_limiter(config.rate_limit_tier)
        bucket = tier_bucket(config.rate_limit_tier)
        return shared_rate_budget(
            config.base_url,
            bucket.rate_per_s,
            bucket.capacity,
            url=self.rate_budget_url or "",
            directory=self.rate_budget_dir,
        )

    def client(self) -> KalshiClient:
        """Return a new async client (use it as `async with resource.client() as client:`)."""
        return KalshiClient(self.client_config(), limiter=self.limiter())


#: DuckDB files this process has named in its log (see `WarehouseResource.open`).
_NAMED_FILES: set[str] = set()


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse (Postgres or embedded DuckDB) the assets read from and write to."""

    url: str = Field(
        default=DEFAULT_WAREHOUSE_URL,
        description="postgresql://... or duckdb:///path (KALSHI_WAREHOUSE_URL; default: embedded DuckDB in data/).",
    )
    duckdb_lock_timeout_s: float = Field(
        default=30.0,
        ge=0,
        description="Seconds a DuckDB open waits for another process's lock (KALSHI_DUCKDB_LOCK_TIMEOUT).",
    )
    duckdb_memory_limit_mb: int = Field(
        default=256,
        ge=16,
        description="DuckDB's buffer pool per process, in MB (KALSHI_DUCKDB_MEMORY_LIMIT_MB).",
    )

    def __repr__(self) -> str:
        return f"WarehouseResource(url={redact_url(self.url)!r})"

    __str__ = __repr__

    @contextmanager
    def open(self) -> Iterator[Warehouse]:
        """Open the warehouse, make sure the schema exists, and close it afterwards.

        An embedded DuckDB file is named once per process by its absolute path in the run's log
        (`duckdb:///proc/x.duckdb` is `./proc/x.duckdb`, relative to the working directory).
        """
        wh = open_warehouse(
            self.url,
            lock_timeout=self.duckdb_lock_timeout_s,
            duckdb_memory_limit_mb=self.duckdb_memory_limit_mb,
        )
        path = wh.url.duckdb_path
        if path is not None and path != ":memory:" and path not in _NAMED_FILES:
            _NAMED_FILES.add(path)
            dg.get_dagster_logger().info(f"warehouse: DuckDB file {Path(path).resolve()}")
        try:
            wh.ensure_schema()
            yield wh
        finally:
            wh.close()


class LiveResource(dg.ConfigurableResource):
    """How live games are kept fresh: the live sensor's mode and timing."""

    mode: str = Field(
        default="",
        description="rest or websocket; empty = websocket when Kalshi credentials are set (KALSHI_LIVE_MODE).",
    )
    lead_minutes: float = Field(
        default=15.0,
        ge=0,
        description="A game is live from tip-off minus this (KALSHI_LIVE_LEAD_MINUTES).",
    )
    max_hours: float = Field(
        default=6.0,
        ge=0.5,
        description="Longest a game counts as live after tip-off (KALSHI_LIVE_MAX_HOURS).",
    )
    refresh_seconds: int = Field(
        default=15,
        ge=1,
        description="Seconds between REST refreshes of a date (KALSHI_LIVE_REFRESH_SECONDS).",
    )
    markets_refresh_seconds: int = Field(
        default=300,
        ge=10,
        description="Seconds between markets refreshes of a live date (KALSHI_LIVE_MARKETS_REFRESH_SECONDS).",
    )
    reconcile_seconds: int = Field(
        default=300,
        ge=10,
        description="Seconds between REST reconciles while streaming (KALSHI_LIVE_RECONCILE_SECONDS).",
    )
    game_state_seconds: int = Field(
        default=10,
        ge=1,
        description="Seconds between polls of live games' state (KALSHI_LIVE_GAME_STATE_SECONDS).",
    )
    progress_seconds: int = Field(
        default=60,
        ge=1,
        description="Seconds between a stream run's reports of what it wrote (KALSHI_LIVE_PROGRESS_SECONDS).",
    )
    probability_max_spread: float = Field(
        default=0.10,
        ge=0,
        description="Widest spread whose mid prices a market in kalshi.game_probabilities (KALSHI_PROBABILITY_MAX_SPREAD).",
    )

    def max_spread(self) -> Decimal:
        """The spread limit of `kalshi.game_probabilities` as an exact decimal (0.1 -> Decimal('0.1'))."""
        return Decimal(str(self.probability_max_spread))

    def settings(self, has_credentials: bool) -> LiveSettings:
        """Return the sensor's settings; websocket mode needs credentials (else REST, with the reason)."""
        requested = self.mode.strip().lower()
        if requested and requested not in LIVE_MODES:
            raise SettingError(
                f"KALSHI_LIVE_MODE={requested!r} is not one of {', '.join(LIVE_MODES)}"
            )
        mode, note = requested or ("websocket" if has_credentials else "rest"), ""
        if mode == "websocket" and not has_credentials:
            mode, note = (
                "rest",
                (
                    "KALSHI_LIVE_MODE=websocket needs KALSHI_API_KEY_ID and KALSHI_PRIVATE_KEY_PATH (or "
                    "KALSHI_PRIVATE_KEY): Kalshi's WebSocket rejects unsigned handshakes. Refreshing over REST."
                ),
            )
        return LiveSettings(
            mode=mode,
            note=note,
            lead=timedelta(minutes=self.lead_minutes),
            max_live=timedelta(hours=self.max_hours),
            refresh_seconds=self.refresh_seconds,
            markets_refresh_seconds=self.markets_refresh_seconds,
            reconcile_seconds=self.reconcile_seconds,
        )


def resources_from_env(
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the resources `kalshi`, `warehouse` and `live`, built from the `KALSHI_*` variables.

    A Postgres warehouse also holds the shared rate budget unless `KALSHI_RATE_BUDGET_URL` says otherwise;
    the file budget lives in `KALSHI_RATE_BUDGET_DIR`, else `DAGSTER_HOME`.

    Raises:
        SettingError: A number is malformed or out of range (one line naming the variable).
    """
    env = os.environ if environ is None else environ
    fields = resource_fields(env)
    kalshi = fields["kalshi"]
    if "rate_budget_url" not in kalshi:
        warehouse_url = (env.get("KALSHI_WAREHOUSE_URL") or "").strip()
        if warehouse_url.lower().startswith(_POSTGRES_SCHEMES):
            kalshi["rate_budget_url"] = fields["warehouse"]["url"]
    if "rate_budget_dir" not in kalshi and (env.get("DAGSTER_HOME") or "").strip():
        kalshi["rate_budget_dir"] = dg.EnvVar("DAGSTER_HOME")
    return {
        "kalshi": KalshiApiResource(**kalshi),
        "warehouse": WarehouseResource(**fields["warehouse"]),
        "live": LiveResource(**fields["live"]),
    }


def resolved_kalshi(
    resources: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> KalshiApiResource:
    """The `kalshi` resource with its `EnvVar` fields read now, as Dagster reads them in a run."""
    kalshi: KalshiApiResource = resources["kalshi"]
    values = {
        name: resolved_text(getattr(kalshi, name), environ) for name in type(kalshi).model_fields
    }
    return KalshiApiResource(**{k: v for k, v in values.items() if v is not None})


def check_resources(resources: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> None:
    """Validate the settings now (URLs, tier, key, live mode), so a mistake shows at load, not in a run.

    Raises:
        SettingError: One line naming the variable and the fix.
    """
    env = os.environ if environ is None else environ
    try:
        preset = (env.get("KALSHI_ENV") or "").strip().lower()
        base_url_set = bool((env.get("KALSHI_API_BASE_URL") or "").strip())
        if preset and not base_url_set and preset not in ENVIRONMENTS:
            raise SettingError(
                f"KALSHI_ENV={preset!r} is unknown; expected one of {', '.join(ENVIRONMENTS)} "
                "(or set KALSHI_API_BASE_URL)"
            )
        kalshi = resolved_kalshi(resources, env)
        kalshi.series_tickers()
        kalshi.client_config().validate()
        warehouse: WarehouseResource = resources["warehouse"]
        resolve_url(resolved_text(warehouse.url, env), source="KALSHI_WAREHOUSE_URL")
        live: LiveResource = resources["live"]
        LiveResource(mode=resolved_text(live.mode, env) or "").settings(kalshi.has_credentials)
    except (KalshiError, WarehouseError, ValueError) as exc:
        raise SettingError(str(exc).splitlines()[0] if str(exc) else repr(exc)) from None


def kalshi_config_from_env(environ: Mapping[str, str] | None = None) -> KalshiConfig:
    """The client configuration the `KALSHI_*` variables give, checked (for command-line tools).

    Raises:
        SettingError: One line naming the variable and the fix.
    """
    built = resources_from_env(environ)
    check_resources(built, environ)
    return resolved_kalshi(built, environ).client_config()


@dg.definitions
def resources() -> dg.Definitions:
    """The code location's resources, declared once for every asset, check, sensor and job."""
    built = resources_from_env()
    check_resources(built)
    return dg.Definitions(resources=built)
