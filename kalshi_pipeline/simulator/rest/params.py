"""Query parameters as Kalshi's gateway parses them, opaque cursors and cursor pagination."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from starlette.requests import Request

from kalshi_pipeline.simulator.errors import bad_request

T = TypeVar("T")


def q_int(
    request: Request,
    name: str,
    *,
    default: int | None = None,
    lo: int | None = None,
    hi: int | None = None,
    required: bool = False,
) -> int | None:
    """An integer query parameter with bounds; 400 when missing (if required), malformed or out of range."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise bad_request(f"{name} is required")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {raw!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise bad_request(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def q_required_int(
    request: Request, name: str, *, lo: int | None = None, hi: int | None = None
) -> int:
    """A required integer query parameter (400 when missing, malformed or out of range)."""
    value = q_int(request, name, lo=lo, hi=hi, required=True)
    assert value is not None  # q_int raises for a missing required parameter
    return value


def q_bool(request: Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter (`true`/`false`)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    # The spellings Go's strconv.ParseBool (Kalshi's gateway) accepts.
    if lowered in ("true", "t", "1"):
        return True
    if lowered in ("false", "f", "0"):
        return False
    raise bad_request(f"{name} must be true or false, got {raw!r}")


def q_str(request: Request, name: str) -> str | None:
    """A string query parameter (None when absent or empty)."""
    raw = request.query_params.get(name)
    return raw if raw else None


def q_csv(request: Request, name: str) -> list[str] | None:
    """A comma-separated list parameter."""
    raw = q_str(request, name)
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def q_rfc3339(request: Request, name: str) -> int | None:
    """An RFC3339 timestamp parameter as Unix seconds (None when absent; 400 when malformed)."""
    raw = q_str(request, name)
    if raw is None:
        return None
    try:
        return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise bad_request(f"{name} must be an RFC3339 timestamp, got {raw!r}") from None


def encode_cursor(*parts: object) -> str:
    """An opaque cursor for the position after the item with these sort-key parts."""
    return base64.urlsafe_b64encode(json.dumps(parts, separators=(",", ":")).encode()).decode()


def decode_cursor(request: Request, arity: int) -> list[Any] | None:
    """The sort-key parts of a cursor; 400 on anything we did not issue."""
    raw = q_str(request, "cursor")
    if raw is None:
        return None
    try:
        parts = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad_request("invalid cursor") from None
    if not isinstance(parts, list) or len(parts) != arity:
        raise bad_request("invalid cursor")
    return parts


def page(
    items: list[T], key: Callable[[T], tuple[Any, ...]], after: list[Any] | None, limit: int
) -> tuple[list[T], str]:
    """Sort by key, skip through the cursor position, cut a page; the cursor is "" on the last page."""
    items = sorted(items, key=key)
    if after is not None:
        bound = tuple(after)
        items = [item for item in items if key(item) > bound]
    chosen = items[:limit]
    cursor = encode_cursor(*key(chosen[-1])) if len(items) > limit else ""
    return chosen, cursor
