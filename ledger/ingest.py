"""Applying terminals' batches of records: dedup, chain links, coupons, points, stored value.

A batch is applied whole in one database transaction, never in part;
batches that arrive while a transaction runs share the next one and its
commit (``ledger/group_writer.py``). Transactions are deduplicated permanently by
``txn_id`` and by ``(terminal_id, seq)``. A sale whose coupon or balance was
spent twice by two offline terminals is accepted (money changed hands) with
a compensating posting and a recorded conflict, never dropped.

Set-wise, so a group costs a handful of round trips to the database rather
than several per record or per batch (it matters on PostgreSQL over a
network): what the group needs to know is read first (``ledger/plan_reads.py``,
into a ``ledger/plan_state.py``), each record is decided against that in
memory (here), and the new rows are written together at the end. Coupons,
the rare case, are read and written as each record comes.

No lock is global (``docs/protocols/sync.md``, "Many nodes"): a group's
transaction names what it reads and changes (``group_writer.lock_keys``) and
the database locks those alone, in one order.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta

import structlog

from ledger import (
    chain_check,
    chain_reads,
    gift_cards,
    holds,
    joins,
    paid_tiers,
    postings,
    recheck,
)
from ledger.database import Tx
from ledger.plan_reads import PlanReads
from ledger.plan_state import Spend, seconds
from ledger.rulebooks import Shelf
from protocols.business_day import business_day, business_year
from protocols.gift_cards import loads
from protocols.money import format_cny
from protocols.paid_tiers import tier_sold
from protocols.records import TransactionRecord
from protocols.shifts import EVENT_KINDS
from protocols.sync import SyncReply, SyncResult

log = structlog.get_logger("posgw.ledger.ingest")

Seals = list[str | None]  # per record, why its own seal fails (None: it holds)


Batch = tuple[str, list[TransactionRecord], Seals]  # terminal, its records, their seals
YIELD_EVERY = 100  # records decided between two turns of the event loop's other work (≈ 4 ms of Python)


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
    results: list[list[SyncResult]] = []
    decided = 0
    for _, records, seals in group:
        results.append([])
        for r, seal in zip(records, seals, strict=True):
            results[-1].append(await plan.apply(tx, r, seal))
            decided += 1
            if decided % YIELD_EVERY == 0:  # the API's requests may share this loop (``ledger/postgres_database.py``)
                await tx.pause()
    await plan.write(tx)
    chains = sorted({(terminal_id, records[0].epoch if records else 1) for terminal_id, records, _ in group})
    progress = await chain_reads.advance(tx, chains)
    await plan.write_members(tx)  # last: on SQLite the member revision is one counter
    return [
        SyncReply(tuple(res), *progress[(t, records[0].epoch if records else 1)])
        for (t, records, _), res in zip(group, results, strict=True)
    ]


class Plan(PlanReads):
    """Decides each record of a group against what the group read, then writes it all."""

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
                    seconds(r.created_at),
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
        self.unheld.append(Spend(r.terminal_id, r.member_id, unit, amount, seconds(r.created_at), self.now.timestamp()))

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
