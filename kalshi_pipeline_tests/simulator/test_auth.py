"""Signature verification over a real socket, with signatures made here with `cryptography`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_pipeline.simulator.auth import KeyRing, load_public_key
from kalshi_pipeline_tests.simulator import signing
from kalshi_pipeline_tests.simulator.signing import public_pem

KEY_ID = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c"


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def signed_headers(
    key: rsa.RSAPrivateKey, method: str, path: str, key_id: str = KEY_ID
) -> dict[str, str]:
    return signing.signed_headers(key, method, path, key_id)


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "authentication_error"


def test_signed_requests(
    start_simulator: Any, private_key: rsa.RSAPrivateKey, tmp_path: Any
) -> None:
    pem_file = tmp_path / "key.pub.pem"
    pem_file.write_text(public_pem(private_key))
    sim = start_simulator(auth_keys={KEY_ID: str(pem_file)})
    url = f"{sim.base_url}/markets"
    path = "/trade-api/v2/markets"
    ok = httpx.get(url, params={"limit": 2}, headers=signed_headers(private_key, "GET", path))
    assert ok.status_code == 200
    assert (
        httpx.get(url, params={"limit": 2}).status_code == 200
    )  # unsigned is fine without --require-auth
    # The query string is not part of the signed message; signing it is a (common) mistake.
    assert_401(
        httpx.get(
            url, params={"limit": 2}, headers=signed_headers(private_key, "GET", path + "?limit=2")
        )
    )
    assert_401(httpx.get(url, headers=signed_headers(private_key, "GET", "/markets")))
    assert_401(
        httpx.get(url, headers=signed_headers(private_key, "GET", path, key_id="unknown-key"))
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_401(httpx.get(url, headers=signed_headers(other, "GET", path)))
    headers = signed_headers(private_key, "GET", path)
    del headers["KALSHI-ACCESS-SIGNATURE"]
    assert_401(httpx.get(url, headers=headers))
    headers = signed_headers(private_key, "GET", path)
    headers["KALSHI-ACCESS-SIGNATURE"] = "%%%not-base64"
    assert_401(httpx.get(url, headers=headers))


def test_require_auth_rejects_unsigned(
    start_simulator: Any, private_key: rsa.RSAPrivateKey
) -> None:
    sim = start_simulator(auth_keys={KEY_ID: public_pem(private_key)}, require_auth=True)
    assert_401(httpx.get(f"{sim.base_url}/exchange/status"))
    headers = signed_headers(private_key, "GET", "/trade-api/v2/exchange/status")
    assert httpx.get(f"{sim.base_url}/exchange/status", headers=headers).status_code == 200
    root = sim.base_url.rsplit("/trade-api", 1)[0]
    assert httpx.get(f"{root}/_sim/health").status_code == 200


def test_key_loading_errors(private_key: rsa.RSAPrivateKey) -> None:
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    assert (
        load_public_key(private_pem).public_numbers() == private_key.public_key().public_numbers()
    )
    with pytest.raises(ValueError, match="neither PEM text nor a readable PEM file"):
        KeyRing({"k": "/no/such/file.pem"})
    with pytest.raises(ValueError, match="could not parse"):
        KeyRing({"k": "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----"})
