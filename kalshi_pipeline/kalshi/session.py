"""The HTTP session under `KalshiClient`: rate limiting, signing, retries with backoff, and JSON decoding.

Every request draws tokens from a rate limiter (by default the process-wide bucket of the configured tier),
is signed when credentials exist, and is retried with capped exponential backoff and full jitter on 429,
5xx, timeouts and connection errors (a `Retry-After` header wins, up to a minute).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import httpx
import orjson

from kalshi_pipeline.kalshi.auth import KalshiSigner
from kalshi_pipeline.kalshi.config import KalshiConfig
from kalshi_pipeline.kalshi.errors import (
    KalshiError,
    KalshiProtocolError,
    KalshiTransportError,
    error_for_status,
)
from kalshi_pipeline.kalshi.ratelimit import RateLimiter, shared_limiter

__all__ = [
    "KalshiSession",
    "Params",
    "RequestStats",
    "decode_json",
    "json_object",
    "list_field",
    "page_size_within",
    "query_pairs",
    "required_field",
]

_RETRY_AFTER_MAX_S = 60.0

logger = logging.getLogger(__name__)
T = TypeVar("T")
Params = Mapping[str, Any] | Sequence[tuple[str, Any]]
"""Query parameters: a mapping, or a sequence of pairs (which may repeat a key)."""


@dataclass
class RequestStats:
    """Counters of one client's HTTP activity.

    Attributes:
        requests: HTTP attempts sent (each retry counts).
        retries: Attempts repeated after a retryable failure.
        rate_limited: 429 answers received.
        throttled_seconds: Time spent waiting for the rate limiter.
        server_errors: 5xx answers received.
        transport_errors: Timeouts and connection errors.
        backoff_seconds: Time spent sleeping between retries.
    """

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    throttled_seconds: float = 0.0
    server_errors: int = 0
    transport_errors: int = 0
    backoff_seconds: float = 0.0


def _format_param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, Iterable):
        return ",".join(_format_param(v) for v in value)
    return str(value)


def query_pairs(params: Params) -> list[tuple[str, str]]:
    """Query parameters as `(key, text)` pairs: `None` values dropped, lists comma-separated."""
    items = params.items() if isinstance(params, Mapping) else params
    return [(k, _format_param(v)) for k, v in items if v is not None]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def required_field(body: Mapping[str, Any], key: str, path: str) -> Any:
    """The non-null field `key` of an answer to `GET path`.

    Raises:
        KalshiProtocolError: It is missing or null.
    """
    if body.get(key) is None:
        raise KalshiProtocolError(f"GET {path}: response has no {key!r} field")
    return body[key]


def list_field(body: Mapping[str, Any], key: str, path: str) -> list[Any]:
    """The list field `key` of an answer to `GET path` (missing or null reads as empty).

    Raises:
        KalshiProtocolError: It is not a list.
    """
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise KalshiProtocolError(f"GET {path}: field {key!r} should be a list")
    return value


def page_size_within(page_size: int | None, maximum: int) -> int:
    """The page size to request: `page_size`, or `maximum` when None.

    Raises:
        ValueError: `page_size` is outside `1..maximum`.
    """
    size = maximum if page_size is None else page_size
    if not 1 <= size <= maximum:
        raise ValueError(f"page_size must be between 1 and {maximum}, got {size}")
    return size


class KalshiSession:
    """One signed, rate-limited, retrying httpx session to a Kalshi base URL (used by `KalshiClient`).

    The httpx client is opened lazily in the running event loop; one session serves one loop.
    """

    def __init__(
        self,
        config: KalshiConfig,
        *,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """Create a session (see `KalshiClient` for the arguments).

        Raises:
            KalshiConfigError: The private key cannot be loaded.
        """
        self.config = config
        self.limiter: RateLimiter = (
            limiter if limiter is not None else shared_limiter(config.rate_limit_tier)
        )
        self.stats = RequestStats()
        self.signer: KalshiSigner | None = config.signer()
        self._transport = transport
        self._sleep = sleep
        self._rng = rng
        self._http: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> None:
        """Open the connection pool in the running event loop (requests also open it on first use)."""
        self._ensure_http()

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
            self._loop = None

    def _ensure_http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is not None and self._loop is not loop:
            raise KalshiError(
                "this KalshiClient was opened in another event loop; create one client per "
                "asyncio.run() (the rate limiter can still be shared)"
            )
        if self._http is None:
            self._loop = loop
            n = self.config.max_concurrency
            self._http = httpx.AsyncClient(
                base_url=self.config.base_url + "/",
                timeout=httpx.Timeout(self.config.timeout_s, connect=self.config.connect_timeout_s),
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                headers={"Accept": "application/json", "User-Agent": "kalshi-pipeline/0.1"},
                transport=self._transport,
                follow_redirects=False,
            )
            self._semaphore = asyncio.Semaphore(n)
        return self._http

    def _backoff(self, retry: int, response: httpx.Response | None) -> float:
        if response is not None:
            hinted = _retry_after(response)
            if hinted is not None:
                return min(hinted, _RETRY_AFTER_MAX_S)
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * (2**retry))
        return self._rng() * ceiling

    async def request_json(self, method: str, path: str, params: Params | None = None) -> Any:
        """Send one API request (with rate limiting, signing and retries) and return the decoded JSON.

        Raises:
            KalshiProtocolError: The answer is not JSON; otherwise as `request`.
        """
        label, response = await self.request(method, path, params)
        return self._decode(response, label)

    async def get_body(self, path: str, params: Params | None = None) -> tuple[str, bytes]:
        """`GET path` (see `request`): a label naming the request, for messages, and the answer's bytes."""
        label, response = await self.request("GET", path, params)
        return label, response.content

    async def request(
        self, method: str, path: str, params: Params | None = None
    ) -> tuple[str, httpx.Response]:
        """Send one API request (with rate limiting, signing and retries); return its label and 2xx answer.

        Args:
            method: HTTP method.
            path: Path below the base URL, e.g. `/markets` or `markets/{ticker}`.
            params: Query parameters; `None` values are dropped, lists become comma-separated, and a
                sequence of pairs repeats a key.

        Raises:
            KalshiAuthError, KalshiNotFound, KalshiBadRequest, KalshiApiError: Non-retryable HTTP errors.
            KalshiRateLimited, KalshiServerError, KalshiTransportError: Retries exhausted.
        """
        http = self._ensure_http()
        assert self._semaphore is not None
        query = query_pairs(params or {})
        # One request object serves every attempt (a bodiless GET can be resent); each attempt re-signs it.
        request = http.build_request(method.upper(), path.lstrip("/"), params=tuple(query))
        wire_path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        label = f"{method.upper()} {wire_path}"
        attempts = self.config.max_retries + 1
        outcomes: list[str] = []
        started = time.monotonic()
        response: httpx.Response | None = None
        for attempt in range(attempts):
            waited = time.monotonic()
            await self.limiter.acquire(self.config.request_cost)
            self.stats.throttled_seconds += time.monotonic() - waited
            if self.signer is not None:
                request.headers.update(self.signer.sign(method, wire_path))
            response = None
            async with self._semaphore:
                self.stats.requests += 1
                try:
                    response = await http.send(request)
                    await response.aread()
                except httpx.TimeoutException as exc:
                    self.stats.transport_errors += 1
                    outcomes.append(f"timeout ({type(exc).__name__})")
                except httpx.TransportError as exc:
                    self.stats.transport_errors += 1
                    outcomes.append(
                        f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    )
            if response is not None:
                status = response.status_code
                if status < 300:
                    return label, response
                if status == 429:
                    self.stats.rate_limited += 1
                    outcomes.append("429")
                    # The server's bucket is empty (another client shares the key): stop bursting.
                    drain = getattr(self.limiter, "drain", None)
                    if callable(drain):
                        drain()
                elif status >= 500:
                    self.stats.server_errors += 1
                    outcomes.append(str(status))
                else:
                    raise error_for_status(
                        status, response.content, method=method.upper(), path=wire_path
                    )
            if attempt + 1 < attempts:
                delay = self._backoff(attempt, response)
                self.stats.retries += 1
                self.stats.backoff_seconds += delay
                logger.info(
                    "%s: %s; retry %d/%d in %.2fs",
                    label,
                    outcomes[-1],
                    attempt + 1,
                    self.config.max_retries,
                    delay,
                )
                await self._sleep(delay)
        note = (
            f"gave up after {attempts} attempts in {time.monotonic() - started:.1f}s "
            f"(max_retries={self.config.max_retries}; outcomes: {_tally(outcomes)})"
        )
        if response is None:
            raise KalshiTransportError(
                f"{label}: no answer from {self.config.base_url}; {note}; check "
                "KALSHI_API_BASE_URL (or KALSHI_ENV) and that the exchange is reachable from here"
            )
        raise error_for_status(
            response.status_code,
            response.content,
            method=method.upper(),
            path=wire_path,
            attempts_note=note,
        )

    @staticmethod
    def _decode(response: httpx.Response, label: str) -> Any:
        return decode_json(label, response.content, response.status_code)

    async def get_object(self, path: str, params: Params | None = None) -> Mapping[str, Any]:
        """`GET path` whose answer must be a JSON object (see `request_json`)."""
        return json_object(await self.request_json("GET", path, params), path)

    async def paginate(
        self, path: str, params: Params | None, *, limit: int | None, read_ahead: bool = False
    ) -> AsyncIterator[Mapping[str, Any]]:
        """Yield every page of a cursor-paginated endpoint, keeping the same filters on every page.

        Stops when the cursor is empty, null or absent. With `read_ahead` (for a caller that reads every
        page) the next page is asked for as soon as a page's cursor is known, so it travels while the
        caller reads the page it was given.

        Raises:
            KalshiProtocolError: Kalshi returned a cursor it had already returned (the walk would loop),
                after the page that returned it.
        """
        base = query_pairs(params or {})
        if limit is not None:
            base.append(("limit", str(limit)))
        seen: set[str] = set()
        following: asyncio.Task[Mapping[str, Any]] | None = None
        try:
            body = await self.get_object(path, base)
            while True:
                next_cursor = body.get("cursor")
                looping: KalshiProtocolError | None = None
                if next_cursor and not isinstance(next_cursor, str):
                    looping = KalshiProtocolError(
                        f"GET {path}: cursor should be a string, got {next_cursor!r}"
                    )
                elif next_cursor in seen:
                    looping = KalshiProtocolError(
                        f"GET {path}: Kalshi returned cursor {next_cursor!r} twice; stopping to avoid "
                        f"a loop after {len(seen) + 1} pages"
                    )
                query: Params | None = None
                if looping is None and next_cursor:
                    seen.add(next_cursor)
                    query = [*base, ("cursor", next_cursor)]
                    if read_ahead:
                        following = asyncio.ensure_future(self.get_object(path, query))
                yield body
                if looping is not None:
                    raise looping
                if query is None:
                    return
                if following is not None:
                    body, following = await following, None
                else:
                    body = await self.get_object(path, query)
        finally:
            if following is not None:
                following.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await following

    async def iter_items(
        self,
        path: str,
        key: str,
        parse: Callable[[Any], T],
        params: Params,
        limit: int | None,
        *,
        read_ahead: bool = False,
    ) -> AsyncIterator[T]:
        """Yield `parse(item)` for every item of list `key` of every page of `path` (see `paginate`)."""
        async for page in self.paginate(path, params, limit=limit, read_ahead=read_ahead):
            for item in list_field(page, key, path):
                yield parse(item)


def _tally(outcomes: list[str]) -> str:
    """Return the attempts' outcomes once each, in first-seen order, with a count when repeated."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{n}x {o}" if n > 1 else o for o, n in counts.items())


def decode_json(label: str, content: bytes, status: int = 200) -> Any:
    """An answer's bytes decoded as JSON.

    Raises:
        KalshiProtocolError: The bytes are not JSON (the message quotes their start).
    """
    try:
        return orjson.loads(content)
    except ValueError:
        snippet = " ".join(content.decode("utf-8", "replace").split())[:120]
        raise KalshiProtocolError(
            f"{label}: HTTP {status} answer is not JSON: {snippet!r}"
        ) from None


def json_object(body: Any, path: str) -> Mapping[str, Any]:
    """`body` when it is a JSON object.

    Raises:
        KalshiProtocolError: It is not.
    """
    if not isinstance(body, Mapping):
        raise KalshiProtocolError(f"GET {path}: expected a JSON object, got {type(body).__name__}")
    return body
