"""Fixtures for the Kalshi client tests: throwaway RSA key pairs in PKCS#1 and PKCS#8 PEM."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class KeyPair:
    """A generated RSA key pair with its PEM encodings."""

    private_key: rsa.RSAPrivateKey
    pkcs1_pem: str
    pkcs8_pem: str
    public_pem: str


def _make_pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(
        private_key=key,
        pkcs1_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode(),
        pkcs8_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        public_pem=key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    )


@pytest.fixture(scope="session")
def key_pair() -> KeyPair:
    """An RSA-2048 key pair (the kind Kalshi issues)."""
    return _make_pair()


@pytest.fixture(scope="session")
def other_key_pair() -> KeyPair:
    """A second, unrelated RSA key pair (for wrong-key tests)."""
    return _make_pair()
