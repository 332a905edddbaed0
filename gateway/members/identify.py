"""Who is paying: a member identified by app code, wallet code, phone number, card, or the wallet that paid.

Each way ends in a :class:`MemberMatch` of an active member, or a typed
refusal the cashier can act on. The cache answers first; an identifier it
does not know is asked of the ledger (and remembered until the next snapshot).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from gateway.errors import RulesUnavailableError, UnknownMemberError
from gateway.members.directory import IdentifierLookup, MemberDirectory, check_active, resolve
from gateway.members.match import MemberMatch
from offline_queue.errors import MemberCodeUsedError
from protocols.errors import GatewayError
from protocols.member_card import CardReading
from protocols.payer import payer_identifier
from protocols.phone import phone_identifier
from protocols.rulebook import MemberEntry
from protocols.tokens import b64url_decode


class UsedMemberCodes(Protocol):
    """Member codes already used for a sale here (the journal)."""

    async def member_code_used(self, nonce: str) -> bool: ...


class Identification:
    def __init__(
        self,
        directory: MemberDirectory,
        lookup: IdentifierLookup,
        used: UsedMemberCodes,
        leeway: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.lookup = lookup
        self.used = used
        self.leeway = leeway
        self.clock = clock
        # The last card read here that no member carries: (identifier, when, weak), for binding it (``bind``).
        self.unbound: tuple[str, float, bool] | None = None

    async def by_token(self, token: str) -> MemberMatch:
        """A ``PM1.`` member code or a ``PW1.`` wallet code, good for one sale."""
        match = self.of_token(token)
        if match.token_nonce is not None and await self.used.member_code_used(match.token_nonce):
            raise MemberCodeUsedError("this code was already used (for a sale or a payment); ask for a fresh code")
        return match

    def of_token(self, token: str) -> MemberMatch:
        """Whose code this is (signed, fresh), used or not: to check it before the ledger does (binding)."""
        return self.directory.identify_token(token, now=int(self.clock()), leeway=self.leeway)

    async def by_phone(self, phone: str) -> MemberMatch:
        """A phone number typed by the cashier; only its salted hash is looked up, never stored."""
        salt = self.directory.rulebook.phone_salt
        if not salt:
            raise RulesUnavailableError("phone numbers cannot be looked up yet: no rulebook from the ledger")
        identifier = await asyncio.to_thread(phone_identifier, phone, b64url_decode(salt))
        member = await resolve(self.directory, self.lookup, identifier, "no member has this phone number")
        return MemberMatch(check_active(member), "phone")

    async def by_card(self, reading: CardReading, today: str) -> MemberMatch:
        """A card read on a reader, checked offline against the issuer keys (``today``: YYYYMMDD)."""
        identifier = self.directory.verify_card(reading, today=today)
        weak = reading.record is None  # a UID alone: a copied card would read the same
        try:
            member = await resolve(self.directory, self.lookup, identifier, "this card is not registered to any member")
        except UnknownMemberError:
            self.unbound = (identifier, self.clock(), weak)
            raise
        return MemberMatch(check_active(member), "card-uid" if weak else "card", weak)

    async def by_payer(self, payers: Iterable[tuple[str, str]]) -> MemberEntry | None:
        """The member behind a paying wallet account (``(wallet, payer id)``, salted, ``protocols/payer.py``)."""
        salt = self.directory.rulebook.phone_salt
        if not salt:
            return None
        for wallet, payer in payers:
            try:
                identifier = payer_identifier(wallet, payer, b64url_decode(salt))
                return check_active(await resolve(self.directory, self.lookup, identifier, ""))
            except GatewayError:  # not a member, or not reachable now: the sale goes on without
                continue
        return None
