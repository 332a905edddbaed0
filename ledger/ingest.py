"""Applying terminals' batches of records: dedup, chain links, coupons, points, stored value.

A batch is applied whole in one database transaction, never in part;
batches that arrive while a transaction runs share the next one and its
commit (``ledger/group_writer.py``). Transactions are deduplicated permanently by
``txn_id`` and by ``(terminal_id, seq)``. A sale whose coupon or balance was
spent twice by two offline terminals is accepted (money changed hands) with
a compensating posting and a recorded conflict, never dropped.

Set-wise, so a group costs a handful of round trips to the database rather
than several per record or per batch (it matters on PostgreSQL over a
network): what the group needs to know is read first (held records near
each terminal's ``seq`` range, the members' balances), each record is
decided against that in memory, and the new rows are written together at
the end. Coupons, the rare case, are read and written as each record comes.

No lock is global (``docs/protocols/sync.md``, "Many nodes"): a group's
transaction names what it reads and changes (``group_writer.lock_keys``) and
the database locks those alone, in one order.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from ledger import (
    chain_check,
    chain_reads,
    controls,
    gift_cards,
    holds,
    joins,
    paid_tiers,
    postings,
    recheck,
    staff_check,
    terminals,
    wallet_grants,
)
from ledger.chain_reads import Chain
from ledger.database import Tx, marks
from ledger.growth import GrowthBook
from ledger.holds import Hold
from ledger.rulebooks import Shelf
from ledger.tiers import Ladder
from protocols.business_day import business_day, business_year, day_bounds, parse_instant
from protocols.gift_cards import loads
from protocols.money import format_cny
from protocols.paid_tiers import tier_sold
from protocols.records import Tender, TransactionRecord
from protocols.shifts import EVENT_KINDS
from protocols.sync import SyncReply, SyncResult

log = structlog.get_logger("posgw.ledger.ingest")

Seals = list[str | None]  # per record, why its own seal fails (None: it holds)


Batch = tuple[str, list[TransactionRecord], Seals]  # terminal, its records, their seals


async def batches(
    tx: Tx, group: list[Batch], now: datetime, shelf: Shelf, bodies: dict[int, str] | None = None
) -> list[SyncReply]:
    """Apply batches (each of one terminal and epoch) in the caller's transaction, in order; an answer for each.

    The whole group is read, decided and written at once: a few round trips however many batches.
    ``bodies``: records as received (by the record object's ``id``), kept as they are; the others are
    written from their fields.
    """
    plan = await Plan.load(tx, [r for _, records, _ in group for r in records], shelf, now)
    plan.bodies = bodies or {}
    results = [
        [await plan.apply(tx, r, seal) for r, seal in zip(records, seals, strict=True)] for _, records, seals in group
    ]
    await plan.write(tx)
    chains = sorted({(terminal_id, records[0].epoch if records else 1) for terminal_id, records, _ in group})
    progress = await chain_reads.advance(tx, chains)
    await plan.write_members(tx)  # last: on SQLite the member revision is one counter
    return [
        SyncReply(tuple(res), *progress[(t, records[0].epoch if records else 1)])
        for (t, records, _), res in zip(group, results, strict=True)
    ]


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
class Plan:
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

    @classmethod
    async def load(cls, tx: Tx, records: Sequence[TransactionRecord], shelf: Shelf, now: datetime) -> Plan:
        plan = cls(shelf, now, set(), {}, {}, book=GrowthBook(shelf.ladder, shelf.zone))
        if not records:
            return plan
        plan.txn_ids, plan.links = await chain_reads.near(tx, records)
        await shelf.load(tx, {r.rulebook_version for r in records})
        await plan.book.load_refunded(tx, records)
        await plan._load_members(tx, records)
        await plan._load_context(tx, records)
        await plan.staff.load(tx, records)
        return plan

    async def _load_members(self, tx: Tx, records: Sequence[TransactionRecord]) -> None:
        named = {r.member_id for r in records if r.member_id}
        self.aliases = await joins.aliases(tx, named)
        await tx.lock([f"member:{m}" for m in self.aliases.values()])
        self.years = self.book.years(records)
        self.names_tiers = any(r.member_tier for r in records)  # only version 2 records name their tier
        await self._read_members(tx, sorted({self.aliases.get(m, m) for m in named}))

    async def _read_members(self, tx: Tx, members: list[str]) -> None:
        """Balances, tiers and growth (one row per member and year the group's growth touches)."""
        if not members:
            return
        years = self.years
        n = len(members)
        for member_id, points, wallet, tier, status, year, growth in await tx.all(
            "SELECT m.member_id, m.points, m.wallet, m.tier, m.status, g.year, g.growth FROM members m "  # noqa: S608
            f"LEFT JOIN member_growth g ON g.member_id = m.member_id AND g.year IN ({marks(len(years), n)}) "
            f"WHERE m.member_id IN ({marks(n)})",
            *members,
            *years,
        ):
            self.balances[(member_id, "points")] = int(points)
            self.balances[(member_id, "fen")] = int(wallet)
            self.statuses[member_id] = str(status)
            self.members.setdefault(member_id, {tier})
            self.book.hold(member_id, tier, year, int(growth or 0))
        if self.names_tiers:
            for member_id, from_tier, to_tier in await tx.all(
                f"SELECT member_id, from_tier, to_tier FROM tier_changes WHERE member_id IN ({marks(n)})",  # noqa: S608
                *members,
            ):
                self.members.get(member_id, set()).update((from_tier, to_tier))

    async def _load_context(self, tx: Tx, records: Sequence[TransactionRecord]) -> None:
        """What the re-checks need: the terminals' shops, holds, refunded sales, spends without a hold."""
        named = sorted({r.terminal_id for r in records})
        for t, store, merchant in await tx.all(
            f"SELECT terminal_id, store_id, merchant_id FROM terminals WHERE terminal_id IN ({marks(len(named))})",  # noqa: S608
            *named,
        ):
            self.shops[str(t)] = recheck.Shop(store, merchant)
        if any(x.merchant for r in records for x in r.lines):  # a central checkout's lines: its counters
            for t, counters in (await terminals.counters_of(tx, named)).items():
                self.shops[t] = dataclasses.replace(self.shops.get(t, recheck.Shop(None, None)), counters=counters)
        refs = sorted(
            {r.reservation for r in records if r.reservation}
            | {t.ref for r in records for t in r.tenders if t.kind in ("wallet", "giftcard") and t.ref}
        )
        self.holds = await holds.of_refs(tx, refs)
        sales = sorted({r.refund_of for r in records if r.refund_of})
        if sales:
            ids = marks(len(sales))
            for txn_id, body, state in await tx.all(
                f"SELECT txn_id, body, state FROM transactions WHERE txn_id IN ({ids})",  # noqa: S608
                *sales,
            ):
                self.sales[str(txn_id)] = (TransactionRecord.from_wire(json.loads(body)), str(state))
            for refund_of, body in await tx.all(
                f"SELECT refund_of, body FROM transactions WHERE refund_of IN ({ids}) AND state = 'applied' "  # noqa: S608
                "ORDER BY epoch, seq",
                *sales,
            ):
                self.refunds.setdefault(str(refund_of), []).append(TransactionRecord.from_wire(json.loads(body)))
        returns = sorted({(str(r.refund_of), r.terminal_id) for r in records if r.sale_terminal and r.refund_of})
        for txn_id, terminal_id in returns:
            if await tx.one("SELECT 1 FROM sale_lookups WHERE txn_id = $1 AND terminal_id = $2", txn_id, terminal_id):
                self.asked.add((txn_id, terminal_id))
        await self._load_stored_value(tx, records)
        await self._load_paid_tiers(tx, records)
        await self._load_controls(tx, records)
        await self._load_cards(tx, records)
        spending = [self.resolved(r) for r in records if r.member_id and r.kind == "sale" and _spends(r)]
        paying_cards = [r for r in records if r.kind == "sale" and _card_tenders(r)]
        pairs = sorted(
            {(r.terminal_id, str(r.member_id)) for r in spending}
            | {(r.terminal_id, gift_cards.holder(card)) for r in paying_cards for card, _ in _card_tenders(r)}
        )
        if pairs:
            since = min(_seconds(r.created_at) for r in [*spending, *paying_cards]) - 7 * 86_400
            where = " OR ".join(f"(terminal_id = ${2 * i + 2} AND member_id = ${2 * i + 3})" for i in range(len(pairs)))
            for t, m, unit, amount, made, received in await tx.all(
                "SELECT terminal_id, member_id, unit, amount, made_at, received_at FROM unheld_spends "  # noqa: S608
                f"WHERE received_at > $1 AND ({where})",
                since,
                *(v for pair in pairs for v in pair),
            ):
                self.unheld.append(Spend(str(t), str(m), str(unit), int(amount), float(made), float(received)))

    async def _load_cards(self, tx: Tx, records: Sequence[TransactionRecord]) -> None:
        """The gift cards the group loads or spends, and what its tills loaded on its days."""
        numbers = {n for r in records for n, _ in loads(r.lines)} | {
            str(t.card) for r in records for t in r.tenders if t.kind == "giftcard" and t.card
        }
        days = {
            (r.terminal_id, business_day(r.created_at, book.zone).isoformat())
            for r in records
            if r.kind == "sale" and loads(r.lines) and (book := self.shelf.get(r.rulebook_version)) is not None
        }
        await self.cards.load(tx, sorted(numbers), days)

    async def _load_controls(self, tx: Tx, records: Sequence[TransactionRecord]) -> None:
        """The day's counters of the members and tills whose sales earn under a rulebook with controls, and what
        the sales refunded here still hold for review (``ledger/controls.py``)."""
        keys: set[controls.Key] = set()
        for r in records:
            book = self.shelf.get(r.rulebook_version)
            if r.kind == "sale" and r.member_id and book is not None and book.controls is not None:
                day = business_day(r.created_at, book.zone).isoformat()
                keys |= {(f"member:{self.resolved(r).member_id}", day), (f"terminal:{r.terminal_id}", day)}
        refunded = sorted(
            {str(r.refund_of) for r in records if r.refund_of and (r.points_clawback or r.growth_clawback)}
        )
        await self.controls.load(tx, keys, refunded)

    async def _load_paid_tiers(self, tx: Tx, records: Sequence[TransactionRecord]) -> None:
        """The running paid tiers of the members who buy one here, and the rows of tier sales refunded here."""
        buying = sorted({str(self.resolved(r).member_id) for r in records if tier_sold(r) and r.member_id})
        days = {
            (r.terminal_id, business_day(r.created_at, book.zone).isoformat())
            for r in records
            if tier_sold(r) and (book := self.shelf.get(r.rulebook_version)) is not None
        }
        refunded = sorted(
            {s for r in records if (s := r.refund_of) and s in self.sales and tier_sold(self.sales[s][0])}
        )
        await self.paid.load(tx, buying, refunded, days)

    async def _load_stored_value(self, tx: Tx, records: Sequence[TransactionRecord]) -> None:
        """The grants the group's stored-value records may spend or give back, and what each terminal sold in
        top-ups on the business days of the group's top-ups (their daily cap)."""
        moving = [self.resolved(r) for r in records if r.member_id]
        members = sorted(
            {str(r.member_id) for r in moving if r.kind == "topup" or _pays_wallet(r) or self._of_topup(r)}
        )
        refunded = sorted({str(r.refund_of) for r in moving if r.refund_of and _pays_wallet(r)})
        await self.grants.load(tx, members, refunded)
        for r in records:
            if r.kind != "topup" or (book := self.shelf.get(r.rulebook_version)) is None:
                continue
            day = business_day(r.created_at, book.zone)
            if (r.terminal_id, day.isoformat()) in self.topups:
                continue
            start, end = day_bounds(day, book.zone)
            row = await tx.one(
                "SELECT CAST(COALESCE(-SUM(p.amount), 0) AS BIGINT) FROM postings p JOIN transactions t USING (txn_id) "
                "WHERE t.terminal_id = $1 AND t.kind = 'topup' AND t.created_at >= $2 AND t.created_at < $3 "
                "AND p.kind = 'topup' AND p.account = 'mall:wallet'",
                r.terminal_id,
                start,
                end,
            )
            self.topups[(r.terminal_id, day.isoformat())] = int(row[0]) if row else 0

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

    def _context(self, r: TransactionRecord, *, aliased: bool = False) -> recheck.Context:
        member = None
        if r.member_id and (r.member_id, "points") in self.balances:
            current = self.book.tiers.get(r.member_id, "")
            held = self.members.get(r.member_id, set()) | {current}
            if aliased and (book := self.shelf.get(r.rulebook_version)) is not None:
                held.add(book.joining_tier)  # the till priced its new member at the joining tier: believable
            member = recheck.MemberView(current, frozenset(held))
        sale, state = self.sales.get(r.refund_of or "", (None, None))
        made = _seconds(r.created_at)
        mine = [
            s
            for s in self.unheld
            if s.terminal_id == r.terminal_id and s.member_id == r.member_id and s.made <= made < s.received
        ]
        unheld = recheck.Unheld(
            points=sum(s.amount for s in mine if s.unit == "points"),
            point_sales=sum(1 for s in mine if s.unit == "points"),
            fen=sum(s.amount for s in mine if s.unit == "fen"),
        )
        cards_unheld = {
            card: sum(
                s.amount
                for s in self.unheld
                if s.terminal_id == r.terminal_id
                and s.member_id == gift_cards.holder(card)
                and s.made <= made < s.received
            )
            for card, _ in _card_tenders(r)
        }
        topped_up = 0
        if r.kind == "topup" and (book := self.shelf.get(r.rulebook_version)) is not None:
            topped_up = self.topups.get((r.terminal_id, business_day(r.created_at, book.zone).isoformat()), 0)
        wallet_own = 0
        if r.member_id and self._of_topup(r) is not None:
            bonus_left = sum(g.remaining for g in self.grants.live.get(r.member_id, []))
            wallet_own = self.balances.get((r.member_id, "fen"), 0) - bonus_left
        numbers = {n for n, _ in loads(r.lines)} | {str(t.card) for t in r.tenders if t.card}
        cards = {n: c for n in numbers if (c := self.cards.cards.get(n)) is not None}
        cards_loaded = 0
        if loads(r.lines) and (book := self.shelf.get(r.rulebook_version)) is not None:
            cards_loaded = self.cards.loaded.get((r.terminal_id, business_day(r.created_at, book.zone).isoformat()), 0)
        tiers_sold = 0
        if (tier := tier_sold(r)) is not None and (book := self.shelf.get(r.rulebook_version)) is not None:
            tiers_sold = self.paid.sold_before(r.terminal_id, business_day(r.created_at, book.zone), tier)
        return recheck.Context(
            cards=cards,
            cards_unheld=cards_unheld,
            cards_loaded=cards_loaded,
            tiers_sold=tiers_sold,
            topped_up=topped_up,
            wallet_own=wallet_own,
            received=self.now.timestamp(),
            shop=self.shops.get(r.terminal_id, recheck.Shop(None, None)),
            rules=self.shelf.get,
            member=member,
            holds=self.holds,
            unheld=unheld,
            sale=sale,
            sale_state=state,
            asked_for_sale=(r.refund_of or "", r.terminal_id) in self.asked,
            earlier=list(self.refunds.get(r.refund_of or "", [])),
        )

    async def apply(self, tx: Tx, r: TransactionRecord, seal: str | None) -> SyncResult:
        if r.txn_id in self.txn_ids:
            return SyncResult(r.txn_id, r.seq, "duplicate")
        links = self.links.setdefault((r.terminal_id, r.epoch), {})
        if r.seq in links:
            return SyncResult(r.txn_id, r.seq, "rejected", f"seq {r.seq} already holds another transaction")
        if reason := seal or chain_check.link_refusal(r, links):
            return SyncResult(r.txn_id, r.seq, "rejected", reason)
        self.txn_ids.add(r.txn_id)
        links[r.seq] = (r.prev_hash, r.hash)
        moving = self.resolved(r)
        self.staff.saw(r)
        refusal = self.staff.refusal(r)
        verdict = (
            recheck.check(moving, self._context(moving, aliased=moving is not r))
            if refusal is None
            else recheck.Verdict(refusal)
        )
        state = "applied" if verdict.refusal is None else "quarantined"
        self.rows.append(
            (r.txn_id, r.terminal_id, r.epoch, r.seq, self._body(r), self.now.isoformat(), r.prev_hash,
             r.hash, r.created_at, r.kind, state, r.refund_of, r.member_id, int(r.offline), r.cashier, r.shift)
        )  # fmt: skip
        if r.kind in ("sale", "topup"):  # a refund later in the group finds it
            self.sales[r.txn_id] = (r, state)
        elif r.refund_of and state == "applied":  # what a refund in quarantine gives back is not given yet
            self.refunds.setdefault(r.refund_of, []).append(r)
        if verdict.refusal is not None:  # kept with its chain, never applied, until an operator decides
            self.quarantined.append((r.txn_id, r.terminal_id, r.epoch, r.seq, verdict.refusal, self.now.isoformat()))
            return SyncResult(r.txn_id, r.seq, "quarantined", verdict.refusal)
        conflicts = await self.effects(tx, r, verdict.offset_points)
        # The sale stands (money changed hands); a conflict is for the mall to settle, never dropped; what is held
        # for review and a surge are said too.
        said = [f"conflict: {c}" for c in conflicts] + self.notes.get(r.txn_id, [])
        return SyncResult(r.txn_id, r.seq, "accepted", "; ".join(said) or None)

    def _body(self, r: TransactionRecord) -> str:
        """The record to keep: as the till sent and signed it (its canonical bytes, the chain fields put back),
        else written from its fields."""
        kept = self.bodies.get(id(r))
        return kept if kept is not None else json.dumps(r.to_wire())

    async def effects(self, tx: Tx, r: TransactionRecord, offset_points: int) -> list[str]:
        """What a believed record moves: coupons, holds, points and stored value, growth; its conflicts."""
        r = self.resolved(r)
        if r.kind in EVENT_KINDS:  # a shift's ends, a drawer opened: nothing moves
            return []
        if r.kind == "join":
            await self._join(tx, r)
            return []
        if r.kind == "topup":
            self._topup(r)
            return []
        if (topup := self._of_topup(r)) is not None:
            self._topup_refund(r, topup)
            return []
        if r.reservation:  # the hold becomes the spend itself (second half of the two phases)
            self._post(r.reservation, r.txn_id)
        conflicts = [c for c in [await redeem(tx, r, instance) for instance in r.coupons] if c]
        for instance in r.coupons_restored:  # a full refund gives the coupon back
            await tx.run("DELETE FROM coupon_redemptions WHERE instance = $1 AND txn_id = $2", instance, r.refund_of)
        conflicts += self._wallet(r)
        conflicts += self._gift_cards(r)
        conflicts += await self._codes(tx, r)
        counted = self._controlled(r)
        if r.member_id:
            conflicts += self._points(counted, offset_points)
        # Growth: tier progress, not money (ledger/growth.py); for known members only, as points.
        if (
            r.member_id
            and (r.member_id, "points") in self.balances
            and (change := self.book.apply(counted, self.now.isoformat()))
        ):
            self.growth[r.member_id] = self.growth.get(r.member_id, 0) + change
            self.changed.add(r.member_id)
        if (tier := tier_sold(r)) is not None:
            self._buy_tier(r, tier)
        elif r.refund_of in self.sales and tier_sold(self.sales[r.refund_of][0]) is not None:
            self._revoke_tier(r)
        self.conflicts += [(r.txn_id, r.terminal_id, text) for text in conflicts]
        return conflicts

    def _gift_cards(self, r: TransactionRecord) -> list[str]:
        """The record's gift card loads and tenders (``ledger/gift_cards.py``); the conflicts to record."""
        sign = 1 if r.kind == "sale" else -1
        book = self.shelf.get(r.rulebook_version)
        day = business_day(r.created_at, book.zone if book else self.shelf.zone)
        days = book.gift_cards.validity_days if book and book.gift_cards else 0
        for number, amount in loads(r.lines):
            self.cards.load_onto(r.txn_id, number, sign * amount, r.terminal_id, day, days)
        conflicts = []
        for t in r.tenders:
            if t.kind != "giftcard" or t.card is None or t.card not in self.cards.cards:
                continue
            if shortfall := self.cards.pay(r.txn_id, t.ref, t.card, sign * t.amount):
                conflicts.append(f"gift card {t.card} overdrawn by {format_cny(shortfall)} (spent twice offline?)")
            if sign > 0 and t.ref in self.holds:
                self._post(t.ref, r.txn_id)
            elif sign > 0:  # spent with no hold: the offline limits count it, per card and till
                spend = Spend(
                    r.terminal_id,
                    gift_cards.holder(t.card),
                    "fen",
                    t.amount,
                    _seconds(r.created_at),
                    self.now.timestamp(),
                )
                self.unheld.append(spend)
        return conflicts

    def _controlled(self, r: TransactionRecord) -> TransactionRecord:
        """``r`` with the points and growth it earns as the mall's controls credit them (``ledger/controls.py``):
        what is past a daily cap, or earned by a member who is not active, is held for review; a refund takes
        back from what its sale still holds first."""
        if not r.member_id or (r.member_id, "points") not in self.balances:
            return r
        book = self.shelf.get(r.rulebook_version)
        points, growth = r.points_earned, r.growth_earned
        clawback, growth_back = r.points_clawback, r.growth_clawback
        if r.kind == "sale" and (points or growth) and book is not None:
            day = business_day(r.created_at, book.zone).isoformat()
            status = self.statuses.get(r.member_id, "active")
            points, growth, notes = self.controls.credit(r, day, book.controls, status)
            if notes:
                self.notes[r.txn_id] = notes
                for note in notes:
                    log.warning("earning_controlled", txn_id=r.txn_id, member=r.member_id, detail=note)
        if r.refund_of and (clawback or growth_back):
            held_points, held_growth = self.controls.take_back(r.refund_of, clawback, growth_back)
            clawback, growth_back = clawback - held_points, growth_back - held_growth
        if (points, growth, clawback, growth_back) == (
            r.points_earned, r.growth_earned, r.points_clawback, r.growth_clawback
        ):  # fmt: skip
            return r  # as earned: nothing held back (the common case; a copy costs more than the check)
        return dataclasses.replace(
            r, points_earned=points, growth_earned=growth, points_clawback=clawback, growth_clawback=growth_back
        )

    def _buy_tier(self, r: TransactionRecord, tier: str) -> None:
        """A paid tier sold (``ledger/paid_tiers.py``): the member holds it at once, until its last day."""
        assert r.member_id is not None
        book = self.shelf.get(r.rulebook_version)
        assert book is not None  # re-checked against it
        current, now = self.book.tiers[r.member_id], self.now.isoformat()
        day = business_day(r.created_at, book.zone)
        row = self.paid.buy(r.txn_id, r.member_id, tier, current, day, book.tiers[tier].validity_days, r.terminal_id)
        self.book.moves.append((r.member_id, current, tier, 0, f"bought {tier} until {row.until}", now))
        self.book.tiers[r.member_id] = tier
        self.changed.add(r.member_id)

    def _revoke_tier(self, r: TransactionRecord) -> None:
        """A paid tier refunded within its window: revoked now; the member goes back to what their growth
        reached this year, never below the tier they held before buying."""
        assert r.member_id is not None
        row = self.paid.revoke(str(r.refund_of))
        if row is None or self.book.tiers.get(r.member_id) != row.tier:
            return
        year = business_year(r.created_at, self.shelf.zone)
        to = paid_tiers.back_to(self.shelf.ladder, row.previous, self.book.held.get((r.member_id, year), 0))
        self.book.moves.append((r.member_id, row.tier, to, 0, f"refunded {row.tier}", self.now.isoformat()))
        self.book.tiers[r.member_id] = to
        self.changed.add(r.member_id)

    async def _join(self, tx: Tx, r: TransactionRecord) -> None:
        """A member enrolled at a till: created (known to the rest of the group at once), or an alias of the
        member who carries the phone number already, whose balances the group then reads."""
        assert r.member_id is not None
        assert r.member_tier is not None
        owner = await joins.enrol(tx, r, self.now)
        if owner is None:
            self.balances[(r.member_id, "points")] = self.balances[(r.member_id, "fen")] = 0
            self.members[r.member_id] = {r.member_tier}
            self.book.hold(r.member_id, r.member_tier, None, 0)
            return
        self.aliases[r.member_id] = owner
        await tx.lock([f"member:{owner}"])
        if (owner, "points") not in self.balances:
            await self._read_members(tx, [owner])

    def _points(self, r: TransactionRecord, offset_points: int) -> list[str]:
        """Double entry by kind: credits first, so splitting them out never changes what a balance can give."""
        assert r.member_id is not None
        spent = r.points_redeemed
        moves = (
            ("earn", r.points_earned),
            ("return", r.points_returned),
            ("offset", min(offset_points, spent) if r.version >= 2 else 0),
            ("exchange", spent - min(offset_points, spent) if r.version >= 2 else 0),
            ("spend", spent if r.version < 2 else 0),
            ("clawback", r.points_clawback),
        )
        shortfall = 0
        for kind, amount in moves:
            if amount:
                sign = 1 if kind in postings.POINTS_CREDITS else -1
                shortfall += self._move(r.txn_id, r.member_id, "points", sign * amount, kind)
        if not r.reservation and spent and r.kind == "sale":
            self._spend_unheld(r, "points", spent)
        # Spending beyond the balance posted the shortfall to the mall's overdraft.
        return [f"points overdrawn by {shortfall} (spent offline twice?)"] if shortfall else []

    async def _codes(self, tx: Tx, r: TransactionRecord) -> list[str]:
        """Each wallet code pays one payment, each member code names the member of one sale: a second use
        (two offline tills shown one code) is a conflict, noted for the mall."""
        if r.kind != "sale" or not r.member_id:
            return []
        conflicts: list[str] = []
        now = self.now.timestamp()
        paid = {t.code: t.ref or r.txn_id for t in r.tenders if t.kind == "wallet" and t.code}
        for code, ref in paid.items():
            if earlier := await holds.use_code(tx, code, r.member_id, r.terminal_id, ref, r.txn_id, now):
                conflicts.append(f"wallet code {code} paid twice: here and payment {earlier}")
        named = r.member_code if r.member_code not in paid else None  # a wallet code that named the member: one use
        if named and (earlier := await holds.use_code(tx, named, r.member_id, r.terminal_id, r.txn_id, r.txn_id, now)):
            conflicts.append(f"member code {named} used for two sales: here and sale {earlier}")
        return conflicts

    def _topup(self, r: TransactionRecord) -> None:
        """Stored value sold: the member's wallet credited with what was paid, and the bonus as a grant that
        lapses (``ledger/wallet_grants.py``); the day's top-ups of the till counted for its cap."""
        assert r.member_id is not None
        book = self.shelf.get(r.rulebook_version)
        assert book is not None  # re-checked against it
        self._move(r.txn_id, r.member_id, "fen", r.total_due, "topup")
        day = business_day(r.created_at, book.zone)
        key = (r.terminal_id, day.isoformat())
        self.topups[key] = self.topups.get(key, 0) + r.total_due
        if r.bonus and book.stored_value is not None:
            self._move(r.txn_id, r.member_id, "fen", r.bonus, "bonus")
            self.grants.grant(r.txn_id, r.member_id, r.bonus, day + timedelta(days=book.stored_value.bonus_days))

    def _topup_refund(self, r: TransactionRecord, topup: TransactionRecord) -> None:
        """Stored value given back: the member's wallet debited what was paid back on the hold made for it
        (posted: the hold becomes the debit), and what is left of the top-up's bonus taken back with it."""
        assert r.member_id is not None
        if r.reservation:
            self._post(r.reservation, r.txn_id)
        self._move(r.txn_id, r.member_id, "fen", -r.total_due, "topup-refund")
        if taken := self.grants.take_back(topup.txn_id):
            self._move(r.txn_id, r.member_id, "fen", -taken, "bonus-back")

    def _wallet(self, r: TransactionRecord) -> list[str]:
        """The record's stored-value tenders (``holds.py``); the conflicts to record."""
        conflicts: list[str] = []
        sale = r.kind == "sale"
        for tender in (t for t in r.tenders if t.kind == "wallet"):
            if r.member_id is None:
                conflicts.append(f"wallet tender {tender.ref} without a member")
            elif (r.member_id, "fen") not in self.balances:
                conflicts.append(f"wallet tender {tender.ref} for unknown member {r.member_id}")
            else:
                delta, kind = (-tender.amount, "pay") if sale else (tender.amount, "refund")
                if shortfall := self._move(r.txn_id, r.member_id, "fen", delta, kind, tender.ref):
                    conflicts.append(f"wallet overdrawn by {format_cny(shortfall)} (spent twice offline?)")
                if sale:  # top-up bonuses are spent first; a refund gives back to them first
                    self.grants.spend(r.txn_id, r.member_id, tender.amount - shortfall)
                elif r.refund_of:
                    self.grants.give_back(r.txn_id, r.refund_of, tender.amount)
                if sale and tender.ref in self.holds:
                    self._post(tender.ref, r.txn_id)
                elif sale:
                    self._spend_unheld(r, "fen", tender.amount)
        return conflicts

    def _post(self, ref: str, txn_id: str) -> None:
        held = self.holds.get(ref)
        if held is not None and held.state == "pending":
            self.holds[ref] = dataclasses.replace(held, state="posted", posted_by=txn_id)
            self.posted.append((txn_id, ref))

    def _spend_unheld(self, r: TransactionRecord, unit: str, amount: int) -> None:
        assert r.member_id is not None
        self.unheld.append(
            Spend(r.terminal_id, r.member_id, unit, amount, _seconds(r.created_at), self.now.timestamp())
        )

    def _move(self, txn_id: str, member_id: str, unit: str, delta: int, kind: str, ref: str | None = None) -> int:
        """Post a change to a known member's balance; the shortfall sent to overdraft (0 for unknown members)."""
        balance = self.balances.get((member_id, unit))
        if balance is None:
            return 0
        applied, shortfall, rows = postings.plan(txn_id, member_id, unit, balance, delta, kind, ref)
        self.balances[(member_id, unit)] = balance + applied
        self.postings += rows
        self.changed.add(member_id)
        return shortfall

    async def write(self, tx: Tx) -> None:
        """Everything decided but the members' rows (:meth:`write_members`, the last write of a transaction)."""
        await tx.insert("transactions", RECORD_COLUMNS, self.rows)
        await tx.insert("postings", postings.COLUMNS, self.postings)
        await self.book.write(tx)
        await self.grants.write(tx)
        await self.paid.write(tx, self.now.isoformat())
        await self.controls.write(tx, self.now.isoformat())
        await self.cards.write(tx, self.now.isoformat())
        await tx.many(holds.POST, self.posted)
        await tx.many("INSERT INTO conflicts (txn_id, terminal_id, detail) VALUES ($1, $2, $3)", self.conflicts)
        await tx.many(
            "INSERT INTO quarantine (txn_id, terminal_id, epoch, seq, reason, held_at) VALUES ($1, $2, $3, $4, $5, $6)",
            self.quarantined,
        )
        now = self.now.timestamp()
        await tx.many(
            "INSERT INTO unheld_spends (terminal_id, member_id, unit, amount, made_at, received_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (s.terminal_id, s.member_id, s.unit, s.amount, s.made, s.received)
                for s in self.unheld
                if s.received == now
            ],
        )

    async def write_members(self, tx: Tx) -> None:
        """The members' balances, growth and tiers; each row changed takes a new member revision (the deltas
        terminals fetch: ``ledger/member_books.py``). Written last: on SQLite the revision is one counter."""
        await tx.many(
            "UPDATE members SET points = $1, wallet = $2, growth = growth + $3, tier = $4 WHERE member_id = $5",
            [
                (self.balances[(m, "points")], self.balances[(m, "fen")], self.growth.get(m, 0), self.book.tiers[m], m)
                for m in sorted(self.changed)
            ],
        )


RECORD_COLUMNS = (
    "txn_id", "terminal_id", "epoch", "seq", "body", "received_at", "prev_hash", "hash", "created_at", "kind",
    "state", "refund_of", "member_id", "offline", "cashier", "shift",
)  # fmt: skip


def _pays_wallet(r: TransactionRecord) -> bool:
    return any(t.kind == "wallet" for t in r.tenders)


def _spends(r: TransactionRecord) -> bool:
    """Whether a sale spends points or stored value (the offline limits look at what it spent before)."""
    return bool(r.points_redeemed) or any(t.kind == "wallet" for t in r.tenders)


def _seconds(instant: str) -> float:
    return parse_instant(instant).timestamp()


async def redeem(tx: Tx, r: TransactionRecord, instance: str) -> str | None:
    """Mark a coupon copy used by this record; the conflict text when it was used before or revoked."""
    row = await tx.one("SELECT txn_id, terminal_id FROM coupon_redemptions WHERE instance = $1", instance)
    if row is not None:
        return f"coupon {instance} was already redeemed by {row[0]} at {row[1]}"
    await tx.run(
        "INSERT INTO coupon_redemptions (instance, txn_id, terminal_id) VALUES ($1, $2, $3)",
        instance,
        r.txn_id,
        r.terminal_id,
    )
    revoked = await tx.one("SELECT 1 FROM revoked_coupons WHERE instance = $1", instance)
    return f"coupon {instance} was redeemed after the mall revoked it" if revoked else None


def _card_tenders(r: TransactionRecord) -> list[tuple[str, Tender]]:
    """The gift card tenders of a record, each with the card it names."""
    return [(t.card, t) for t in r.tenders if t.kind == "giftcard" and t.card]
