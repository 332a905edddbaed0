"""What a group of batches knows while it is applied: read first, decided in memory, written at the end.

``ledger/plan_reads.py`` fills it from the database, ``ledger/ingest.py``
decides each record against it and writes what it decided. Whatever a
group's records change (balances, holds, grants, counters) changes here
first, so a later record of the same group sees it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger import controls, gift_cards, paid_tiers, postings, recheck, staff_check, wallet_grants
from ledger.chain_reads import Chain
from ledger.growth import GrowthBook
from ledger.holds import Hold
from ledger.rulebooks import Shelf
from ledger.tiers import Ladder
from protocols.business_day import parse_instant
from protocols.records import Tender, TransactionRecord


@dataclass
class Spend:
    """A spend without a hold, for the offline limits: when made (terminal's clock) and received."""

    terminal_id: str
    member_id: str
    unit: str
    amount: int
    made: float
    received: float


@dataclass
class PlanState:
    """What a group of batches reads first, decides in memory, and writes at the end."""

    shelf: Shelf
    now: datetime
    txn_ids: set[str]  # every txn_id held, of those the group carries
    links: dict[Chain, dict[int, tuple[str, str]]]  # chain -> seq -> (prev_hash, hash) held near its records
    balances: dict[tuple[str, str], int]  # (member, unit) -> balance, for the batch's known members
    members: dict[str, set[str]] = field(default_factory=dict)  # member -> tiers held now and before
    shops: dict[str, recheck.Shop] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)
    sales: dict[str, tuple[TransactionRecord, str]] = field(default_factory=dict)  # refunded sales, and state
    refunds: dict[str, list[TransactionRecord]] = field(default_factory=dict)  # sale -> its refunds applied
    unheld: list[Spend] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    postings: list[postings.PostingRow] = field(default_factory=list)
    conflicts: list[tuple[str, str, str]] = field(default_factory=list)
    quarantined: list[tuple[Any, ...]] = field(default_factory=list)
    posted: list[tuple[str, str]] = field(default_factory=list)  # holds their records consumed
    changed: set[str] = field(default_factory=set)
    growth: dict[str, int] = field(default_factory=dict)  # member -> lifetime growth value changed here
    book: GrowthBook = field(default_factory=lambda: GrowthBook(Ladder()))  # growth by year, and tiers
    aliases: dict[str, str] = field(default_factory=dict)  # a till's member for one already a member -> that one
    grants: wallet_grants.GrantBook = field(default_factory=wallet_grants.GrantBook)  # top-up bonuses
    topups: dict[tuple[str, str], int] = field(default_factory=dict)  # (terminal, business day) -> fen sold
    paid: paid_tiers.PaidTierBook = field(default_factory=paid_tiers.PaidTierBook)  # tiers bought and refunded
    controls: controls.ControlBook = field(default_factory=controls.ControlBook)  # caps, holds for review, surges
    statuses: dict[str, str] = field(default_factory=dict)  # member -> active | frozen | blacklisted
    cards: gift_cards.CardBook = field(default_factory=gift_cards.CardBook)  # gift cards loaded and spent
    notes: dict[str, list[str]] = field(default_factory=dict)  # txn -> what the answer says besides conflicts
    years: list[str] = field(default_factory=list)  # the years whose growth the group touches
    names_tiers: bool = False  # a record names the tier it was priced at: the members' past tiers are read
    staff: staff_check.StaffBook = field(default_factory=staff_check.StaffBook)  # who did it; shifts closed
    asked: set[tuple[str, str]] = field(default_factory=set)  # (sale, terminal): returns at another till asked
    bodies: dict[int, str] = field(default_factory=dict)  # id(record) -> the record as received, to keep

    def _of_topup(self, r: TransactionRecord) -> TransactionRecord | None:
        """The top-up ``r`` gives back, if it is a refund of one."""
        sale = self.sales.get(r.refund_of or "")
        return sale[0] if sale is not None and sale[0].kind == "topup" else None

    def resolved(self, r: TransactionRecord) -> TransactionRecord:
        """``r`` as it moves balances: a member a till enrolled who was a member already is that member
        (``ledger/joins.py``); the record as signed is kept unchanged."""
        if r.member_id is None or r.member_id not in self.aliases:
            return r
        return dataclasses.replace(r, member_id=self.aliases[r.member_id])


def pays_wallet(r: TransactionRecord) -> bool:
    return any(t.kind == "wallet" for t in r.tenders)


def spends(r: TransactionRecord) -> bool:
    """Whether a sale spends points or stored value (the offline limits look at what it spent before)."""
    return bool(r.points_redeemed) or any(t.kind == "wallet" for t in r.tenders)


def seconds(instant: str) -> float:
    return parse_instant(instant).timestamp()


def card_tenders(r: TransactionRecord) -> list[tuple[str, Tender]]:
    """The gift card tenders of a record, each with the card it names."""
    return [(t.card, t) for t in r.tenders if t.kind == "giftcard" and t.card]
