"""Error bodies: the object shape, the string 429 shape, and non-JSON answers."""

from __future__ import annotations

import pytest

from kalshi_pipeline.kalshi.errors import (
    KalshiApiError,
    KalshiAuthError,
    KalshiBadRequest,
    KalshiNotFound,
    KalshiRateLimited,
    KalshiServerError,
    error_for_status,
    parse_error_body,
)


def test_object_error_body() -> None:
    body = b'{"error":{"code":"not_found","message":"market not found","details":"ticker X"}}'
    assert parse_error_body(body) == ("not_found", "market not found", "ticker X")


def test_string_429_body() -> None:
    assert parse_error_body(b'{"error": "too many requests"}') == (None, "too many requests", None)


def test_non_json_and_empty_bodies() -> None:
    code, message, details = parse_error_body(b"<html>\n<body>502 Bad Gateway</body>\n</html>")
    assert code is None and details is None
    assert message == "<html> <body>502 Bad Gateway</body> </html>"
    assert parse_error_body(b"") == (None, None, None)
    assert parse_error_body(b"\xff\xfe")[1] is not None


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, KalshiBadRequest), (401, KalshiAuthError), (403, KalshiAuthError), (404, KalshiNotFound),
     (409, KalshiApiError), (429, KalshiRateLimited), (503, KalshiServerError)],
)  # fmt: skip
def test_status_mapping_carries_code_and_message(status: int, cls: type[KalshiApiError]) -> None:
    body = b'{"error":{"code":"bad_request","message":"period_interval must be 1, 60 or 1440"}}'
    err = error_for_status(status, body, method="GET", path="/trade-api/v2/markets")
    assert type(err) is cls
    assert (err.status, err.code, err.message) == (
        status,
        "bad_request",
        "period_interval must be 1, 60 or 1440",
    )
    assert "GET /trade-api/v2/markets" in str(err) and "bad_request" in str(err)


def test_auth_error_names_the_usual_causes() -> None:
    body = (
        b'{"error":{"code":"authentication_error","message":"authentication_error",'
        b'"details":"rpc error: code = Unauthenticated desc = INCORRECT_API_KEY_SIGNATURE"}}'
    )
    text = str(error_for_status(401, body, method="GET", path="/trade-api/v2/portfolio/balance"))
    for cause in ("key id", "demo", "clock", "/trade-api/v2", "query string", "PKCS"):
        assert cause in text
    assert "INCORRECT_API_KEY_SIGNATURE" in text
