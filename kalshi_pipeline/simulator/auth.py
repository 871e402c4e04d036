"""Verification of Kalshi's request signatures, written independently from the documented recipe.

A signed request carries `KALSHI-ACCESS-KEY` (key id), `KALSHI-ACCESS-TIMESTAMP` (Unix ms) and
`KALSHI-ACCESS-SIGNATURE`: base64 of a signature over `timestamp + METHOD + path`, the path starting at
`/trade-api/...` and without the query. An RSA key's signature is RSA-PSS (SHA-256, MGF1 SHA-256, salt
length = digest length); an Ed25519 key's is pure Ed25519 over the same bytes (Kalshi accepts Ed25519 API
keys besides RSA with the same headers and message; no pre-hash is documented, so none is accepted). The
key type is the registered public key's: an RSA-PSS signature never verifies under an Ed25519 key.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

KEY_HEADER = "kalshi-access-key"
TIMESTAMP_HEADER = "kalshi-access-timestamp"
SIGNATURE_HEADER = "kalshi-access-signature"


PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
"""A registered API key's public half: RSA or Ed25519."""


class AuthError(Exception):
    """A request's credentials were present but wrong (answered with 401)."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


def load_public_key(pem_or_path: str) -> PublicKey:
    """Load an RSA or Ed25519 public key from PEM text or a PEM file path (a private key's half works too)."""
    text = pem_or_path.strip()
    if "-----BEGIN" not in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValueError(f"{text!r} is neither PEM text nor a readable PEM file")
        text = path.read_text()
    data = text.encode()
    try:
        if "PRIVATE KEY" in text:
            private = serialization.load_pem_private_key(data, password=None)
            key = private.public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"could not parse the PEM key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise ValueError("only RSA and Ed25519 keys are supported (Kalshi's API key types)")
    return key


class KeyRing:
    """The API keys the exchange knows, by key id."""

    def __init__(self, keys: dict[str, str]) -> None:
        """Load every key (ValueError naming the key id whose PEM text or file is unusable)."""
        self._keys: dict[str, PublicKey] = {}
        for key_id, pem in keys.items():
            try:
                self._keys[key_id] = load_public_key(pem)
            except ValueError as exc:
                raise ValueError(f"auth key {key_id!r}: {exc}") from None

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, headers: dict[str, str], method: str, path: str) -> str | None:
        """Return the key id of a correctly signed request, None for an unsigned one; raise AuthError."""
        key_id = headers.get(KEY_HEADER)
        timestamp = headers.get(TIMESTAMP_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if key_id is None and timestamp is None and signature is None:
            return None
        if not key_id or not timestamp or not signature:
            raise AuthError("MISSING_API_KEY_HEADERS")
        public_key = self._keys.get(key_id)
        if public_key is None:
            raise AuthError("INCORRECT_API_KEY")
        if not timestamp.isdigit():
            raise AuthError("INVALID_API_KEY_TIMESTAMP")
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise AuthError("INCORRECT_API_KEY_SIGNATURE") from exc
        message = f"{timestamp}{method.upper()}{path}".encode()
        try:
            if isinstance(public_key, ed25519.Ed25519PublicKey):
                public_key.verify(raw, message)
            else:
                public_key.verify(
                    raw,
                    message,
                    padding.PSS(
                        mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH
                    ),
                    hashes.SHA256(),
                )
        except InvalidSignature as exc:
            raise AuthError("INCORRECT_API_KEY_SIGNATURE") from exc
        return key_id
