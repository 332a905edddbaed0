"""Coupons issued by the ledger, signed with its issuer key (``ledger/secrets.py``), verified offline at tills."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.business_day import day_start
from protocols.rulebook import Rulebook
from protocols.tokens import TokenClaims, key_id, sign_token

COUPON_LIFETIME = 30 * 86_400  # seconds, unless the coupon's own validity ends sooner


def issue_coupon(
    key: Ed25519PrivateKey, rulebook: Rulebook, coupon_id: str, member_id: str, now: int
) -> dict[str, Any]:
    """A ``CP1.`` coupon copy for a member: ``{"token", "instance", "expires_at"}``; KeyError if not in the rulebook."""
    definition = rulebook.coupons[coupon_id]
    expires = now + COUPON_LIFETIME
    if definition.valid_to:  # good to the end of its last day, the mall's midnight
        ends = day_start(date.fromisoformat(definition.valid_to) + timedelta(days=1), rulebook.zone)
        expires = min(expires, int(ends.timestamp()))
    instance = secrets.token_hex(8)
    kid = key_id(key.public_key())
    claims = TokenClaims("CP1.", f"{coupon_id}:{instance}:{member_id}", now, expires, secrets.token_urlsafe(9), kid)
    return {"token": sign_token("CP1.", claims, key), "instance": instance, "expires_at": expires}
