"""Builders for test records."""

from __future__ import annotations

from offline_queue.ids import uuid7
from protocols.records import RecordLine, Tender, TransactionRecord


def draft(terminal_id: str = "T-1", amount: int = 1000, member_id: str | None = None) -> TransactionRecord:
    return TransactionRecord(
        txn_id=str(uuid7()),
        terminal_id=terminal_id,
        seq=0,
        kind="sale",
        created_at="2026-11-24T01:00:00.000Z",
        store_id="S-1",
        merchant_id="M-1",
        currency="CNY",
        lines=(RecordLine("6901234567892", "Egg tart", "bakery", 1, amount, amount, 0, amount),),
        total_gross=amount,
        total_discount=0,
        total_due=amount,
        tenders=(Tender("cash", amount),),
        change=0,
        member_id=member_id,
        member_via="qr" if member_id else None,
        points_earned=amount // 10_000 if member_id else 0,
        growth_earned=amount // 100 if member_id else 0,
        rulebook_version=1,
        offline=True,
    )
