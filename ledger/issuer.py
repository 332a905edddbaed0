"""The ledger's issuer key: it signs member QR tokens and coupons that terminals verify offline."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from protocols.rulebook import Rulebook
from protocols.tokens import TokenClaims, key_id, sign_token

COUPON_LIFETIME = 30 * 86_400  # seconds, unless the coupon's own validity ends sooner


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """Load the PEM key at ``path``, creating it (mode 0600) on first start."""
    if path.exists():
        key = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key


def issue_coupon(
    key: Ed25519PrivateKey, rulebook: Rulebook, coupon_id: str, member_id: str, now: int
) -> dict[str, Any]:
    """A ``CP1.`` coupon copy for a member: ``{"token", "instance", "expires_at"}``; KeyError if not in the rulebook."""
    definition = rulebook.coupons[coupon_id]
    expires = now + COUPON_LIFETIME
    if definition.valid_to:
        ends = datetime.fromisoformat(definition.valid_to).replace(tzinfo=UTC)
        expires = min(expires, int(ends.timestamp()) + 86_400)
    instance = secrets.token_hex(8)
    kid = key_id(key.public_key())
    claims = TokenClaims("CP1.", f"{coupon_id}:{instance}:{member_id}", now, expires, secrets.token_urlsafe(9), kid)
    return {"token": sign_token("CP1.", claims, key), "instance": instance, "expires_at": expires}
