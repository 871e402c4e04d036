"""Fixtures for the Kalshi client tests: throwaway RSA key pairs (PKCS#1 and PKCS#8 PEM) and an Ed25519 one."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


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


@dataclass(frozen=True)
class Ed25519Pair:
    """A generated Ed25519 key pair with its PKCS#8 and SubjectPublicKeyInfo PEM encodings."""

    private_key: ed25519.Ed25519PrivateKey
    pkcs8_pem: str
    public_pem: str


@pytest.fixture(scope="session")
def ed25519_pair() -> Ed25519Pair:
    """An Ed25519 key pair (Kalshi's other API key type)."""
    key = ed25519.Ed25519PrivateKey.generate()
    return Ed25519Pair(
        private_key=key,
        pkcs8_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        public_pem=key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    )
