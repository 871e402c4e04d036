"""Kalshi request signing over `timestamp_ms + METHOD + path` with an RSA or an Ed25519 API key.

The same signer serves REST requests (path `/trade-api/v2/...`) and the WebSocket handshake
(`sign("GET", "/trade-api/ws/v2")`). The key type is read from the PEM: an RSA key signs with RSA-PSS
(SHA-256, MGF1-SHA-256, salt length = digest length) as Kalshi's quick start documents; an Ed25519 key
signs the same message bytes with pure Ed25519 (RFC 8032, no pre-hash). Kalshi accepts Ed25519 API keys
besides RSA with the same three headers and the same message (`../shared/kalshi-api.md` section 12); the
docs name no pre-hash or context for Ed25519, so none is used, and the 64-byte signature is base64-encoded
like the RSA one.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from kalshi_pipeline.kalshi.errors import KalshiConfigError

HEADER_KEY = "KALSHI-ACCESS-KEY"
HEADER_TIMESTAMP = "KALSHI-ACCESS-TIMESTAMP"
HEADER_SIGNATURE = "KALSHI-ACCESS-SIGNATURE"

SigningKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
"""A private key Kalshi accepts for API keys: RSA (RSA-PSS signatures) or Ed25519."""


def load_private_key(pem: str | bytes, *, source: str) -> SigningKey:
    """Load an unencrypted RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8) private key from PEM text.

    PEM text whose newlines arrive escaped as a literal `\\n` on one line (how many secret stores hold it)
    is accepted too.

    Args:
        pem: The PEM text.
        source: Where the text came from (file path or variable name), used in the error message.

    Raises:
        KalshiConfigError: One line naming `source` when the text is not an unencrypted RSA or Ed25519
            private key.
    """
    data = pem.encode() if isinstance(pem, str) else pem
    if b"\\n" in data and b"\n" not in data.strip():
        data = data.replace(b"\\n", b"\n")
    if b"-----BEGIN" not in data:
        raise KalshiConfigError(
            f"{source} is not a PEM private key (expected '-----BEGIN RSA PRIVATE KEY-----' or "
            "'-----BEGIN PRIVATE KEY-----')"
        )
    try:
        key = serialization.load_pem_private_key(data.strip() + b"\n", password=None)
    except TypeError:
        raise KalshiConfigError(
            f"{source} holds an encrypted private key; decrypt it first (openssl pkey -in ENC -out PLAIN)"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise KalshiConfigError(f"{source} is not a valid PEM private key ({reason})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise KalshiConfigError(
            f"{source} holds a {type(key).__name__.lstrip('_')}; Kalshi API keys are RSA or Ed25519 keys"
        )
    return key


def load_private_key_file(
    path: str | Path, *, variable: str = "KALSHI_PRIVATE_KEY_PATH"
) -> SigningKey:
    """Read and load an RSA or Ed25519 private key file, with one-line errors naming the file and the variable."""
    file = Path(path).expanduser()
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise KalshiConfigError(f"{variable}: private key file {file} does not exist") from None
    except IsADirectoryError:
        raise KalshiConfigError(
            f"{variable}: {file} is a directory, not a private key file"
        ) from None
    except OSError as exc:
        raise KalshiConfigError(
            f"{variable}: cannot read private key file {file} ({exc.strerror})"
        ) from None
    return load_private_key(data, source=f"{variable} file {file}")


def signing_path(path_or_url: str) -> str:
    """Return the part of a path or URL that Kalshi signs: the URL path without host and query string."""
    parts = urlsplit(path_or_url)
    path = parts.path or "/"
    return path if path.startswith("/") else "/" + path


class KalshiSigner:
    """Produces Kalshi's three authentication headers for a request.

    The signer never exposes key material: its repr shows only the key id.
    """

    def __init__(
        self,
        key_id: str,
        private_key: SigningKey,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create a signer for `key_id` with an already loaded RSA or Ed25519 private key."""
        if not key_id or not key_id.strip():
            raise KalshiConfigError("KALSHI_API_KEY_ID is empty")
        self.key_id = key_id.strip()
        self._private_key = private_key
        self._clock = clock

    @classmethod
    def from_pem(
        cls, key_id: str, pem: str | bytes, *, source: str = "KALSHI_PRIVATE_KEY"
    ) -> KalshiSigner:
        """Create a signer from PEM text (RSA in PKCS#1 or PKCS#8, Ed25519 in PKCS#8)."""
        return cls(key_id, load_private_key(pem, source=source))

    @classmethod
    def from_file(
        cls, key_id: str, path: str | Path, *, variable: str = "KALSHI_PRIVATE_KEY_PATH"
    ) -> KalshiSigner:
        """Create a signer from a PEM file (RSA in PKCS#1 or PKCS#8, Ed25519 in PKCS#8)."""
        return cls(key_id, load_private_key_file(path, variable=variable))

    def __repr__(self) -> str:
        return f"KalshiSigner(key_id={self.key_id!r})"

    @property
    def algorithm(self) -> str:
        """The signature algorithm of this signer's key: `"RSA-PSS"` or `"Ed25519"`."""
        return "Ed25519" if isinstance(self._private_key, ed25519.Ed25519PrivateKey) else "RSA-PSS"

    def signature(self, message: bytes) -> str:
        """Return the base64 signature of `message`: Ed25519, or RSA-PSS (SHA-256, salt = digest length)."""
        if isinstance(self._private_key, ed25519.Ed25519PrivateKey):
            raw = self._private_key.sign(message)
        else:
            raw = self._private_key.sign(
                message,
                padding.PSS(
                    mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH
                ),
                hashes.SHA256(),
            )
        return base64.b64encode(raw).decode("ascii")

    def sign(self, method: str, path: str, *, timestamp_ms: int | None = None) -> dict[str, str]:
        """Return the `KALSHI-ACCESS-*` headers for one request.

        Args:
            method: The HTTP method (any case; signed upper-case).
            path: The full request path from the root, e.g. `/trade-api/v2/markets` (a full URL or a
                query string is accepted; only the path is signed).
            timestamp_ms: The Unix time in milliseconds to sign; defaults to now.
        """
        ts = int(self._clock() * 1000) if timestamp_ms is None else int(timestamp_ms)
        message = f"{ts}{method.upper()}{signing_path(path)}".encode()
        return {
            HEADER_KEY: self.key_id,
            HEADER_TIMESTAMP: str(ts),
            HEADER_SIGNATURE: self.signature(message),
        }
