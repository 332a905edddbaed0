"""A member identified at the till, and how."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocols.rulebook import MemberEntry


@dataclass(frozen=True, slots=True)
class MemberMatch:
    """A member attached to a basket, and how the customer was identified."""

    member: MemberEntry
    via: str  # "qr", "wallet", "card", "card-uid", "phone"
    # A UID-only card can be copied; later rules refuse offline points spending with it.
    weak: bool = False
    token_nonce: str | None = None  # a member QR code is good for one sale only
    # The code itself, kept with the basket (never on disk): the ledger's proof the member is here (card binding).
    code: str | None = field(default=None, repr=False)
