"""Applying terminals' batches of records: dedup, chain links, coupons, points, stored value.

A batch is applied whole in one database transaction, never in part;
batches that arrive while a transaction runs share the next one and its
commit (:class:`GroupWriter`). Transactions are deduplicated permanently by
``txn_id`` and by ``(terminal_id, seq)``. A sale whose coupon or balance was
spent twice by two offline terminals is accepted (money changed hands) with
a compensating posting and a recorded conflict, never dropped.

Set-wise, so a group costs a handful of round trips to the database rather
than several per record or per batch (it matters on PostgreSQL over a
network): what the group needs to know is read first (held records near
each terminal's ``seq`` range, the members' balances), each record is
decided against that in memory, and the new rows are written together at
the end. Coupons, the rare case, are read and written as each record comes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger import chain_check, postings
from ledger.database import Database, Gate, GateClosedError, Tx, marks
from ledger.growth import GrowthBook
from ledger.tiers import Ladder
from protocols.money import format_cny
from protocols.records import TransactionRecord
from protocols.sync import SyncReply, SyncResult

GROUP_RECORDS = 2_000  # at most this many records share one transaction
Seals = list[str | None]  # per record, why its own seal fails (None: it holds)


@dataclass
class _Waiting:
    terminal_id: str
    records: list[TransactionRecord]
    seals: asyncio.Future[Seals]  # decided in worker processes, perhaps still running
    answer: asyncio.Future[SyncReply]


class GroupWriter:
    """Applies batches; those that arrive while a transaction runs share the next one (and its commit).

    A batch whose signatures are still being checked is applied as if they
    hold, and the transaction waits for the verdict before it commits: the
    database work overlaps the checks. Any seal that fails rolls the group
    back, and it is applied again knowing which. If a shared transaction
    fails otherwise, each of its batches is applied again in a transaction of
    its own, so one batch that cannot be applied never costs the others
    their answer.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self.ladder = Ladder()  # the rulebook in force's tiers by growth (set by the service)
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def ingest(
        self, terminal_id: str, records: list[TransactionRecord], seals: Seals | asyncio.Future[Seals]
    ) -> SyncReply:
        loop = asyncio.get_running_loop()
        if not isinstance(seals, asyncio.Future):
            known, seals = seals, loop.create_future()
            seals.set_result(known)
        answer: asyncio.Future[SyncReply] = loop.create_future()
        self._waiting.append(_Waiting(terminal_id, records, seals, answer))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="ledger-ingest")
        return await answer

    async def _write(self) -> None:
        while self._waiting:
            group = self._next_group()
            try:
                replies = await self._apply(group)
            except Exception:  # noqa: BLE001 - each batch then succeeds or fails on its own
                await self._one_by_one(group)
                continue
            for w, reply in zip(group, replies, strict=True):
                _answer(w, reply)

    def _next_group(self) -> list[_Waiting]:
        group: list[_Waiting] = []
        size = 0
        while self._waiting and (not group or size + len(self._waiting[0].records) <= GROUP_RECORDS):
            group.append(self._waiting.pop(0))
            size += len(group[-1].records)
        return group

    async def _apply(self, group: list[_Waiting]) -> list[SyncReply]:
        try:
            return await self._db.write(_applying(group, self.ladder, optimistic=True), _verdict(group))
        except GateClosedError:  # a seal failed: again, with every seal known
            await asyncio.wait([w.seals for w in group])
            return await self._db.write(_applying(group, self.ladder))

    async def _one_by_one(self, group: list[_Waiting]) -> None:
        for w in group:
            try:
                await w.seals
                (reply,) = await self._db.write(_applying([w], self.ladder))
            except Exception as err:  # noqa: BLE001 - handed to the batch's caller
                _answer(w, error=err)
            else:
                _answer(w, reply)


def _verdict(group: list[_Waiting]) -> Gate | None:
    """Open (True) once every seal of the group is checked and holds; None when all are known already."""
    pending = [w.seals for w in group if not w.seals.done()]
    if not pending:
        return None
    gate: Gate = concurrent.futures.Future()

    def decided(joined: asyncio.Future[list[Seals]]) -> None:
        if joined.cancelled():
            gate.set_result(False)
        elif (err := joined.exception()) is not None:
            gate.set_exception(err)
        else:
            gate.set_result(all(seal is None for seals in joined.result() for seal in seals))

    asyncio.gather(*pending).add_done_callback(decided)
    return gate


def _applying(
    group: list[_Waiting], ladder: Ladder, *, optimistic: bool = False
) -> Callable[[Tx], Awaitable[list[SyncReply]]]:
    """The group's batches in one transaction; ``optimistic``: seals not yet known are taken to hold."""
    now = datetime.now(UTC).isoformat()
    seals = [w.seals.result() if w.seals.done() or not optimistic else _holding(len(w.records)) for w in group]

    async def apply(tx: Tx) -> list[SyncReply]:
        return await batches(
            tx, [(w.terminal_id, w.records, s) for w, s in zip(group, seals, strict=True)], now, ladder
        )

    return apply


def _holding(n: int) -> Seals:
    return [None] * n


def _answer(w: _Waiting, reply: SyncReply | None = None, error: Exception | None = None) -> None:
    if w.answer.done():  # its request went away; what was applied stands (a resend is a duplicate)
        return
    if error is not None:
        w.answer.set_exception(error)
    elif reply is not None:
        w.answer.set_result(reply)


Batch = tuple[str, list[TransactionRecord], Seals]  # terminal, its records, their seals


async def batches(tx: Tx, group: list[Batch], now: str, ladder: Ladder) -> list[SyncReply]:
    """Apply batches (each of one terminal) in the caller's transaction, in order; an answer for each.

    The whole group is read, decided and written at once: a few round trips however many batches.
    """
    plan = await Plan.load(tx, [r for _, records, _ in group for r in records], ladder)
    results = [
        [await plan.apply(tx, r, seal, now) for r, seal in zip(records, seals, strict=True)]
        for _, records, seals in group
    ]
    await plan.write(tx)
    progress = await _advance(tx, sorted({terminal_id for terminal_id, _, _ in group}))
    return [SyncReply(tuple(res), *progress[t]) for (t, _, _), res in zip(group, results, strict=True)]


async def _advance(tx: Tx, terminals: list[str]) -> dict[str, tuple[int, tuple[tuple[int, int], ...]]]:
    """Each terminal's new contiguous high ``seq`` (stored) and the runs still missing above it."""
    values = ", ".join(f"(${i})" for i in range(1, len(terminals) + 1))
    rows = await tx.all(
        f"INSERT INTO terminals (terminal_id) VALUES {values} ON CONFLICT (terminal_id) "  # noqa: S608
        "DO UPDATE SET high_seq = terminals.high_seq RETURNING terminal_id, high_seq",
        *terminals,
    )
    before = {str(t): int(h) for t, h in rows}
    where, args = _terminal_ranges([(t, before[t] + 1, None) for t in terminals])
    above: dict[str, list[int]] = {t: [] for t in terminals}
    for t, seq in await tx.all(f"SELECT terminal_id, seq FROM transactions WHERE {where} ORDER BY seq", *args):  # noqa: S608
        above[t].append(int(seq))
    progress = {t: chain_check.advance(before[t], above[t]) for t in terminals}
    await tx.many(
        "UPDATE terminals SET high_seq = $1 WHERE terminal_id = $2",
        [(high, t) for t, (high, _) in progress.items() if high != before[t]],
    )
    return {t: (high, tuple(missing)) for t, (high, missing) in progress.items()}


def _terminal_ranges(ranges: list[tuple[str, int, int | None]]) -> tuple[str, list[Any]]:
    """``(terminal_id = $a AND seq BETWEEN $b AND $c) OR …`` (no upper bound: ``seq >= $b``) and its values."""
    parts: list[str] = []
    args: list[Any] = []
    for terminal_id, low, high in ranges:
        n = len(args)
        if high is None:
            parts.append(f"(terminal_id = ${n + 1} AND seq >= ${n + 2})")
            args += [terminal_id, low]
        else:
            parts.append(f"(terminal_id = ${n + 1} AND seq BETWEEN ${n + 2} AND ${n + 3})")
            args += [terminal_id, low, high]
    return " OR ".join(parts), args


@dataclass
class Plan:
    """What a group of batches reads first, decides in memory, and writes at the end."""

    txn_ids: set[str]  # every txn_id held, of those the group carries
    links: dict[str, dict[int, tuple[str, str]]]  # terminal -> seq -> (prev_hash, hash) held near its records
    balances: dict[tuple[str, str], int]  # (member, unit) -> balance, for the batch's known members
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    postings: list[tuple[Any, ...]] = field(default_factory=list)
    conflicts: list[tuple[str, str, str]] = field(default_factory=list)
    released: list[tuple[str]] = field(default_factory=list)  # wallet holds their sale consumed
    changed: set[str] = field(default_factory=set)
    growth: dict[str, int] = field(default_factory=dict)  # member -> lifetime growth value changed here
    book: GrowthBook = field(default_factory=lambda: GrowthBook(Ladder()))  # growth by year, and tiers

    @classmethod
    async def load(cls, tx: Tx, records: Sequence[TransactionRecord], ladder: Ladder) -> Plan:
        if not records:
            return cls(set(), {}, {}, book=GrowthBook(ladder))
        ids = [r.txn_id for r in records]
        held = await tx.all(f"SELECT txn_id FROM transactions WHERE txn_id IN ({marks(len(ids))})", *ids)  # noqa: S608
        seqs: dict[str, list[int]] = {}
        for r in records:
            seqs.setdefault(r.terminal_id, []).append(r.seq)
        where, args = _terminal_ranges([(t, min(s) - 1, max(s) + 1) for t, s in seqs.items()])
        links: dict[str, dict[int, tuple[str, str]]] = {t: {} for t in seqs}
        for t, seq, prev_hash, digest in await tx.all(
            f"SELECT terminal_id, seq, prev_hash, hash FROM transactions WHERE {where}",  # noqa: S608
            *args,
        ):
            links[t][int(seq)] = (prev_hash, digest)
        members = sorted({r.member_id for r in records if r.member_id})
        balances: dict[tuple[str, str], int] = {}
        plan = cls({t for (t,) in held}, links, balances, book=GrowthBook(ladder))
        await plan.book.load_refunded(tx, records)
        if members:
            # One row per member and year of growth held (the years the group's growth touches).
            years = plan.book.years(records)
            n = len(members)
            for member_id, points, wallet, tier, year, growth in await tx.all(
                "SELECT m.member_id, m.points, m.wallet, m.tier, g.year, g.growth FROM members m "  # noqa: S608
                f"LEFT JOIN member_growth g ON g.member_id = m.member_id AND g.year IN ({marks(len(years), n)}) "
                f"WHERE m.member_id IN ({marks(n)})",
                *members,
                *years,
            ):
                balances[(member_id, "points")] = int(points)
                balances[(member_id, "fen")] = int(wallet)
                plan.book.hold(member_id, tier, year, int(growth or 0))
        return plan

    async def apply(self, tx: Tx, r: TransactionRecord, seal: str | None, now: str) -> SyncResult:
        if r.txn_id in self.txn_ids:
            return SyncResult(r.txn_id, r.seq, "duplicate")
        links = self.links.setdefault(r.terminal_id, {})
        if r.seq in links:
            return SyncResult(r.txn_id, r.seq, "rejected", f"seq {r.seq} already holds another transaction")
        if reason := seal or chain_check.link_refusal(r, links):
            return SyncResult(r.txn_id, r.seq, "rejected", reason)
        self.txn_ids.add(r.txn_id)
        links[r.seq] = (r.prev_hash, r.hash)
        body = json.dumps(r.to_wire())
        self.rows.append((r.txn_id, r.terminal_id, r.seq, body, now, r.prev_hash, r.hash, r.created_at, r.kind))
        if r.reservation:  # the hold becomes the spend itself (second half of the two phases)
            await tx.run("DELETE FROM reservations WHERE reservation = $1 AND txn_id = $2", r.reservation, r.txn_id)
        conflicts = [c for c in [await redeem(tx, r, instance) for instance in r.coupons] if c]
        for instance in r.coupons_restored:  # a full refund gives the coupon back
            await tx.run("DELETE FROM coupon_redemptions WHERE instance = $1 AND txn_id = $2", instance, r.refund_of)
        conflicts += self._wallet(r)
        delta = r.points_earned - r.points_redeemed + r.points_returned - r.points_clawback
        # Double entry; spending beyond the balance posts the shortfall to the mall's overdraft.
        if r.member_id and delta and (shortfall := self._move(r.txn_id, r.member_id, "points", delta)):
            conflicts.append(f"points overdrawn by {shortfall} (spent offline twice?)")
        # Growth: tier progress, not money (ledger/growth.py); for known members only, as points.
        if r.member_id and (r.member_id, "points") in self.balances and (change := self.book.apply(r, now)):
            self.growth[r.member_id] = self.growth.get(r.member_id, 0) + change
            self.changed.add(r.member_id)
        self.conflicts += [(r.txn_id, r.terminal_id, text) for text in conflicts]
        # The sale stands (money changed hands); a conflict is for the mall to settle, never dropped.
        return SyncResult(r.txn_id, r.seq, "accepted", "; ".join(f"conflict: {c}" for c in conflicts) or None)

    def _wallet(self, r: TransactionRecord) -> list[str]:
        """The record's stored-value tenders (``wallet.py``); the conflicts to record."""
        conflicts: list[str] = []
        sign = 1 if r.kind in ("refund", "void") else -1  # a refund's wallet tender gives the money back
        for tender in (t for t in r.tenders if t.kind == "wallet"):
            if r.member_id is None:
                conflicts.append(f"wallet tender {tender.ref} without a member")
            elif (r.member_id, "fen") not in self.balances:
                conflicts.append(f"wallet tender {tender.ref} for unknown member {r.member_id}")
            else:
                if shortfall := self._move(r.txn_id, r.member_id, "fen", sign * tender.amount, tender.ref):
                    conflicts.append(f"wallet overdrawn by {format_cny(shortfall)} (spent twice offline?)")
                if tender.ref:
                    self.released.append((tender.ref,))  # the hold becomes the spend itself
        return conflicts

    def _move(self, txn_id: str, member_id: str, unit: str, delta: int, ref: str | None = None) -> int:
        """Post a change to a known member's balance; the shortfall sent to overdraft (0 for unknown members)."""
        balance = self.balances.get((member_id, unit))
        if balance is None:
            return 0
        applied, shortfall, rows = postings.plan(txn_id, member_id, unit, balance, delta, ref)
        self.balances[(member_id, unit)] = balance + applied
        self.postings += rows
        self.changed.add(member_id)
        return shortfall

    async def write(self, tx: Tx) -> None:
        await tx.many(
            "INSERT INTO transactions (txn_id, terminal_id, seq, body, received_at, prev_hash, hash, created_at, "
            "kind) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            self.rows,
        )
        await tx.many(postings.INSERT, self.postings)
        await tx.many(
            "UPDATE members SET points = $1, wallet = $2, growth = growth + $3, tier = $4 WHERE member_id = $5",
            [
                (self.balances[(m, "points")], self.balances[(m, "fen")], self.growth.get(m, 0), self.book.tiers[m], m)
                for m in sorted(self.changed)
            ],
        )
        await self.book.write(tx)
        await tx.many("DELETE FROM wallet_holds WHERE ref = $1", self.released)
        await tx.many("INSERT INTO conflicts (txn_id, terminal_id, detail) VALUES ($1, $2, $3)", self.conflicts)


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
