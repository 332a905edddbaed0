"""The journal's outbox: records waiting for the ledger, leased to the sync worker, marked with its answers.

A facet of :class:`offline_queue.journal.TransactionJournal` (``journal.outbox``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from offline_queue.access import JournalAccess
from offline_queue.errors import JournalKeyError
from offline_queue.personal import Keyring
from offline_queue.rows import Pending, row_record, wire_bytes
from protocols.records import TransactionRecord
from protocols.sync import ChainView, SyncResult

FINAL_STATUSES = ("accepted", "duplicate", "rejected", "quarantined")


class JournalOutbox:
    def __init__(self, access: JournalAccess, keyring: Keyring | None) -> None:
        self._access = access
        self.keyring = keyring
        # Touched on the event loop only.
        self._leases: dict[str, tuple[int, float]] = {}  # txn_id -> (seq, expiry, monotonic seconds)

    async def lease(self, limit: int, lease_seconds: float = 30.0) -> list[Pending]:
        """Take up to ``limit`` unsent records, oldest first, for ``lease_seconds``.

        Leases live in memory: they only stop this process sending a record
        twice at once, and a restarted process must resend anyway. A lease
        that runs out (the ledger never answered) lets the record go again;
        the ledger's permanent dedup makes a second send harmless.
        """
        now = time.monotonic()
        self._leases = {t: v for t, v in self._leases.items() if v[1] > now}
        busy = len(self._leases)

        def pending(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT seq, txn_id, body, prev_hash, hash, signature, personal FROM journal "
                "WHERE sync_status IS NULL ORDER BY seq LIMIT ?",
                (limit + busy,),
            ).fetchall()

        taken: list[Pending] = []
        for seq, txn_id, body, prev, digest, sig, personal in await self._access.read(pending):
            if txn_id in self._leases or len(taken) == limit:
                continue
            self._leases[txn_id] = (seq, now + lease_seconds)
            taken.append(
                Pending(txn_id, seq, wire_bytes(body, prev, digest, sig), self._open_personal(personal, txn_id))
            )
        return taken

    async def release(self, txn_ids: list[str]) -> None:
        """Give leased records back at once (the send failed)."""
        for txn_id in txn_ids:
            self._leases.pop(txn_id, None)

    def _open_personal(self, sealed: str | None, txn_id: str) -> dict[str, str] | None:
        if sealed is None:
            return None
        if self.keyring is None:
            raise JournalKeyError("stored personal data cannot be read: no personal-data key configured")
        data: dict[str, str] = json.loads(self.keyring.decrypt(sealed, txn_id.encode()))
        return data

    async def pending(self, limit: int) -> list[TransactionRecord]:
        """Records the ledger has not answered for, oldest first (not leased)."""

        def pending(conn: sqlite3.Connection) -> list[TransactionRecord]:
            rows = conn.execute(
                "SELECT body, prev_hash, hash, signature FROM journal WHERE sync_status IS NULL ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
            return [row_record(*row) for row in rows]

        return await self._access.read(pending)

    async def mark_synced(self, results: list[SyncResult], at: str) -> int:
        """Record the ledger's answers; return how many records they settled.

        An answer for a record already settled, or for a record this journal
        does not hold, changes nothing: the ledger may answer twice or out of
        order. A rejected record stays, with its reason, never deleted.
        """

        def mark(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany(
                "UPDATE journal SET sync_status = ?, sync_reason = ?, synced_at = ? "
                "WHERE seq = ? AND txn_id = ? AND sync_status IS NULL",
                [(r.status, r.reason, at, r.seq, r.txn_id) for r in results if r.status in FINAL_STATUSES],
            )
            return conn.total_changes - before

        for r in results:
            self._leases.pop(r.txn_id, None)

        return await self._access.write(mark)

    async def resend_missing(self, view: ChainView) -> list[int]:
        """Records taken as delivered that the ledger says it lacks: pending again; their ``seq``, ascending.

        Only ``accepted`` and ``duplicate`` answers are taken back: a rejected
        or quarantined record is not in the ledger's chain by design.
        """

        def delivered_above(conn: sqlite3.Connection) -> list[int]:
            rows = conn.execute(
                "SELECT seq FROM journal WHERE sync_status IN ('accepted', 'duplicate') AND seq > ? ORDER BY seq",
                (view.high_seq,),
            )
            return [int(seq) for (seq,) in rows if view.lacks(int(seq))]

        # Read first (a snapshot, never waiting for a commit): almost always nothing is missing.
        if not await self._access.read(delivered_above):
            return []

        def take_back(conn: sqlite3.Connection) -> list[int]:
            missing = delivered_above(conn)
            conn.executemany(
                "UPDATE journal SET sync_status = NULL, sync_reason = NULL, synced_at = NULL WHERE seq = ?",
                [(seq,) for seq in missing],
            )
            return missing

        return await self._access.write(take_back)
