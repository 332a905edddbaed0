import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.errors import TokenExpiredError, TokenForgedError, TokenMalformedError
from protocols.tokens import (
    TokenClaims,
    b64url_encode,
    key_id,
    public_key_from_text,
    public_key_text,
    sign_token,
    verify_token,
)

KEY = Ed25519PrivateKey.generate()
KID = key_id(KEY.public_key())
KEYS = {KID: KEY.public_key()}


def token(prefix: str = "PM1.", iat: int = 1000, exp: int = 1060, key: Ed25519PrivateKey = KEY) -> str:
    return sign_token(prefix, TokenClaims(prefix, "M0001", iat, exp, "n1", KID), key)


def test_round_trip() -> None:
    claims = verify_token(token(), "PM1.", KEYS, now=1030)
    assert (claims.subject, claims.expires_at, claims.kid) == ("M0001", 1060, KID)


def test_public_key_text_round_trip() -> None:
    assert key_id(public_key_from_text(public_key_text(KEY.public_key()))) == KID


def test_expired_and_future_tokens_are_refused() -> None:
    with pytest.raises(TokenExpiredError, match="expired"):
        verify_token(token(), "PM1.", KEYS, now=1061)
    assert verify_token(token(), "PM1.", KEYS, now=1065, leeway=5).subject == "M0001"
    with pytest.raises(TokenExpiredError, match="future"):
        verify_token(token(), "PM1.", KEYS, now=900)


def test_signature_from_another_key_is_forged() -> None:
    with pytest.raises(TokenForgedError, match="does not verify"):
        verify_token(token(key=Ed25519PrivateKey.generate()), "PM1.", KEYS, now=1030)


def test_unknown_key_id_is_forged() -> None:
    with pytest.raises(TokenForgedError, match="unknown issuer"):
        verify_token(token(), "PM1.", {}, now=1030)


def test_edited_payload_is_forged() -> None:
    good = token()
    prefix_payload, sig = good.rsplit(".", 1)
    edited = prefix_payload[:-2] + ("A" if prefix_payload[-2] != "A" else "B") + prefix_payload[-1]
    with pytest.raises((TokenForgedError, TokenMalformedError)):
        verify_token(f"{edited}.{sig}", "PM1.", KEYS, now=1030)


def test_token_cannot_move_to_another_prefix() -> None:
    moved = "CP1." + token()[4:]
    with pytest.raises(TokenForgedError):
        verify_token(moved, "CP1.", KEYS, now=1030)


@pytest.mark.parametrize(
    "bad",
    [
        "PM1.",
        "PM1.onlyone",
        "PM1.a.b.c",
        "PM1.!!!.sig",
        "PM1." + b64url_encode(b"[1,2]") + ".sig",
        "PM1." + b64url_encode(b'{"sub":"x","iat":"1","exp":2,"nonce":"n","kid":"k"}') + ".sig",
        "PM1." + "A" * 2000,
        "XX1.a.b",
    ],
)
def test_malformed_tokens(bad: str) -> None:
    with pytest.raises(TokenMalformedError):
        verify_token(bad, "PM1.", KEYS, now=1030)
