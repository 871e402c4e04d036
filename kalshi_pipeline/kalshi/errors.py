"""Errors raised by the Kalshi client, each carrying enough context for a user to act on it.

The hierarchy (a class listed twice has two parents):

```
KalshiError
├── KalshiConfigError          unusable settings: key, URL, tier, number, channel
├── KalshiProtocolError        an answer this client cannot interpret
│   ├── TickerError            a ticker of unexpected shape (also a ValueError)
│   └── WsMessageError         a malformed WebSocket frame (also a KalshiWebSocketError)
├── KalshiTransportError       no HTTP answer at all, even after retrying
├── KalshiApiError             an HTTP error status (.status, .code, .message)
│   ├── KalshiAuthError        401/403, also a rejected WebSocket handshake
│   ├── KalshiNotFound         404
│   ├── KalshiBadRequest       400
│   ├── KalshiRateLimited      429 until the retry budget was spent
│   └── KalshiServerError      5xx until the retry budget was spent
└── KalshiWebSocketError       the stream cannot continue (gave up reconnecting, not connected, closed)
    ├── WsCommandError         Kalshi answered a command with an error frame (.code)
    └── WsMessageError         a malformed WebSocket frame (also a KalshiProtocolError)
```
"""

from __future__ import annotations

import json
from typing import Any


class KalshiError(Exception):
    """Base class of every error raised by `kalshi_pipeline.kalshi`."""


class KalshiConfigError(KalshiError):
    """The client configuration is unusable (bad key file or variable, bad URL, bad tier, bad number)."""


class KalshiProtocolError(KalshiError):
    """Kalshi answered with something this client cannot interpret (malformed payload, repeated cursor)."""


class TickerError(KalshiProtocolError, ValueError):
    """A Kalshi ticker does not follow the expected `{SERIES}-{YY}{MON}{DD}[HHMM]{AWAY}{HOME}[-{TEAM}]` shape."""


class KalshiTransportError(KalshiError):
    """The request never got an HTTP answer (connection refused or reset, timeout), even after retrying."""


class KalshiWebSocketError(KalshiError):
    """A WebSocket problem: the stream cannot continue, or a command or a frame failed.

    The stream cannot continue when the client gave up reconnecting, is not connected or was closed;
    `WsCommandError` is a refused command and `WsMessageError` a malformed frame.
    """


class WsCommandError(KalshiWebSocketError):
    """Kalshi answered a command with an `error` frame; `.code` is Kalshi's numeric WS error code."""

    def __init__(self, code: int | None, message: str, *, command: str = "") -> None:
        super().__init__(f"{command or 'command'} failed: code {code}: {message}")
        self.code = code
        self.message = message
        self.command = command


class WsMessageError(KalshiWebSocketError, KalshiProtocolError):
    """A WebSocket frame is malformed; the client skips it, counts it and reports an `error` event."""


class KalshiApiError(KalshiError):
    """Kalshi answered with an HTTP error status.

    Attributes:
        status: The HTTP status code.
        code: Kalshi's stable error code (`error.code`), or None when the body had none.
        message: Kalshi's human-readable message (`error.message`, or the string body of a 429).
        details: Kalshi's optional `error.details`.
        method: The HTTP method of the failed request.
        path: The URL path of the failed request (no query string).
    """

    def __init__(
        self,
        text: str,
        *,
        status: int,
        code: str | None = None,
        message: str | None = None,
        details: Any = None,
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(text)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.method = method
        self.path = path


class KalshiAuthError(KalshiApiError):
    """Kalshi rejected the credentials (HTTP 401 or 403)."""


class KalshiNotFound(KalshiApiError):
    """The requested object does not exist, or is archived and must be read from `/historical/...` (404)."""


class KalshiBadRequest(KalshiApiError):
    """Kalshi rejected the request parameters (HTTP 400); `.code` and `.message` say why."""


class KalshiRateLimited(KalshiApiError):
    """Kalshi kept answering 429 Too Many Requests until the retry budget was spent."""


class KalshiServerError(KalshiApiError):
    """Kalshi kept answering 5xx until the retry budget was spent."""


AUTH_HINT = (
    "check: the key id matches the private key; demo keys only work on the demo host and production keys "
    "only on production; the machine clock is correct (timestamps are signed in milliseconds); the signed "
    "path is the full URL path incl. /trade-api/v2 without the query string; the PEM is the RSA key "
    "downloaded from Kalshi (PKCS#1 or PKCS#8)"
)


def parse_error_body(content: bytes) -> tuple[str | None, str | None, Any]:
    """Extract `(code, message, details)` from a Kalshi error body.

    Kalshi sends `{"error": {"code", "message", "details"}}` for most errors but `{"error": "too many
    requests"}` (a string) for 429; anything else (HTML from a proxy, empty body) yields a trimmed text message.
    """
    text = content.decode("utf-8", errors="replace").strip()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            message = error.get("message")
            return (
                str(code) if code is not None else None,
                str(message) if message is not None else None,
                error.get("details"),
            )
        if isinstance(error, str):
            return None, error, None
        if isinstance(body.get("message"), str):
            code = body.get("code")
            return (str(code) if code is not None else None), body["message"], None
    if not text:
        return None, None, None
    one_line = " ".join(text.split())
    return None, one_line[:200], None


def describe_error(
    method: str, path: str, status: int, code: str | None, message: str | None, details: Any
) -> str:
    """Format a one-line description of an HTTP error answer."""
    parts = [f"{method} {path} -> HTTP {status}"]
    if code:
        parts.append(f"code={code}")
    if message:
        parts.append(f"message={message!r}")
    if details:
        parts.append(f"details={details!r}")
    return " ".join(parts)


def error_for_status(
    status: int, content: bytes, *, method: str, path: str, attempts_note: str = ""
) -> KalshiApiError:
    """Build the error matching an HTTP error status and body (not raised here)."""
    code, message, details = parse_error_body(content)
    text = describe_error(method, path, status, code, message, details)
    if attempts_note:
        text = f"{text}; {attempts_note}"
    cls: type[KalshiApiError]
    if status in (401, 403):
        cls = KalshiAuthError
        text = f"{text}; Kalshi rejected the credentials: {AUTH_HINT}"
    elif status == 404:
        cls = KalshiNotFound
    elif status == 400:
        cls = KalshiBadRequest
    elif status == 429:
        cls = KalshiRateLimited
    elif status >= 500:
        cls = KalshiServerError
    else:
        cls = KalshiApiError
    return cls(
        text,
        status=status,
        code=code,
        message=message,
        details=details,
        method=method,
        path=path,
    )
