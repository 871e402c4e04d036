"""Request signing: verified with the public key, with an independent `openssl` routine, and key loading."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from kalshi_pipeline.kalshi.auth import (
    HEADER_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    KalshiSigner,
    load_private_key,
    signing_path,
)
from kalshi_pipeline.kalshi.errors import KalshiConfigError

KEY_ID = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c"
PSS_DIGEST = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def _verify(
    public_key, headers: dict[str, str], message: bytes, pss: padding.PSS = PSS_DIGEST
) -> None:
    public_key.verify(base64.b64decode(headers[HEADER_SIGNATURE]), message, pss, hashes.SHA256())


def test_signature_verifies_with_public_key_over_ts_method_full_path(key_pair) -> None:
    signer = KalshiSigner.from_pem(KEY_ID, key_pair.pkcs1_pem)
    headers = signer.sign("get", "/trade-api/v2/portfolio/balance", timestamp_ms=1703123456789)
    assert headers[HEADER_KEY] == KEY_ID
    assert headers[HEADER_TIMESTAMP] == "1703123456789"
    _verify(
        key_pair.private_key.public_key(),
        headers,
        b"1703123456789GET/trade-api/v2/portfolio/balance",
    )


def test_salt_length_is_the_digest_length(key_pair) -> None:
    signer = KalshiSigner.from_pem(KEY_ID, key_pair.pkcs8_pem)
    headers = signer.sign("GET", "/trade-api/v2/markets", timestamp_ms=1)
    message = b"1GET/trade-api/v2/markets"
    _verify(key_pair.private_key.public_key(), headers, message)
    explicit_32 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    _verify(key_pair.private_key.public_key(), headers, message, explicit_32)
    with pytest.raises(InvalidSignature):
        wrong_salt = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20)
        _verify(key_pair.private_key.public_key(), headers, message, wrong_salt)


def test_message_excludes_query_string_and_host(key_pair) -> None:
    signer = KalshiSigner.from_pem(KEY_ID, key_pair.pkcs1_pem)
    public = key_pair.private_key.public_key()
    headers = signer.sign("GET", "/trade-api/v2/portfolio/orders?limit=5", timestamp_ms=42)
    _verify(public, headers, b"42GET/trade-api/v2/portfolio/orders")
    with pytest.raises(InvalidSignature):
        _verify(public, headers, b"42GET/trade-api/v2/portfolio/orders?limit=5")
    with pytest.raises(InvalidSignature):
        _verify(public, headers, b"42GET/portfolio/orders")
    full_url = signer.sign(
        "GET", "https://external-api.kalshi.com/trade-api/v2/markets?x=1", timestamp_ms=7
    )
    _verify(public, full_url, b"7GET/trade-api/v2/markets")


def test_signing_path() -> None:
    assert signing_path("/trade-api/v2/markets?limit=1&cursor=abc") == "/trade-api/v2/markets"
    assert signing_path("http://127.0.0.1:9/trade-api/ws/v2") == "/trade-api/ws/v2"
    assert signing_path("trade-api/v2/x") == "/trade-api/v2/x"


def test_default_timestamp_is_milliseconds(key_pair) -> None:
    signer = KalshiSigner(KEY_ID, key_pair.private_key, clock=lambda: 1_700_000_000.1234)
    headers = signer.sign("GET", "/trade-api/ws/v2")
    assert headers[HEADER_TIMESTAMP] == "1700000000123"
    _verify(key_pair.private_key.public_key(), headers, b"1700000000123GET/trade-api/ws/v2")


@pytest.mark.integration  # starts processes
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_cross_check_with_openssl_cli(key_pair, tmp_path: Path) -> None:
    """An independent implementation (the openssl CLI) verifies our signatures, and we verify its."""
    signer = KalshiSigner.from_pem(KEY_ID, key_pair.pkcs1_pem)
    message = b"1703123456789GET/trade-api/v2/markets/KXNBAGAME-25DEC19SASATL-ATL"
    headers = signer.sign(
        "GET",
        "/trade-api/v2/markets/KXNBAGAME-25DEC19SASATL-ATL?depth=3",
        timestamp_ms=1703123456789,
    )
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(base64.b64decode(headers[HEADER_SIGNATURE]))
    (tmp_path / "pub.pem").write_text(key_pair.public_pem)
    (tmp_path / "priv.pem").write_text(key_pair.pkcs8_pem)
    pss = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
    verify = subprocess.run(
        ["openssl", "dgst", "-sha256", *pss, "-verify", str(tmp_path / "pub.pem"),
         "-signature", str(tmp_path / "sig"), str(tmp_path / "msg")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "Verified OK" in verify.stdout

    (tmp_path / "other").write_bytes(message + b"?depth=3")
    rejected = subprocess.run(
        ["openssl", "dgst", "-sha256", *pss, "-verify", str(tmp_path / "pub.pem"),
         "-signature", str(tmp_path / "sig"), str(tmp_path / "other")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert rejected.returncode != 0

    subprocess.run(
        ["openssl", "dgst", "-sha256", *pss, "-sign", str(tmp_path / "priv.pem"),
         "-out", str(tmp_path / "osig"), str(tmp_path / "msg")],
        capture_output=True, check=True,
    )  # fmt: skip
    key_pair.private_key.public_key().verify(
        (tmp_path / "osig").read_bytes(), message, PSS_DIGEST, hashes.SHA256()
    )


def test_pkcs1_and_pkcs8_load_the_same_key(key_pair) -> None:
    one = load_private_key(key_pair.pkcs1_pem, source="x")
    eight = load_private_key(key_pair.pkcs8_pem.encode(), source="x")
    assert isinstance(one, rsa.RSAPrivateKey) and isinstance(eight, rsa.RSAPrivateKey)
    assert key_pair.pkcs1_pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert key_pair.pkcs8_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert one.private_numbers() == eight.private_numbers()


def test_pem_with_escaped_newlines_on_one_line_loads(key_pair) -> None:
    # Secret stores often hold a PEM on one line with its newlines escaped as a literal backslash-n.
    for pem in (key_pair.pkcs1_pem, key_pair.pkcs8_pem):
        escaped = pem.strip().replace("\n", "\\n")
        assert "\n" not in escaped
        for text in (escaped, escaped.encode()):
            key = load_private_key(text, source="KALSHI_PRIVATE_KEY")
            assert isinstance(key, rsa.RSAPrivateKey)
            assert key.private_numbers() == key_pair.private_key.private_numbers()
    broken = (
        key_pair.pkcs1_pem.strip().replace("\n", "\\n")[:200] + "\\n-----END RSA PRIVATE KEY-----"
    )
    with pytest.raises(KalshiConfigError, match="KALSHI_PRIVATE_KEY") as err:
        load_private_key(broken, source="KALSHI_PRIVATE_KEY")
    assert "\n" not in str(err.value)


def test_file_loading_and_one_line_errors(key_pair, tmp_path: Path) -> None:
    good = tmp_path / "kalshi.key"
    good.write_text(key_pair.pkcs1_pem)
    assert KalshiSigner.from_file(KEY_ID, good).key_id == KEY_ID

    missing = tmp_path / "nope.key"
    with pytest.raises(KalshiConfigError) as missing_err:
        KalshiSigner.from_file(KEY_ID, missing)
    assert str(missing) in str(missing_err.value)
    assert "KALSHI_PRIVATE_KEY_PATH" in str(missing_err.value)

    garbage = tmp_path / "garbage.key"
    garbage.write_text(
        "-----BEGIN RSA PRIVATE KEY-----\nnot base64 at all!!\n-----END RSA PRIVATE KEY-----\n"
    )
    truncated = tmp_path / "truncated.key"
    truncated.write_text(key_pair.pkcs1_pem[: len(key_pair.pkcs1_pem) // 2])
    plain = tmp_path / "plain.txt"
    plain.write_text("hello")
    for bad in (garbage, truncated, plain, tmp_path):
        with pytest.raises(KalshiConfigError) as err:
            KalshiSigner.from_file(KEY_ID, bad)
        text = str(err.value)
        assert "\n" not in text
        assert str(bad) in text
        assert err.value.__cause__ is None or err.value.__suppress_context__


def test_public_key_ec_key_and_encrypted_key_are_rejected(key_pair) -> None:
    with pytest.raises(KalshiConfigError, match="KALSHI_PRIVATE_KEY"):
        load_private_key(key_pair.public_pem, source="KALSHI_PRIVATE_KEY")
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KalshiConfigError, match="RSA"):
        load_private_key(ec_pem, source="k")
    encrypted = key_pair.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(KalshiConfigError, match="encrypted"):
        load_private_key(encrypted, source="k")


def test_signer_repr_has_no_key_material(key_pair) -> None:
    signer = KalshiSigner.from_pem(KEY_ID, key_pair.pkcs1_pem)
    text = repr(signer)
    assert KEY_ID in text
    assert "PRIVATE" not in text
    assert key_pair.pkcs1_pem.splitlines()[1][:20] not in text


def test_ed25519_key_is_detected_from_the_pem_and_signs_the_same_message(ed25519_pair) -> None:
    signer = KalshiSigner.from_pem(KEY_ID, ed25519_pair.pkcs8_pem)
    assert signer.algorithm == "Ed25519"
    headers = signer.sign(
        "get", "/trade-api/v2/portfolio/balance?limit=3", timestamp_ms=1703123456789
    )
    assert headers[HEADER_KEY] == KEY_ID and headers[HEADER_TIMESTAMP] == "1703123456789"
    raw = base64.b64decode(headers[HEADER_SIGNATURE])
    assert len(raw) == 64
    public = ed25519_pair.private_key.public_key()
    public.verify(raw, b"1703123456789GET/trade-api/v2/portfolio/balance")
    with pytest.raises(InvalidSignature):
        public.verify(raw, b"1703123456789GET/trade-api/v2/portfolio/balance?limit=3")
    escaped = ed25519_pair.pkcs8_pem.strip().replace("\n", "\\n")
    assert isinstance(load_private_key(escaped, source="k"), ed25519.Ed25519PrivateKey)


def test_rsa_signer_stays_rsa_pss(key_pair) -> None:
    assert KalshiSigner.from_pem(KEY_ID, key_pair.pkcs1_pem).algorithm == "RSA-PSS"


@pytest.mark.integration  # starts processes
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_ed25519_cross_check_with_openssl_cli(ed25519_pair, tmp_path: Path) -> None:
    """The openssl CLI (pure Ed25519, `-rawin`) verifies our Ed25519 signatures, and we verify its."""
    signer = KalshiSigner.from_pem(KEY_ID, ed25519_pair.pkcs8_pem)
    message = b"1703123456789GET/trade-api/ws/v2"
    headers = signer.sign("GET", "/trade-api/ws/v2", timestamp_ms=1703123456789)
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(base64.b64decode(headers[HEADER_SIGNATURE]))
    (tmp_path / "pub.pem").write_text(ed25519_pair.public_pem)
    (tmp_path / "priv.pem").write_text(ed25519_pair.pkcs8_pem)

    def verify(msg_file: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"),
             "-rawin", "-in", str(msg_file), "-sigfile", str(tmp_path / "sig")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    accepted = verify(tmp_path / "msg")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "Signature Verified Successfully" in accepted.stdout
    (tmp_path / "other").write_bytes(b"1703123456789GET/trade-api/v2")
    assert verify(tmp_path / "other").returncode != 0

    subprocess.run(
        ["openssl", "pkeyutl", "-sign", "-inkey", str(tmp_path / "priv.pem"), "-rawin",
         "-in", str(tmp_path / "msg"), "-out", str(tmp_path / "osig")],
        capture_output=True, check=True,
    )  # fmt: skip
    openssl_signature = (tmp_path / "osig").read_bytes()
    ed25519_pair.private_key.public_key().verify(openssl_signature, message)
    # Ed25519 is deterministic: the CLI and our signer produce the same bytes.
    assert base64.b64encode(openssl_signature).decode() == headers[HEADER_SIGNATURE]
