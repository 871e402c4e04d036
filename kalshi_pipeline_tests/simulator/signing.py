"""Kalshi request signing for the simulator's tests, written here with `cryptography` alone.

The simulator's tests deliberately sign independently of `kalshi_pipeline.kalshi`, so that the exchange is
checked against Kalshi's documented format rather than against the client's own signer.
"""

from __future__ import annotations

import base64
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def public_pem(key: rsa.RSAPrivateKey) -> str:
    """The SubjectPublicKeyInfo PEM of `key`'s public half."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def signed_headers(key: rsa.RSAPrivateKey, method: str, path: str, key_id: str) -> dict[str, str]:
    """Kalshi's three access headers: RSA-PSS/SHA-256 over `timestamp_ms + method + path`, now."""
    timestamp = str(int(time.time() * 1000))
    signature = key.sign(
        f"{timestamp}{method}{path}".encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )
    return {
        "KALSHI-ACCESS-KEY": key_id,
        "KALSHI-ACCESS-TIMESTAMP": timestamp,
        "KALSHI-ACCESS-SIGNATURE": base64.b64encode(signature).decode(),
    }
