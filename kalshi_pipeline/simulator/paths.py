"""Where the simulated exchange serves what: Kalshi's URL layout, and which requests pass its gateway."""

from __future__ import annotations

from starlette.types import Scope

REST_PREFIX = "/trade-api/v2"
"""The REST API's base path."""
WS_PATH = "/trade-api/ws/v2"
"""The WebSocket endpoint's path."""
GATEWAY_PREFIX = "/trade-api/"
"""Requests under this prefix pass the gateway (faults, trailing slash, signatures, rate limit)."""


def through_gateway(scope: Scope) -> bool:
    """Whether an ASGI request passes the gateway: HTTP under `/trade-api/` (not `/_sim/...`)."""
    return scope["type"] == "http" and scope["path"].startswith(GATEWAY_PREFIX)
