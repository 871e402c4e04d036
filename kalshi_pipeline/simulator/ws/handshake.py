"""Verification of the WebSocket upgrade request's signed headers (with the REST gateway's key ring)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from kalshi_pipeline.simulator.auth import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AuthError,
    KeyRing,
)


class HandshakeVerifier:
    """Checks Kalshi's three signed headers on the WebSocket upgrade request (with the REST key ring)."""

    def __init__(self, keyring: KeyRing) -> None:
        """Verify against the REST gateway's key ring (its keys are loaded once per app)."""
        self.keyring = keyring

    def verify(self, headers: Mapping[str, str], path: str) -> str | None:
        """Return None when the handshake is acceptable, else the reason it is not.

        Kalshi always requires a signed handshake, so unlike REST an unsigned upgrade is refused even
        when the simulator has no keys; without keys any well-formed signature is accepted.
        """
        key_id = headers.get(KEY_HEADER)
        timestamp = headers.get(TIMESTAMP_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if not key_id or not timestamp or not signature:
            return "MISSING_API_KEY_HEADERS"
        if len(self.keyring) == 0:
            if not timestamp.isdigit():
                return "INVALID_API_KEY_TIMESTAMP"
            try:
                raw = base64.b64decode(signature, validate=True)
            except (binascii.Error, ValueError):
                return "INCORRECT_API_KEY_SIGNATURE"
            return None if raw else "INCORRECT_API_KEY_SIGNATURE"
        try:
            self.keyring.verify(
                {KEY_HEADER: key_id, TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature},
                "GET",
                path,
            )
        except AuthError as exc:
            return exc.details
        return None
