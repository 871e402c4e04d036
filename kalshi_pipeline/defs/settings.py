"""Every `KALSHI_*` setting: which resource field it feeds, its default, and how its text is read.

This is the one place the project reads its environment. `resources_from_env()` turns the variables into the
code location's resources once, when the definitions load: text settings (URLs, keys, names) are wired as
`dg.EnvVar` so the Dagster UI's resource view shows which variable feeds a field and never its value;
numbers are parsed here, so a bad value fails the code location at load with one line naming the variable,
before any run. Everything below `defs/` receives typed objects (`KalshiConfig`, `LiveSettings`, a
`Warehouse`), never the environment. The command-line tools (`kalshi-pipeline demo`, `probe`) use the same
function, so a variable means the same thing everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg


class SettingError(ValueError):
    """A `KALSHI_*` variable holds a value the project cannot use (the message names it and the fix)."""


@dataclass(frozen=True)
class Setting:
    """One environment variable and the resource field it feeds.

    Attributes:
        env: The variable's name.
        resource: The resource key (`kalshi`, `warehouse` or `live`).
        field: The resource field.
        kind: `text` (wired as `dg.EnvVar`), `secret` (same, never shown), `float`, `int` or `bool`.
        help: What the value means, for errors and docs.
        minimum: Smallest accepted number (numbers only).
    """

    env: str
    resource: str
    field: str
    kind: str
    help: str
    minimum: float | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("KALSHI_API_BASE_URL", "kalshi", "base_url", "text", "REST base URL or prod/demo"),
    Setting("KALSHI_ENV", "kalshi", "base_url", "text", "prod or demo when no base URL is set"),
    Setting("KALSHI_API_KEY_ID", "kalshi", "api_key_id", "secret", "API key id"),
    Setting("KALSHI_PRIVATE_KEY_PATH", "kalshi", "private_key_path", "secret", "private key file"),
    Setting("KALSHI_PRIVATE_KEY", "kalshi", "private_key", "secret", "private key PEM text"),
    Setting("KALSHI_RATE_LIMIT_TIER", "kalshi", "rate_limit_tier", "text", "rate-limit tier"),
    Setting("KALSHI_SERIES", "kalshi", "series", "text", "comma-separated series tickers"),
    Setting("KALSHI_WS_URL", "kalshi", "ws_url", "text", "WebSocket URL"),
    Setting("KALSHI_TIMEOUT_S", "kalshi", "timeout_s", "float", "seconds", 0.001),
    Setting("KALSHI_CONNECT_TIMEOUT_S", "kalshi", "connect_timeout_s", "float", "seconds", 0.001),
    Setting("KALSHI_MAX_RETRIES", "kalshi", "max_retries", "int", "retries", 0),
    Setting("KALSHI_BACKOFF_MAX_S", "kalshi", "backoff_max_s", "float", "seconds", 0.001),
    Setting("KALSHI_MAX_CONCURRENCY", "kalshi", "max_concurrency", "int", "requests", 1),
    Setting("KALSHI_RATE_BUDGET_URL", "kalshi", "rate_budget_url", "secret", "postgresql:// URL"),
    Setting("KALSHI_RATE_BUDGET_DIR", "kalshi", "rate_budget_dir", "text", "directory"),
    Setting(
        "KALSHI_WAREHOUSE_URL", "warehouse", "url", "secret", "postgresql:// or duckdb:/// URL"
    ),
    Setting(
        "KALSHI_DUCKDB_LOCK_TIMEOUT", "warehouse", "duckdb_lock_timeout_s", "float", "seconds", 0
    ),
    Setting(
        "KALSHI_DUCKDB_MEMORY_LIMIT_MB", "warehouse", "duckdb_memory_limit_mb", "int", "MB", 16
    ),
    Setting("KALSHI_LIVE_MODE", "live", "mode", "text", "rest or websocket"),
    Setting("KALSHI_LIVE_LEAD_MINUTES", "live", "lead_minutes", "float", "minutes", 0),
    Setting("KALSHI_LIVE_MAX_HOURS", "live", "max_hours", "float", "hours", 0.5),
    Setting("KALSHI_LIVE_REFRESH_SECONDS", "live", "refresh_seconds", "int", "seconds", 1),
    Setting(
        "KALSHI_LIVE_MARKETS_REFRESH_SECONDS", "live", "markets_refresh_seconds", "int", "s", 10
    ),
    Setting("KALSHI_LIVE_RECONCILE_SECONDS", "live", "reconcile_seconds", "int", "seconds", 10),
    Setting("KALSHI_LIVE_GAME_STATE_SECONDS", "live", "game_state_seconds", "int", "seconds", 1),
    Setting("KALSHI_LIVE_PROGRESS_SECONDS", "live", "progress_seconds", "int", "seconds", 1),
    Setting(
        "KALSHI_PROBABILITY_MAX_SPREAD", "live", "probability_max_spread", "float", "dollars", 0
    ),
)
"""Every documented variable (the README's configuration table lists exactly these)."""

_PARSERS: dict[str, Callable[[str], Any]] = {"float": float, "int": int}


def _number(setting: Setting, raw: str) -> float | int:
    parse = _PARSERS[setting.kind]
    try:
        value = parse(raw)
    except ValueError:
        raise SettingError(
            f"{setting.env}={raw!r} is not a{'n integer' if setting.kind == 'int' else ' number'} "
            f"({setting.help}); unset it for the default or set e.g. {setting.env}=10"
        ) from None
    if setting.minimum is not None and value < setting.minimum:
        raise SettingError(
            f"{setting.env}={raw!r} must be at least {setting.minimum:g} ({setting.help})"
        )
    return value


def resource_fields(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Return, per resource key, the field values the set variables give (unset ones keep defaults).

    Text and secret variables become `dg.EnvVar`s (resolved by Dagster in each process, never copied
    into run config); numbers are parsed and checked now.

    Raises:
        SettingError: A number is malformed or out of range (one line naming the variable).
    """
    env = os.environ if environ is None else environ
    fields: dict[str, dict[str, Any]] = {"kalshi": {}, "warehouse": {}, "live": {}}
    for setting in SETTINGS:
        raw = (env.get(setting.env) or "").strip()
        if not raw:
            continue
        target = fields[setting.resource]
        if setting.kind in ("text", "secret"):
            # KALSHI_API_BASE_URL wins over the KALSHI_ENV preset name that feeds the same field.
            if setting.field in target and setting.env == "KALSHI_ENV":
                continue
            target[setting.field] = dg.EnvVar(setting.env)
        else:
            target[setting.field] = _number(setting, raw)
    return fields


def resolved_text(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Return an `EnvVar`'s value in `environ` (default: the process environment), else `value` unchanged."""
    if not isinstance(value, dg.EnvVar):
        return value
    env = os.environ if environ is None else environ
    return env.get(value.env_var_name)
