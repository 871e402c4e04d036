"""Client configuration, read from environment variables without ever exposing key material."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from kalshi_pipeline.kalshi.auth import KalshiSigner, load_private_key, load_private_key_file
from kalshi_pipeline.kalshi.errors import KalshiConfigError
from kalshi_pipeline.kalshi.ratelimit import TIER_NAMES

PRODUCTION_BASE_URL = "https://external-api.kalshi.com/trade-api/v2"
DEMO_BASE_URL = "https://external-api.demo.kalshi.co/trade-api/v2"

#: Named environments accepted by `KALSHI_ENV` and as a `KALSHI_API_BASE_URL` value.
ENVIRONMENTS: dict[str, str] = {
    "prod": PRODUCTION_BASE_URL,
    "production": PRODUCTION_BASE_URL,
    "demo": DEMO_BASE_URL,
}


def resolve_base_url(value: str) -> str:
    """Turn a base URL or an environment name (`prod`, `production`, `demo`) into a validated base URL."""
    text = value.strip()
    if text.lower() in ENVIRONMENTS:
        return ENVIRONMENTS[text.lower()]
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise KalshiConfigError(
            f"KALSHI_API_BASE_URL {text!r} is not an http(s) URL or one of {', '.join(ENVIRONMENTS)} "
            "(example: https://external-api.kalshi.com/trade-api/v2)"
        )
    if parts.query or parts.fragment:
        raise KalshiConfigError(f"KALSHI_API_BASE_URL {text!r} must not carry a query or fragment")
    return text.rstrip("/")


def base_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The REST base URL named by `KALSHI_API_BASE_URL` (URL or preset), else `KALSHI_ENV`, else production.

    Raises:
        KalshiConfigError: The URL is malformed or `KALSHI_ENV` names no known environment.
    """
    env = os.environ if environ is None else environ
    base = (env.get("KALSHI_API_BASE_URL") or "").strip()
    if base:
        return resolve_base_url(base)
    env_name = (env.get("KALSHI_ENV") or "").strip().lower() or "prod"
    if env_name not in ENVIRONMENTS:
        raise KalshiConfigError(
            f"KALSHI_ENV={env_name!r} is unknown; expected one of {', '.join(ENVIRONMENTS)}"
        )
    return ENVIRONMENTS[env_name]


@dataclass(frozen=True)
class KalshiConfig:
    """Everything the client needs to talk to Kalshi (or the local simulator).

    Attributes:
        base_url: REST base URL including the `/trade-api/v2` prefix (`prod`, `demo` presets accepted).
        api_key_id: The Kalshi API key id; requests are signed when it and a key are present.
        private_key_pem: The RSA private key as PEM text (never shown in reprs).
        private_key_path: Path of a PEM file holding the RSA private key (used when no PEM text is given).
        rate_limit_tier: Kalshi usage tier for the client-side read bucket, or "off".
        timeout_s: Read/write/pool timeout of one HTTP attempt in seconds.
        connect_timeout_s: Connect timeout of one HTTP attempt in seconds.
        max_retries: Retries after the first attempt on 429, 5xx, timeouts and connection errors.
        backoff_base_s: First backoff ceiling; doubles per retry (full jitter).
        backoff_max_s: Cap of the backoff ceiling.
        max_concurrency: Requests in flight at once per client (also the connection pool size).
        request_cost: Tokens each request draws from the rate limiter (Kalshi's default cost is 10).
    """

    base_url: str = PRODUCTION_BASE_URL
    api_key_id: str | None = field(default=None, repr=False)
    private_key_pem: str | None = field(default=None, repr=False)
    private_key_path: str | None = field(default=None, repr=False)
    rate_limit_tier: str = "basic"
    timeout_s: float = 15.0
    connect_timeout_s: float = 5.0
    max_retries: int = 6
    backoff_base_s: float = 0.25
    backoff_max_s: float = 10.0
    max_concurrency: int = 16
    request_cost: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", resolve_base_url(self.base_url))
        tier = self.rate_limit_tier.strip().lower()
        if tier not in TIER_NAMES:
            raise KalshiConfigError(
                f"KALSHI_RATE_LIMIT_TIER {self.rate_limit_tier!r} is unknown; expected one of "
                f"{', '.join(TIER_NAMES)}"
            )
        object.__setattr__(self, "rate_limit_tier", tier)
        for name in ("timeout_s", "connect_timeout_s", "backoff_max_s", "backoff_base_s"):
            if not getattr(self, name) > 0:
                raise KalshiConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_retries < 0:
            raise KalshiConfigError(f"max_retries must be >= 0, got {self.max_retries!r}")
        if self.max_concurrency < 1:
            raise KalshiConfigError(f"max_concurrency must be >= 1, got {self.max_concurrency!r}")
        if self.request_cost < 0:
            raise KalshiConfigError(f"request_cost must be >= 0, got {self.request_cost!r}")
        has_key = bool(self.private_key_pem) or bool(self.private_key_path)
        if self.api_key_id and not has_key:
            raise KalshiConfigError(
                "KALSHI_API_KEY_ID is set but no private key: set KALSHI_PRIVATE_KEY_PATH or KALSHI_PRIVATE_KEY"
            )
        if has_key and not self.api_key_id:
            raise KalshiConfigError(
                "a private key is set but KALSHI_API_KEY_ID is not: set the key id shown next to the key "
                "in Kalshi's API keys page"
            )

    @property
    def has_credentials(self) -> bool:
        """Whether requests will be signed."""
        return bool(self.api_key_id)

    @property
    def is_demo(self) -> bool:
        """Whether the base URL points at Kalshi's demo environment."""
        return "demo" in (urlsplit(self.base_url).hostname or "")

    def signer(self) -> KalshiSigner | None:
        """Load the private key and return a signer, or None without credentials.

        Raises:
            KalshiConfigError: One line naming the file or variable when the key is missing or malformed.
        """
        if not self.api_key_id:
            return None
        if self.private_key_pem:
            key = load_private_key(self.private_key_pem, source="KALSHI_PRIVATE_KEY")
        else:
            key = load_private_key_file(str(self.private_key_path))
        return KalshiSigner(self.api_key_id, key)

    def validate(self) -> KalshiConfig:
        """Load the key once to fail early with a one-line error; return self."""
        self.signer()
        return self

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, validate: bool = True
    ) -> KalshiConfig:
        """Build a config from environment variables.

        Reads `KALSHI_API_BASE_URL` (URL or `prod`/`demo`; otherwise `KALSHI_ENV`, default production),
        `KALSHI_API_KEY_ID`, `KALSHI_PRIVATE_KEY_PATH` or `KALSHI_PRIVATE_KEY` (PEM text),
        `KALSHI_RATE_LIMIT_TIER` (default basic), `KALSHI_TIMEOUT_S`, `KALSHI_CONNECT_TIMEOUT_S`,
        `KALSHI_MAX_RETRIES`, `KALSHI_BACKOFF_MAX_S`, `KALSHI_MAX_CONCURRENCY`. With `validate`, the key is
        loaded now so a bad key file fails here with a one-line `KalshiConfigError`.
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() else None

        def number(name: str, kind: type, default: float | int) -> float | int:
            value = get(name)
            if value is None:
                return default
            try:
                return kind(value)
            except ValueError:
                raise KalshiConfigError(
                    f"{name}={value!r} is not a valid {kind.__name__}"
                ) from None

        pem = env.get("KALSHI_PRIVATE_KEY")
        pem = pem if pem and pem.strip() else None
        if pem is not None and "\\n" in pem and "\n" not in pem.strip():
            pem = pem.replace("\\n", "\n")  # single-line secrets stores often escape newlines
        path = get("KALSHI_PRIVATE_KEY_PATH")
        config = cls(
            base_url=base_url_from_env(env),
            api_key_id=get("KALSHI_API_KEY_ID"),
            private_key_pem=pem,
            private_key_path=str(Path(path).expanduser()) if path and not pem else None,
            rate_limit_tier=get("KALSHI_RATE_LIMIT_TIER") or "basic",
            timeout_s=float(number("KALSHI_TIMEOUT_S", float, 15.0)),
            connect_timeout_s=float(number("KALSHI_CONNECT_TIMEOUT_S", float, 5.0)),
            max_retries=int(number("KALSHI_MAX_RETRIES", int, 6)),
            backoff_max_s=float(number("KALSHI_BACKOFF_MAX_S", float, 10.0)),
            max_concurrency=int(number("KALSHI_MAX_CONCURRENCY", int, 16)),
        )
        return config.validate() if validate else config
