"""The transaction journal: SQLite in WAL mode with ``synchronous=FULL``.

A record is on disk before :meth:`TransactionJournal.append` returns, so the
cashier is only ever told "done" about a sale that survives a power cut. All
database work runs on one dedicated writer thread (SQLite allows one writer
anyway), so the event loop never blocks on an fsync.

Each terminal has its own journal; ``seq`` is gapless within it. An
idempotency key is stored in the same transaction as the record it produced
and never expires, so a retried completion returns the original sale.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from offline_queue.errors import IdempotencyConflictError, JournalError, JournalFullError
from protocols.records import TransactionRecord
from protocols.sync import SyncResult

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq         INTEGER PRIMARY KEY,
    txn_id      TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    body        TEXT NOT NULL,
    sync_status TEXT,
    sync_reason TEXT,
    synced_at   TEXT
);
CREATE INDEX IF NOT EXISTS journal_pending ON journal(seq) WHERE sync_status IS NULL;
CREATE TABLE IF NOT EXISTS idempotency (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    seq         INTEGER NOT NULL REFERENCES journal(seq)
);
"""


@dataclass(frozen=True, slots=True)
class JournalStats:
    total: int
    pending: int
    oldest_pending: str | None
    last_seq: int
    rejected: int


def _connect(path: Path, max_bytes: int | None) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(_SCHEMA)
    if max_bytes is not None:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        conn.execute(f"PRAGMA max_page_count = {max(1, max_bytes // page_size)}")
    return conn


def _raise_journal_error(err: sqlite3.Error) -> None:
    if isinstance(err, sqlite3.OperationalError) and "full" in str(err).lower():
        raise JournalFullError(
            "the journal's storage is full (disk or configured limit): the sale was not recorded; call store IT"
        ) from err
    raise JournalError(f"the sale could not be recorded ({err}); do not take payment, call store IT") from err


def _find_idempotent(conn: sqlite3.Connection, key: str, fingerprint: str) -> TransactionRecord | None:
    row = conn.execute(
        "SELECT i.fingerprint, j.body FROM idempotency i JOIN journal j USING (seq) WHERE i.key = ?", (key,)
    ).fetchone()
    if row is None:
        return None
    if row[0] != fingerprint:
        raise IdempotencyConflictError("this Idempotency-Key was already used for a different request")
    return TransactionRecord.from_wire(json.loads(row[1]), "journal")


class TransactionJournal:
    def __init__(self, path: Path, *, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="posgw-journal")
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._conn is None:
                self._conn = _connect(self.path, self.max_bytes)
            try:
                return fn(self._conn)
            except BaseException as err:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(err, sqlite3.Error):
                    _raise_journal_error(err)
                raise

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def open(self) -> None:
        await self._run(lambda conn: None)

    async def close(self) -> None:
        def close(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None

        if self._conn is not None:
            await self._run(close)
        self._executor.shutdown(wait=True)

    async def append(
        self, draft: TransactionRecord, *, idempotency_key: str | None = None, fingerprint: str = ""
    ) -> tuple[TransactionRecord, bool]:
        """Commit ``draft`` with the next ``seq``; return it and whether it was a replay.

        With an ``idempotency_key`` already used for the same ``fingerprint``,
        nothing is written and the original record is returned.
        """

        def append(conn: sqlite3.Connection) -> tuple[TransactionRecord, bool]:
            conn.execute("BEGIN IMMEDIATE")
            if idempotency_key is not None:
                row = conn.execute(
                    "SELECT i.fingerprint, j.body FROM idempotency i JOIN journal j USING (seq) WHERE i.key = ?",
                    (idempotency_key,),
                ).fetchone()
                if row is not None:
                    conn.execute("ROLLBACK")
                    if row[0] != fingerprint:
                        raise IdempotencyConflictError("this Idempotency-Key was already used for a different request")
                    return TransactionRecord.from_wire(json.loads(row[1]), "journal"), True
            (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()
            record = dataclasses.replace(draft, seq=last + 1)
            conn.execute(
                "INSERT INTO journal (seq, txn_id, created_at, body) VALUES (?, ?, ?, ?)",
                (record.seq, record.txn_id, record.created_at, json.dumps(record.to_wire(), separators=(",", ":"))),
            )
            if idempotency_key is not None:
                conn.execute(
                    "INSERT INTO idempotency (key, fingerprint, seq) VALUES (?, ?, ?)",
                    (idempotency_key, fingerprint, record.seq),
                )
            conn.execute("COMMIT")
            return record, False

        return await self._run(append)

    async def replay(self, idempotency_key: str, fingerprint: str) -> TransactionRecord | None:
        """The record an earlier request with this key produced, if any."""

        return await self._run(lambda conn: _find_idempotent(conn, idempotency_key, fingerprint))

    async def pending(self, limit: int) -> list[TransactionRecord]:
        """Records not yet acknowledged by the ledger, oldest first."""

        def pending(conn: sqlite3.Connection) -> list[TransactionRecord]:
            rows = conn.execute(
                "SELECT body FROM journal WHERE sync_status IS NULL ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
            return [TransactionRecord.from_wire(json.loads(body), "journal") for (body,) in rows]

        return await self._run(pending)

    async def mark_synced(self, results: list[SyncResult], at: str) -> None:
        """Record the ledger's answer; a rejected record stays visible, never deleted."""

        def mark(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "UPDATE journal SET sync_status = ?, sync_reason = ?, synced_at = ? "
                "WHERE txn_id = ? AND sync_status IS NULL",
                [(r.status, r.reason, at, r.txn_id) for r in results],
            )
            conn.execute("COMMIT")

        await self._run(mark)

    async def stats(self) -> JournalStats:
        def stats(conn: sqlite3.Connection) -> JournalStats:
            total, last, pending, oldest, rejected = conn.execute(
                "SELECT COUNT(*), COALESCE(MAX(seq), 0), "
                "SUM(sync_status IS NULL), MIN(CASE WHEN sync_status IS NULL THEN created_at END), "
                "SUM(sync_status = 'rejected') FROM journal"
            ).fetchone()
            return JournalStats(total, pending or 0, oldest, last, rejected or 0)

        return await self._run(stats)

    async def get(self, txn_id: str) -> TransactionRecord | None:
        def get(conn: sqlite3.Connection) -> TransactionRecord | None:
            row = conn.execute("SELECT body FROM journal WHERE txn_id = ?", (txn_id,)).fetchone()
            return None if row is None else TransactionRecord.from_wire(json.loads(row[0]), "journal")

        return await self._run(get)
