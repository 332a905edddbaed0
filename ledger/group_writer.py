"""Batches that arrive together share one transaction: the group writer, its lanes and the keys it locks.

``ingest.batches`` applies a group; this module decides which batches make a
group, when it runs, and what its transaction locks (:func:`lock_keys`: its
terminals, members, coupon copies, codes, holds, gift cards, refunded sales,
joined phone numbers). The database locks those alone, in one order, so
groups of different terminals commit side by side, on one node (up to
``serve --lanes`` at once on PostgreSQL) and across nodes (``docs/protocols/sync.md``,
"Many nodes").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ledger import gift_cards
from ledger.database import Database, Gate, GateClosedError, Tx
from ledger.ingest import Seals, batches
from ledger.rulebooks import Shelf
from protocols.gift_cards import loads
from protocols.records import TransactionRecord
from protocols.sync import SyncReply

GROUP_RECORDS = 2_000  # at most this many records share one transaction
# Groups in flight at once in one process, on an engine with keyed writes (PostgreSQL; ``serve --lanes``).
# One by default: a ledger process is bound by its own Python, and a second lane only splits the batches
# waiting into more, smaller transactions, each paying its round trips (500 terminals selling steadily:
# p99 0.36 - 0.62 s with one lane, 0.85 - 0.95 s with three, docs/protocols/sync.md). More lanes suit a
# database far away, whose answers are the wait; more processes (``--workers``, nodes) use more cores.
LANES = 1
MAX_LANES = 3  # the pool (4 connections) keeps one for reads beside them


@dataclass
class _Waiting:
    terminal_id: str
    records: list[TransactionRecord]
    seals: asyncio.Future[Seals]  # decided in worker processes, perhaps still running
    answer: asyncio.Future[SyncReply]
    keys: frozenset[str] = frozenset()  # what its records lock (``lock_keys``)
    bodies: list[str] | None = None  # each record as received and signed (``chain.with_chain``), to keep


class GroupWriter:
    """Applies batches; those that arrive while a transaction runs share the next one (and its commit).

    A batch whose signatures are still being checked is applied as if they
    hold, and the transaction waits for the verdict before it commits: the
    database work overlaps the checks. Any seal that fails rolls the group
    back, and it is applied again knowing which. If a shared transaction
    fails otherwise, each of its batches is applied again in a transaction of
    its own, so one batch that cannot be applied never costs the others
    their answer.

    With several lanes (PostgreSQL), the groups in flight on this node never
    share a key: a batch naming a key a running group holds waits for the
    next group, and so does every later batch naming one of its keys (a
    terminal's batches keep their order). The database's locks then only ever
    make groups of different nodes wait for each other.
    """

    def __init__(self, db: Database, shelf: Callable[[], Shelf], lanes: int = LANES) -> None:
        self._db = db
        self.shelf = shelf  # the rulebooks records are re-checked by, and the one in force
        self._waiting: list[_Waiting] = []
        self._writers: set[asyncio.Task[None]] = set()
        self._busy: set[str] = set()  # the keys of the groups in flight on this node
        self._lanes = lanes if db.engine == "postgres" else 1  # SQLite has one writer: a second lane only waits

    async def ingest(
        self,
        terminal_id: str,
        records: list[TransactionRecord],
        seals: Seals | asyncio.Future[Seals],
        bodies: list[str] | None = None,
    ) -> SyncReply:
        loop = asyncio.get_running_loop()
        if not isinstance(seals, asyncio.Future):
            known, seals = seals, loop.create_future()
            seals.set_result(known)
        answer: asyncio.Future[SyncReply] = loop.create_future()
        self._waiting.append(_Waiting(terminal_id, records, seals, answer, frozenset(lock_keys(records)), bodies))
        # A writer whose loop ended is done at once, but its done-callbacks run later: counted, it would leave
        # this batch waiting for a writer that is gone.
        self._writers = {w for w in self._writers if not w.done()}
        if len(self._writers) < self._lanes:
            self._writers.add(asyncio.create_task(self._write(), name="ledger-ingest"))
        return await answer

    async def _write(self) -> None:
        while self._waiting:
            group = self._next_group()
            if not group:  # every batch waiting names a key a running group holds: that lane takes them next
                return
            keys = sorted(set().union(*(w.keys for w in group)))
            self._busy.update(keys)
            try:
                replies = await self._apply(group, keys)
            except Exception:  # noqa: BLE001 - each batch then succeeds or fails on its own
                await self._one_by_one(group)
                continue
            else:
                for w, reply in zip(group, replies, strict=True):
                    _answer(w, reply)
            finally:
                self._busy.difference_update(keys)

    def _next_group(self) -> list[_Waiting]:
        """The next batches in order, up to ``GROUP_RECORDS``, none naming a key a running group holds."""
        group: list[_Waiting] = []
        size = 0
        blocked = set(self._busy)  # keys no batch of this group may name: held, or named by a batch left waiting
        left: list[_Waiting] = []
        for i, w in enumerate(self._waiting):
            if group and size + len(w.records) > GROUP_RECORDS:
                left += self._waiting[i:]
                break
            if blocked.isdisjoint(w.keys):
                group.append(w)
                size += len(w.records)
            else:
                blocked |= w.keys
                left.append(w)
        self._waiting = left
        return group

    async def _apply(self, group: list[_Waiting], keys: list[str]) -> list[SyncReply]:
        try:
            return await self._db.write(_applying(group, self.shelf(), optimistic=True), _verdict(group), keys=keys)
        except GateClosedError:  # a seal failed: again, with every seal known
            await asyncio.wait([w.seals for w in group])
            return await self._db.write(_applying(group, self.shelf()), keys=keys)

    async def _one_by_one(self, group: list[_Waiting]) -> None:
        for w in group:
            try:
                await w.seals
                (reply,) = await self._db.write(_applying([w], self.shelf()), keys=sorted(w.keys))
            except Exception as err:  # noqa: BLE001 - handed to the batch's caller
                _answer(w, error=err)
            else:
                _answer(w, reply)


def lock_keys(records: Sequence[TransactionRecord]) -> list[str]:
    """What a group of records may read and change, named for the keyed write that applies them.

    Whatever two groups could both read and then change is named by both: a terminal (its chains, its
    day's top-ups, loads, tier sales and shifts), a member (balances, growth, grants, holds' owner, offline
    spends), a coupon copy, a wallet or member code, a hold, a gift card, a sale being refunded (returns at
    any till), a phone number joining. A member a join turns out to alias is locked when it is learnt.
    """
    keys: set[str] = set()
    for r in records:
        keys.add(f"terminal:{r.terminal_id}")
        if r.member_id:
            keys.add(f"member:{r.member_id}")
        if r.refund_of:
            keys.add(f"sale:{r.refund_of}")
        if r.reservation:
            keys.add(f"hold:{r.reservation}")
        if r.member_code:
            keys.add(f"code:{r.member_code}")
        if r.joined:
            keys.add(f"identifier:{r.joined}")
        keys.update(f"coupon:{c}" for c in (*r.coupons, *r.coupons_restored))
        keys.update(f"card:{number}" for number, _ in loads(r.lines))
        for t in r.tenders:
            keys.update(k for k in (t.ref and f"hold:{t.ref}", t.code and f"code:{t.code}") if k)
            if t.card:
                keys.update((f"card:{t.card}", f"member:{gift_cards.holder(t.card)}"))
    return sorted(keys)


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
    group: list[_Waiting], shelf: Shelf, *, optimistic: bool = False
) -> Callable[[Tx], Awaitable[list[SyncReply]]]:
    """The group's batches in one transaction; ``optimistic``: seals not yet known are taken to hold."""
    now = datetime.now(UTC)
    seals = [w.seals.result() if w.seals.done() or not optimistic else _holding(len(w.records)) for w in group]

    kept = {id(r): b for w in group if w.bodies is not None for r, b in zip(w.records, w.bodies, strict=True)}

    async def apply(tx: Tx) -> list[SyncReply]:
        batched = [(w.terminal_id, w.records, s) for w, s in zip(group, seals, strict=True)]
        return await batches(tx, batched, now, shelf, kept)

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
