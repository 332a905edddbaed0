"""Coupons at the till: ``CP1.`` tokens checked offline, then held on the basket.

A coupon token's subject is ``<coupon id>:<instance>:<member id>``: which
kind of coupon (a definition in the rulebook), which single copy of it, and
whose it is. It is verified against the issuer keys like a member QR code,
refused when this terminal already redeemed that copy, and redeemed for good
in the same journal transaction as the sale. The ledger catches a copy
redeemed at two terminals that were both offline, as a visible conflict. A
copy the mall revoked (announced over MQTT) is refused; one used before the
news arrived comes back from the ledger as a conflict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.errors import ConflictError, CouponRevokedError, UnknownMemberError
from gateway.members.directory import MemberDirectory
from offline_queue.errors import CouponAlreadyRedeemedError
from protocols.benefits import CouponDefinition
from protocols.errors import TokenMalformedError
from protocols.tokens import verify_token


@dataclass(frozen=True, slots=True)
class HeldCoupon:
    definition: CouponDefinition
    instance: str
    member_id: str

    @property
    def key(self) -> str:
        """How records, the journal and the ledger name this copy: ``<coupon id>:<instance>``."""
        return f"{self.definition.coupon_id}:{self.instance}"


class RedeemedCoupons(Protocol):
    """Which copies this terminal already redeemed (the journal)."""

    async def coupon_redeemed(self, instance: str) -> str | None: ...


def parse_subject(subject: str) -> tuple[str, str, str]:
    parts = subject.split(":")
    if len(parts) != 3 or not all(parts):
        raise TokenMalformedError("coupon token subject must be <coupon id>:<instance>:<member id>")
    return parts[0], parts[1], parts[2]


async def check_coupon(
    token: str, directory: MemberDirectory, journal: RedeemedCoupons, *, now: int, leeway: int
) -> HeldCoupon:
    """Verify a coupon token and that this copy is still unused here."""
    claims = verify_token(token, "CP1.", directory.public_keys(), now=now, leeway=leeway)
    coupon_id, instance, member_id = parse_subject(claims.subject)
    definition = directory.rulebook.coupons.get(coupon_id)
    if definition is None:
        raise UnknownMemberError(
            f"coupon {coupon_id} is not in this terminal's rulebook (v{directory.rulebook.version})"
        )
    if f"{coupon_id}:{instance}" in directory.revoked_coupons:
        raise CouponRevokedError("this coupon was withdrawn by the mall; it cannot be used")
    if directory.revocations_version < directory.revocations_due:
        # Copies withdrawn since the list held may be any: none is taken until the list is current.
        raise CouponRevokedError(
            "this till's list of withdrawn coupons is behind the mall's; coupons can be taken once it is current"
        )
    used_by = await journal.coupon_redeemed(f"{coupon_id}:{instance}")
    if used_by is not None:
        raise CouponAlreadyRedeemedError(f"this coupon was already redeemed (sale {used_by})")
    return HeldCoupon(definition, instance, member_id)


def hold(coupons: list[HeldCoupon], coupon: HeldCoupon, member_id: str | None) -> None:
    """Put a checked coupon on a basket's list."""
    if any(c.instance == coupon.instance for c in coupons):
        raise ConflictError("this coupon is already on the basket")
    if member_id is not None and member_id != coupon.member_id:
        raise ConflictError("this coupon belongs to another member")
    coupons.append(coupon)
