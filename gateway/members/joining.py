"""Joining at the till (开卡): the cashier enrols a customer by phone number, online or offline alike.

The till makes the member itself, ``J-<terminal>-<n>`` in the rulebook's
joining tier, and journals a signed ``join`` record naming them and the salted
hash of the number (never the number): the member is known here at once, so
the sale in progress earns, and the ledger learns of them with the next sync
(at once, online). The ledger creates the member as named, or, when the
number turns out to be a member's already (another till enrolled them
offline), makes the till's member an alias of that one (``ledger/joins.py``).
Either way the till's cache hears of it with the next member delta, and the
provisional entry gives way to the ledger's signed one.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from gateway.clock import utc_now
from gateway.errors import AlreadyMemberError, LedgerError, RulesUnavailableError
from gateway.ledger_link.link import LedgerLink
from gateway.members.directory import IdentifierLookup, MemberDirectory
from gateway.members.match import MemberMatch
from offline_queue.ids import uuid7
from offline_queue.journal import TransactionJournal
from protocols.masking import mask_member_id
from protocols.phone import phone_identifier
from protocols.records import JOINED_PATTERN, RECORD_VERSION, TransactionRecord, joined_member_id, made_by
from protocols.rulebook import MemberEntry
from protocols.tokens import b64url_decode

log = structlog.get_logger("posgw.membership")


@dataclass
class Joining:
    terminal_id: str
    store_id: str
    merchant_id: str
    currency: str
    directory: MemberDirectory
    lookup: IdentifierLookup
    journal: TransactionJournal
    link: LedgerLink
    clock: Callable[[], float] = time.time
    _last: int = 0  # the last member number made here: numbers only go up, even within a millisecond
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def restore(self) -> None:
        """At start: the customers enrolled here are members here again (the journal keeps them).

        The file is not signed, so it is believed for no more than the API would do: a member of this
        till's own making, by a phone hash, in the joining tier of the signed rulebook, owning nothing."""
        tier = self.directory.rulebook.joining_tier
        for member_id, identifier in await self.journal.joined_members():
            if tier and made_by(member_id, self.terminal_id) and re.fullmatch(JOINED_PATTERN, identifier):
                self.directory.join(MemberEntry(member_id, tier, "active", (identifier,)))

    async def join(self, phone: str) -> MemberMatch:
        """Enrol the customer with this phone number; a number a member carries already is refused."""
        book = self.directory.rulebook
        if not book.phone_salt or not book.joining_tier:
            raise RulesUnavailableError("customers cannot join yet: no rulebook with tiers from the ledger")
        identifier = await asyncio.to_thread(phone_identifier, phone, b64url_decode(book.phone_salt))
        async with self._lock:  # one at a time: a number asked twice at once is enrolled once
            known = self.directory.by_identifier(identifier)
            if known is None:
                try:
                    known = await self.lookup.lookup_identifier(identifier)
                except LedgerError:  # offline: enrolled here; the ledger merges them if they were a member
                    known = None
            if known is not None:
                raise AlreadyMemberError(
                    f"this phone number is a member's already ({mask_member_id(known.member_id)}): "
                    "attach them by phone instead"
                )
            self._last = max(self._last + 1, int(self.clock() * 1000))
            draft = TransactionRecord(
                str(uuid7()), self.terminal_id, 0, "join", utc_now(), self.store_id, self.merchant_id,
                self.currency, (), 0, 0, 0, (), 0, joined_member_id(self.terminal_id, self._last), "phone", 0,
                book.version, not self.link.online, version=RECORD_VERSION, member_tier=book.joining_tier,
                joined=identifier,
            )  # fmt: skip
            record, _ = await self.journal.append(draft, idempotency_key=f"join:{identifier}")
        assert record.member_id is not None
        entry = MemberEntry(record.member_id, book.joining_tier, "active", (identifier,))
        self.directory.join(entry)
        self.link.records_waiting()  # online, the ledger hears of them now
        log.info("member_joined", member_id=entry.member_id, tier=entry.tier, offline=record.offline, seq=record.seq)
        return MemberMatch(entry, "phone")
