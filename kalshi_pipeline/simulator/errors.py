"""Kalshi's error answers: `{"error": {"code", "message"[, "details"]}}`, and the bare body of a 429."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    """An error answered as Kalshi does: `{"error": {"code", "message"[, "details"]}}`."""

    def __init__(self, status: int, code: str, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    def response(self) -> JSONResponse:
        """The JSON response for this error."""
        return error_response(self.status, self.code, self.message, self.details)


def error_response(
    status: int, code: str, message: str, details: str | None = None
) -> JSONResponse:
    """Kalshi's error body for every error status except 429."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status)


def too_many_requests() -> JSONResponse:
    """Kalshi's 429: `{"error": "too many requests"}`, without Retry-After or rate-limit headers."""
    return JSONResponse({"error": "too many requests"}, status_code=429)


def bad_request(message: str) -> ApiError:
    """A 400 with code `bad_request`."""
    return ApiError(400, "bad_request", message)


def not_found(message: str) -> ApiError:
    """A 404 with code `not_found`."""
    return ApiError(404, "not_found", message)


async def on_api_error(_: Request, exc: Exception) -> Response:
    """Starlette exception handler answering an `ApiError`."""
    assert isinstance(exc, ApiError)
    return exc.response()


async def on_http_error(_: Request, exc: Exception) -> Response:
    """Starlette exception handler answering routing errors (unknown path, wrong method) in Kalshi's shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(404, "not_found", "not found")
    if exc.status_code == 405:
        return error_response(405, "method_not_allowed", "method not allowed")
    return error_response(exc.status_code, "bad_request", str(exc.detail))
