"""What a group of batches reads before it decides, and what each record's re-check sees of it.

Set-wise, so a group costs a handful of round trips however many records it
holds: the records already held near each terminal's ``seq`` range, the
members' balances, tiers and growth, the terminals' shops, the holds, sales
being refunded, grants, counters and gift cards the group's records name.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Self

from ledger import chain_reads, controls, gift_cards, holds, joins, recheck, terminals
from ledger.database import Tx, marks
from ledger.growth import GrowthBook
from ledger.plan_state import PlanState, Spend, card_tenders, pays_wallet, seconds, spends
from ledger.rulebooks import Shelf
from protocols.business_day import business_day, day_bounds
from protocols.gift_cards import loads
from protocols.paid_tiers import tier_sold
from protocols.records import TransactionRecord


class PlanReads(PlanState):
    """A plan that can read what its group needs (:meth:`load`) and show a record's re-check its view."""

    @classmethod
    async def load(cls, tx: Tx, records: Sequence[TransactionRecord], shelf: Shelf, now: datetime) -> Self:
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
        spending = [self.resolved(r) for r in records if r.member_id and r.kind == "sale" and spends(r)]
        paying_cards = [r for r in records if r.kind == "sale" and card_tenders(r)]
        pairs = sorted(
            {(r.terminal_id, str(r.member_id)) for r in spending}
            | {(r.terminal_id, gift_cards.holder(card)) for r in paying_cards for card, _ in card_tenders(r)}
        )
        if pairs:
            since = min(seconds(r.created_at) for r in [*spending, *paying_cards]) - 7 * 86_400
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
        members = sorted({str(r.member_id) for r in moving if r.kind == "topup" or pays_wallet(r) or self._of_topup(r)})
        refunded = sorted({str(r.refund_of) for r in moving if r.refund_of and pays_wallet(r)})
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

    def _context(self, r: TransactionRecord, *, aliased: bool = False) -> recheck.Context:
        member = None
        if r.member_id and (r.member_id, "points") in self.balances:
            current = self.book.tiers.get(r.member_id, "")
            held = self.members.get(r.member_id, set()) | {current}
            if aliased and (book := self.shelf.get(r.rulebook_version)) is not None:
                held.add(book.joining_tier)  # the till priced its new member at the joining tier: believable
            member = recheck.MemberView(current, frozenset(held))
        sale, state = self.sales.get(r.refund_of or "", (None, None))
        made = seconds(r.created_at)
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
            for card, _ in card_tenders(r)
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
