"""Signature verification over a real socket, with signatures made here with `cryptography` or the openssl CLI."""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

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
    loaded = load_public_key(private_pem)
    assert isinstance(loaded, rsa.RSAPublicKey)
    assert loaded.public_numbers() == private_key.public_key().public_numbers()
    with pytest.raises(ValueError, match="neither PEM text nor a readable PEM file"):
        KeyRing({"k": "/no/such/file.pem"})
    with pytest.raises(ValueError, match="could not parse"):
        KeyRing({"k": "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----"})


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_ed25519_keys_verify_signatures_made_by_the_openssl_cli(
    start_simulator: Any, private_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    """An Ed25519 key made and used by the openssl CLI (pure Ed25519 over the same message) is accepted."""
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "Ed25519", "-out", str(tmp_path / "ed.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    public = subprocess.run(
        ["openssl", "pkey", "-in", str(tmp_path / "ed.pem"), "-pubout"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    sim = start_simulator(
        auth_keys={"ed-key": public, KEY_ID: public_pem(private_key)}, require_auth=True
    )
    path = "/trade-api/v2/exchange/status"

    def openssl_headers(signed_path: str, key_id: str = "ed-key") -> dict[str, str]:
        timestamp = str(int(time.time() * 1000))
        (tmp_path / "msg").write_bytes(f"{timestamp}GET{signed_path}".encode())
        subprocess.run(
            ["openssl", "pkeyutl", "-sign", "-inkey", str(tmp_path / "ed.pem"), "-rawin",
             "-in", str(tmp_path / "msg"), "-out", str(tmp_path / "sig")],
            check=True, capture_output=True,
        )  # fmt: skip
        signature = base64.b64encode((tmp_path / "sig").read_bytes()).decode()
        return {
            "KALSHI-ACCESS-KEY": key_id,
            "KALSHI-ACCESS-TIMESTAMP": timestamp,
            "KALSHI-ACCESS-SIGNATURE": signature,
        }

    url = f"{sim.base_url}/exchange/status"
    assert httpx.get(url, headers=openssl_headers(path)).status_code == 200
    assert_401(httpx.get(url, headers=openssl_headers(path + "?x=1")))
    # An Ed25519 signature under the RSA key's id, and an RSA-PSS one under the Ed25519 key's id, fail.
    assert_401(httpx.get(url, headers=openssl_headers(path, key_id=KEY_ID)))
    assert_401(httpx.get(url, headers=signed_headers(private_key, "GET", path, key_id="ed-key")))
    assert httpx.get(url, headers=signed_headers(private_key, "GET", path)).status_code == 200


def test_ec_keys_are_refused_at_load() -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ValueError, match="RSA and Ed25519"):
        KeyRing({"k": pem})
