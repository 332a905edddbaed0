"""Questions the till asks of its own journal: what was spent, redeemed or refunded here.

A facet of :class:`offline_queue.journal.TransactionJournal` (``journal.lookups``);
every query runs on the journal's read connection.
"""

from __future__ import annotations

import sqlite3
from typing import TypeVar

from offline_queue.access import JournalAccess
from offline_queue.rows import row_record
from protocols.records import TransactionRecord

T = TypeVar("T")


def code_used(conn: sqlite3.Connection, nonce: str) -> str | None:
    """What used a member or wallet code: a sale's ``txn_id``, or ``payment:<id>``; None if unused."""
    row = conn.execute("SELECT txn_id FROM used_member_codes WHERE nonce = ?", (nonce,)).fetchone()
    return None if row is None else str(row[0])


class JournalLookups:
    """Read-only questions about members, coupons and refunds."""

    def __init__(self, access: JournalAccess) -> None:
        self._read = access.read

    async def points_spent_since(self, member_id: str, since: str) -> int:
        """Points this terminal spent for a member that a ledger snapshot asked for at ``since`` may miss.

        That is every sale the ledger has not acknowledged, and every sale it
        acknowledged at or after ``since`` (ISO time, this terminal's clock).
        """

        def spent(conn: sqlite3.Connection) -> int:
            (total,) = conn.execute(
                "SELECT COALESCE(SUM(json_extract(body, '$.points_redeemed')), 0) FROM journal "
                "WHERE json_extract(body, '$.member_id') = ? AND (sync_status IS NULL OR synced_at >= ?)",
                (member_id, since),
            ).fetchone()
            return int(total)

        return await self._read(spent)

    async def offline_spending(self, member_id: str) -> tuple[int, int]:
        """Points spent, and sales spending them, for a member in offline sales the ledger has not seen."""

        def spending(conn: sqlite3.Connection) -> tuple[int, int]:
            points, sales = conn.execute(
                "SELECT COALESCE(SUM(json_extract(body, '$.points_redeemed')), 0), COUNT(*) FROM journal "
                "WHERE sync_status IS NULL AND json_extract(body, '$.offline') "
                "AND json_extract(body, '$.member_id') = ? AND json_extract(body, '$.points_redeemed') > 0",
                (member_id,),
            ).fetchone()
            return int(points), int(sales)

        return await self._read(spending)

    async def refunds_of(self, txn_id: str) -> list[TransactionRecord]:
        """Every refund already recorded against a sale, oldest first."""

        def refunds(conn: sqlite3.Connection) -> list[TransactionRecord]:
            rows = conn.execute(
                "SELECT body, prev_hash, hash, signature FROM journal WHERE json_extract(body, '$.refund_of') = ? "
                "ORDER BY seq",
                (txn_id,),
            ).fetchall()
            return [row_record(*row) for row in rows]

        return await self._read(refunds)

    async def member_code_used(self, nonce: str) -> bool:
        return await self._read(lambda conn: code_used(conn, nonce)) is not None

    async def coupon_redeemed(self, instance: str) -> str | None:
        """The sale that redeemed this coupon at this terminal, if any."""

        def find(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT txn_id FROM redeemed_coupons WHERE instance = ?", (instance,)).fetchone()
            return None if row is None else str(row[0])

        return await self._read(find)

    async def last_shift_event(self) -> TransactionRecord | None:
        """The newest shift open or close in this journal (the shift open now, if it is an open)."""

        def last(conn: sqlite3.Connection) -> TransactionRecord | None:
            row = conn.execute(
                "SELECT body, prev_hash, hash, signature FROM journal "
                "WHERE json_extract(body, '$.kind') IN ('shift_open', 'shift_close') ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            return None if row is None else row_record(*row)

        return await self._read(last)

    async def records_after(self, seq: int) -> list[TransactionRecord]:
        """Every record after ``seq``, oldest first (a shift's, for its X report)."""

        def after(conn: sqlite3.Connection) -> list[TransactionRecord]:
            rows = conn.execute(
                "SELECT body, prev_hash, hash, signature FROM journal WHERE seq > ? ORDER BY seq", (seq,)
            ).fetchall()
            return [row_record(*row) for row in rows]

        return await self._read(after)
