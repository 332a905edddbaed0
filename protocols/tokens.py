"""Signed tokens: member QR (``PM1.``), coupons (``CP1.``), wallet codes (``PW1.``).

Wire form: ``PREFIX.<base64url JSON claims>.<base64url Ed25519 signature>``; the
signature covers the ASCII text ``PREFIX.<base64url JSON claims>`` so a token
cannot be moved to another prefix. Claims: ``sub`` (subject id), ``iat`` and
``exp`` (Unix seconds), ``nonce``, ``kid`` (the issuer key that signed it).
Verification is offline against issuer public keys distributed in the
rulebook; the caller passes the current time (this module has no clock).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocols.errors import TokenExpiredError, TokenForgedError, TokenMalformedError
from protocols.untrusted_json import UntrustedJsonError, read_json

MAX_TOKEN_LENGTH = 1024


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise TokenMalformedError("token is not valid base64url") from err


def public_key_text(key: Ed25519PublicKey) -> str:
    """A public key as base64url of its 32 raw bytes (how the rulebook carries it)."""
    return b64url_encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def public_key_from_text(text: str) -> Ed25519PublicKey:
    raw = b64url_decode(text)
    if len(raw) != 32:
        raise TokenMalformedError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_id(key: Ed25519PublicKey) -> str:
    """A short stable id for a public key: 16 hex digits of its SHA-256."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class TokenClaims:
    prefix: str
    subject: str
    issued_at: int
    expires_at: int
    nonce: str
    kid: str


def sign_token(prefix: str, claims: TokenClaims, key: Ed25519PrivateKey) -> str:
    body = {
        "sub": claims.subject,
        "iat": claims.issued_at,
        "exp": claims.expires_at,
        "nonce": claims.nonce,
        "kid": claims.kid,
    }
    payload = b64url_encode(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{prefix}{payload}"
    return f"{signed}.{b64url_encode(key.sign(signed.encode('ascii')))}"


def verify_token(
    token: str,
    prefix: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    now: int,
    leeway: int = 0,
) -> TokenClaims:
    """Check a token's form, signature and lifetime; return its claims.

    Raises :class:`TokenMalformedError`, :class:`TokenForgedError` (bad signature or an
    unknown issuer key) or :class:`TokenExpiredError`.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenMalformedError("token is too long")
    if not token.startswith(prefix):
        raise TokenMalformedError(f"token does not start with {prefix}")
    parts = token[len(prefix) :].split(".")
    if len(parts) != 2 or not all(parts):
        raise TokenMalformedError("token must be PREFIX.payload.signature")
    payload_text, signature_text = parts
    try:
        body = read_json(b64url_decode(payload_text), "token payload", max_bytes=MAX_TOKEN_LENGTH)
    except UntrustedJsonError as err:
        raise TokenMalformedError(f"token payload is not JSON posgw reads: {err}") from err
    if not isinstance(body, dict):
        raise TokenMalformedError("token payload is not an object")
    claims = _claims(prefix, body)
    key = keys.get(claims.kid)
    if key is None:
        raise TokenForgedError("token signed by an unknown issuer key")
    try:
        key.verify(b64url_decode(signature_text), f"{prefix}{payload_text}".encode("ascii"))
    except InvalidSignature as err:
        raise TokenForgedError("token signature does not verify") from err
    if now > claims.expires_at + leeway:
        raise TokenExpiredError(f"token expired {now - claims.expires_at} s ago")
    if claims.issued_at > now + leeway:
        raise TokenExpiredError("token issued in the future (check the terminal clock)")
    return claims


def _claims(prefix: str, body: dict[str, object]) -> TokenClaims:
    sub, iat, exp, nonce, kid = (body.get(k) for k in ("sub", "iat", "exp", "nonce", "kid"))
    if not (isinstance(sub, str) and sub and isinstance(nonce, str) and isinstance(kid, str)):
        raise TokenMalformedError("token claims sub, nonce and kid must be strings")
    if not (isinstance(iat, int) and isinstance(exp, int)) or isinstance(iat, bool) or isinstance(exp, bool):
        raise TokenMalformedError("token claims iat and exp must be integers")
    return TokenClaims(prefix, sub, iat, exp, nonce, kid)
