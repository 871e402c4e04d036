"""Signature checks of the gateway: a 401 for wrongly signed requests (and unsigned ones when required)."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from kalshi_pipeline.simulator.auth import AuthError, KeyRing
from kalshi_pipeline.simulator.errors import error_response
from kalshi_pipeline.simulator.paths import through_gateway

KEY_ID_SCOPE = "kalshi_simulator.key_id"
"""The ASGI scope key holding the verified API key id of a request (None when unsigned)."""


class SignatureCheck:
    """Verifies Kalshi's signed headers; records the verified key id in the scope for the rate limiter."""

    def __init__(self, app: ASGIApp, keys: KeyRing, require_auth: bool) -> None:
        """Wrap `app`, verifying against `keys`; `require_auth` rejects unsigned requests too."""
        self.app = app
        self.keys = keys
        self.require_auth = require_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not through_gateway(scope):
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        try:
            key_id = self.keys.verify(headers, scope["method"], scope["path"])
        except AuthError as exc:
            await _unauthorized(exc.details)(scope, receive, send)
            return
        if key_id is None and self.require_auth:
            await _unauthorized("MISSING_API_KEY_HEADERS")(scope, receive, send)
            return
        scope[KEY_ID_SCOPE] = key_id
        await self.app(scope, receive, send)


def _unauthorized(details: str) -> JSONResponse:
    return error_response(401, "authentication_error", "authentication_error", details)
