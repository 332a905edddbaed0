"""Records the ledger could not believe: held with their chain, never applied, until an operator decides.

A quarantined record is stored like any other (its ``seq`` counts, the next
record links to it, the terminal is told ``quarantined`` and stops sending
it) but moves no balance, redeems no coupon and earns no growth. An
operator looks (``posgw-ledger quarantine list|show``) and either
*releases* it — applied then, exactly as if it had been believed, with the
operator's name and note in the audit trail — or *rejects* it: kept for ever,
never applied. Nothing is dropped; nothing unbelievable is applied unseen.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ledger import ingest, recheck
from ledger.database import Database, Tx
from ledger.identity import audit
from ledger.rulebooks import Shelf
from protocols import refunds
from protocols.business_day import business_day
from protocols.errors import FinalError, GatewayError
from protocols.records import TransactionRecord


class QuarantineError(FinalError):
    """No such record in quarantine, or it was decided already."""

    code = "quarantine"


_COLUMNS = "q.txn_id, q.terminal_id, q.epoch, q.seq, q.reason, q.state, q.held_at, q.decided_at, q.decided_by, q.note"
_KEYS = ("txn_id", "terminal_id", "epoch", "seq", "reason", "state", "held_at", "decided_at", "decided_by", "note")


async def listing(tx: Tx, state: str = "held") -> list[dict[str, Any]]:
    rows = await tx.all(f"SELECT {_COLUMNS} FROM quarantine q WHERE q.state = $1 ORDER BY q.held_at, q.seq", state)  # noqa: S608
    return [dict(zip(_KEYS, row, strict=True)) for row in rows]


async def held_count(tx: Tx) -> int:
    row = await tx.one("SELECT COUNT(*) FROM quarantine WHERE state = 'held'")
    return int(row[0]) if row else 0


async def show(tx: Tx, txn_id: str) -> dict[str, Any]:
    row = await tx.one(
        f"SELECT {_COLUMNS}, t.body FROM quarantine q JOIN transactions t USING (txn_id) WHERE q.txn_id = $1",  # noqa: S608
        txn_id,
    )
    if row is None:
        raise QuarantineError(f"no record {txn_id} in quarantine")
    values = list(row)
    return {**dict(zip(_KEYS, values[:-1], strict=True)), "record": json.loads(values[-1])}


async def release(tx: Tx, txn_id: str, actor: str, note: str, shelf: Shelf) -> list[str]:
    """Apply a held record as if it had been believed; its conflicts (if any) are recorded as usual. A record
    the background audit held after it was applied (``record_audit.py``) is not applied again: releasing it
    says the operator vouches for it as stored."""
    held = await _held(tx, txn_id)
    record = TransactionRecord.from_wire(held["record"])
    now = datetime.now(UTC)
    if await _applied(tx, txn_id):
        await _decide(tx, txn_id, "released", actor, note, now)
        await audit(tx, actor, "quarantine-release", txn_id, {"reason": held["reason"], "note": note, "applied": True})
        return []
    plan = await ingest.Plan.load(tx, [record], shelf, now)
    book = shelf.get(record.rulebook_version)
    if record.refund_of and (sale := plan.sales.get(record.refund_of)) is not None and book is not None:
        try:  # its units may have been refunded since, by a refund that was believed
            refunds.plan_refund(
                sale[0], plan.refunds.get(record.refund_of, []), {x.refund_line: x.quantity for x in record.lines},
                rulebook=book, today=business_day(record.created_at, book.zone), draft_fields=_fields(record),
                void=record.kind == "void",
            )  # fmt: skip
        except GatewayError as err:
            raise QuarantineError(f"it cannot be applied now ({err}): reject it") from err
    conflicts = await plan.effects(tx, record, recheck.offset_points(record, book) if book else 0)
    await plan.write(tx)
    await plan.write_members(tx)
    await tx.run("UPDATE transactions SET state = 'applied' WHERE txn_id = $1", txn_id)
    await _decide(tx, txn_id, "released", actor, note, now)
    await audit(tx, actor, "quarantine-release", txn_id, {"reason": held["reason"], "note": note})
    return conflicts


def _fields(r: TransactionRecord) -> dict[str, object]:
    return {f: getattr(r, f) for f in ("txn_id", "terminal_id", "seq", "created_at", "offline")}


async def reject(tx: Tx, txn_id: str, actor: str, note: str) -> None:
    """Keep the record for ever, never applied."""
    held = await _held(tx, txn_id)
    if not await _applied(tx, txn_id):  # an applied record the audit held stays applied: undoing it is a refund
        await tx.run("UPDATE transactions SET state = 'rejected' WHERE txn_id = $1", txn_id)
    await _decide(tx, txn_id, "rejected", actor, note, datetime.now(UTC))
    await audit(tx, actor, "quarantine-reject", txn_id, {"reason": held["reason"], "note": note})


async def _applied(tx: Tx, txn_id: str) -> bool:
    row = await tx.one("SELECT state FROM transactions WHERE txn_id = $1", txn_id)
    return row is not None and row[0] == "applied"


async def _held(tx: Tx, txn_id: str) -> dict[str, Any]:
    held = await show(tx, txn_id)
    if held["state"] != "held":
        raise QuarantineError(
            f"record {txn_id} was {held['state']} already ({held['decided_by']}, {held['decided_at']})"
        )
    return held


async def _decide(tx: Tx, txn_id: str, state: str, actor: str, note: str, at: datetime) -> None:
    await tx.run(
        "UPDATE quarantine SET state = $1, decided_at = $2, decided_by = $3, note = $4 WHERE txn_id = $5",
        state,
        at.isoformat(),
        actor,
        note,
        txn_id,
    )


class QuarantineBook:
    """The store's facet for the records held for an operator (``store.quarantine``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def held(self, state: str = "held") -> list[dict[str, Any]]:
        return await self.db.read(lambda tx: listing(tx, state))

    async def count(self) -> int:
        return await self.db.read(held_count)
