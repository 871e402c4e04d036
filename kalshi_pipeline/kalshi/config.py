"""Client configuration: URLs, credentials and HTTP tuning, validated and never exposing key material.

The client reads no environment variables: callers (the Dagster resources, the CLI) build a `KalshiConfig`
from theirs. Error messages name the `KALSHI_*` variable that usually carries a setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from kalshi_pipeline.kalshi.auth import KalshiSigner, load_private_key, load_private_key_file
from kalshi_pipeline.kalshi.errors import KalshiConfigError
from kalshi_pipeline.kalshi.ratelimit import TIER_NAMES

PRODUCTION_BASE_URL = "https://external-api.kalshi.com/trade-api/v2"
DEMO_BASE_URL = "https://external-api.demo.kalshi.co/trade-api/v2"
DEFAULT_WS_URL = "wss://external-api-ws.kalshi.com/trade-api/ws/v2"
WS_PATH = "/trade-api/ws/v2"

#: Named environments accepted as a base URL (and by callers for `KALSHI_ENV`).
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


# Kalshi's documented hosts: the REST host does not always map to the WS host by a scheme swap.
_KNOWN_WS_HOSTS: dict[str, str] = {
    "external-api.kalshi.com": "wss://external-api-ws.kalshi.com",
    "external-api.demo.kalshi.co": "wss://external-api-ws.demo.kalshi.co",
    "api.elections.kalshi.com": "wss://api.elections.kalshi.com",
    "demo-api.kalshi.co": "wss://demo-api.kalshi.co",
}


def derive_ws_url(api_base_url: str) -> str:
    """Map a REST base URL to its WebSocket URL.

    Kalshi's hosts map by name (`https://external-api.kalshi.com/trade-api/v2` ->
    `wss://external-api-ws.kalshi.com/trade-api/ws/v2`); any other host (the local simulator) keeps host
    and port and swaps the scheme: `http://H:P/trade-api/v2` -> `ws://H:P/trade-api/ws/v2`.

    Raises:
        KalshiConfigError: `api_base_url` is not an http(s) URL.
    """
    parts = urlsplit(api_base_url.strip())
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise KalshiConfigError(
            f"cannot derive a WebSocket URL from {api_base_url!r}: not an http(s) URL"
        )
    host = (parts.hostname or "").lower()
    if host in _KNOWN_WS_HOSTS:
        return _KNOWN_WS_HOSTS[host] + WS_PATH
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    prefix = path[: -len("/trade-api/v2")] if path.endswith("/trade-api/v2") else ""
    return urlunsplit((scheme, parts.netloc, prefix + WS_PATH, "", ""))


def validate_ws_url(url: str) -> str:
    """Check that `url` is a ws(s) URL and return it without a trailing slash (an http(s) URL is derived).

    Raises:
        KalshiConfigError: `url` is neither a ws(s) nor an http(s) URL.
    """
    parts = urlsplit(url.strip())
    if parts.scheme in ("http", "https"):
        return derive_ws_url(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise KalshiConfigError(
            f"KALSHI_WS_URL {url!r} is not a ws:// or wss:// URL (example: {DEFAULT_WS_URL})"
        )
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class KalshiConfig:
    """Everything the client needs to talk to Kalshi (or the local simulator).

    Attributes:
        base_url: REST base URL including the `/trade-api/v2` prefix (`prod`, `demo` presets accepted).
        ws_url: WebSocket URL (an http(s) base URL is mapped); None or blank derives it from `base_url`.
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
    ws_url: str | None = None
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
        if self.ws_url is not None:
            blank = not self.ws_url.strip()
            object.__setattr__(self, "ws_url", None if blank else validate_ws_url(self.ws_url))
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

    def websocket_url(self) -> str:
        """The WebSocket URL: `ws_url` when given, else the one derived from `base_url` (`derive_ws_url`)."""
        return self.ws_url if self.ws_url is not None else derive_ws_url(self.base_url)

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
