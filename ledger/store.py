"""Ledger storage on embedded SQLite (the single-shop and demo default).

Transactions are deduplicated permanently by ``txn_id`` and by
``(terminal_id, seq)``; one batch is applied in one database transaction.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ledger import chain_check, postings, wallet
from protocols.records import TransactionRecord
from protocols.rulebook import MemberEntry
from protocols.sync import SyncReply, SyncResult

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    member_id TEXT PRIMARY KEY,
    tier      TEXT NOT NULL,
    status    TEXT NOT NULL DEFAULT 'active',
    points    INTEGER NOT NULL DEFAULT 0 CHECK (points >= 0),
    rev       INTEGER NOT NULL DEFAULT 0  -- the change counter when this member last changed (for deltas)
);
CREATE INDEX IF NOT EXISTS members_rev ON members(rev);
CREATE TABLE IF NOT EXISTS member_rev (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT OR IGNORE INTO member_rev VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS members_rev_ins AFTER INSERT ON members BEGIN
    UPDATE member_rev SET n = n + 1;
    UPDATE members SET rev = (SELECT n FROM member_rev) WHERE member_id = NEW.member_id;
END;
CREATE TRIGGER IF NOT EXISTS members_rev_upd AFTER UPDATE OF tier, status, points ON members BEGIN
    UPDATE member_rev SET n = n + 1;
    UPDATE members SET rev = (SELECT n FROM member_rev) WHERE member_id = NEW.member_id;
END;
CREATE TABLE IF NOT EXISTS identifiers (
    identifier TEXT PRIMARY KEY,
    member_id  TEXT NOT NULL REFERENCES members(member_id)
);
CREATE TRIGGER IF NOT EXISTS identifiers_rev AFTER INSERT ON identifiers BEGIN
    UPDATE member_rev SET n = n + 1;
    UPDATE members SET rev = (SELECT n FROM member_rev) WHERE member_id = NEW.member_id;
END;
CREATE TABLE IF NOT EXISTS transactions (
    txn_id      TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    body        TEXT NOT NULL,
    received_at TEXT NOT NULL,
    UNIQUE (terminal_id, seq)
);
CREATE TABLE IF NOT EXISTS terminals (
    terminal_id TEXT PRIMARY KEY,
    high_seq    INTEGER NOT NULL DEFAULT 0,
    public_key  TEXT
);
CREATE TABLE IF NOT EXISTS reservations (
    reservation TEXT PRIMARY KEY,
    member_id   TEXT NOT NULL,
    points      INTEGER NOT NULL CHECK (points > 0),
    txn_id      TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS coupon_redemptions (
    instance    TEXT PRIMARY KEY,
    txn_id      TEXT NOT NULL,
    terminal_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_coupons (
    instance   TEXT PRIMARY KEY,  -- <coupon id>:<instance>
    revoked_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS conflicts (
    id          INTEGER PRIMARY KEY,
    txn_id      TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class LedgerStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        wallet.upgrade(self._conn)
        chain_check.upgrade(self._conn)
        self._lock = threading.Lock()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                try:
                    return fn(self._conn)
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise

        return await asyncio.to_thread(call)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- rules and members -------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str) -> Any:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def upsert_member(self, member: MemberEntry) -> None:
        self.upsert_members([member])

    def upsert_members(self, members: list[MemberEntry]) -> None:
        """Add or update members (tier, status; a new member's opening wallet) in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for m in members:
                    new = not self._conn.execute("SELECT 1 FROM members WHERE member_id = ?", (m.member_id,)).fetchone()
                    self._conn.execute(
                        "INSERT INTO members (member_id, tier, status, wallet) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (member_id) DO UPDATE SET tier = excluded.tier, status = excluded.status",
                        (m.member_id, m.tier, m.status, m.wallet if new else 0),
                    )
                    if new:
                        postings.opening(self._conn, m.member_id, m.wallet)  # stored value brought in
                self._conn.executemany(
                    "INSERT OR REPLACE INTO identifiers (identifier, member_id) VALUES (?, ?)",
                    [(i, m.member_id) for m in members for i in m.identifiers],
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @staticmethod
    def _members(conn: sqlite3.Connection, identifier: str | None = None, since: int = 0) -> list[MemberEntry]:
        """Every member changed after revision ``since``, or only the one carrying ``identifier``."""
        rows = conn.execute(
            "SELECT m.member_id, m.tier, m.status, group_concat(i.identifier, ' '), m.points, m.wallet FROM members m "
            "LEFT JOIN identifiers i USING (member_id) "
            "WHERE (?1 IS NULL OR m.member_id = (SELECT member_id FROM identifiers WHERE identifier = ?1)) "
            "AND m.rev > ?2 GROUP BY m.member_id ORDER BY m.member_id",
            (identifier, since),
        ).fetchall()
        return [
            MemberEntry(mid, tier, status, tuple(sorted((ids or "").split())), points, balance)
            for mid, tier, status, ids, points, balance in rows
        ]

    async def member_revision(self) -> int:
        return await self._run(lambda conn: int(conn.execute("SELECT n FROM member_rev").fetchone()[0]))

    async def members(self, since: int = 0) -> tuple[int, list[MemberEntry]]:
        """The current revision and the members changed after ``since`` (0: all of them)."""

        def members(conn: sqlite3.Connection) -> tuple[int, list[MemberEntry]]:
            (rev,) = conn.execute("SELECT n FROM member_rev").fetchone()
            return int(rev), self._members(conn, None, since)

        return await self._run(members)

    def add_identifier_now(self, member_id: str, identifier: str) -> None:
        """At start-up (seeding): register an identifier, replacing any earlier owner."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO identifiers (identifier, member_id) VALUES (?, ?)", (identifier, member_id)
            )

    async def add_identifier(self, member_id: str, identifier: str) -> bool:
        """Register a new card (or other identifier) to a member; False if no such member."""

        def add(conn: sqlite3.Connection) -> bool:
            if conn.execute("SELECT 1 FROM members WHERE member_id = ?", (member_id,)).fetchone() is None:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO identifiers (identifier, member_id) VALUES (?, ?)", (identifier, member_id)
            )
            return True

        return await self._run(add)

    async def member_by_identifier(self, identifier: str) -> MemberEntry | None:
        def find(conn: sqlite3.Connection) -> MemberEntry | None:
            found = self._members(conn, identifier)
            return found[0] if found else None

        return await self._run(find)

    async def member_account(self, member_id: str) -> dict[str, Any] | None:
        def account(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                "SELECT member_id, tier, status, points, wallet FROM members WHERE member_id = ?", (member_id,)
            ).fetchone()
            keys = ("member_id", "tier", "status", "points", "wallet")
            return None if row is None else dict(zip(keys, row, strict=True))

        return await self._run(account)

    # -- sync ----------------------------------------------------------------

    async def ingest(self, terminal_id: str, records: list[TransactionRecord], seals: list[str | None]) -> SyncReply:
        """Apply a batch in one transaction; ``seals`` says, per record, why its own seal fails (None: it holds)."""
        now = datetime.now(UTC).isoformat()

        def ingest(conn: sqlite3.Connection) -> SyncReply:
            conn.execute("BEGIN IMMEDIATE")
            results = [self._ingest_one(conn, r, seal, now) for r, seal in zip(records, seals, strict=True)]
            conn.execute("INSERT OR IGNORE INTO terminals (terminal_id) VALUES (?)", (terminal_id,))
            (high,) = conn.execute("SELECT high_seq FROM terminals WHERE terminal_id = ?", (terminal_id,)).fetchone()
            while conn.execute(
                "SELECT 1 FROM transactions WHERE terminal_id = ? AND seq = ?", (terminal_id, high + 1)
            ).fetchone():
                high += 1
            conn.execute("UPDATE terminals SET high_seq = ? WHERE terminal_id = ?", (high, terminal_id))
            missing = chain_check.gaps(conn, terminal_id)
            conn.execute("COMMIT")
            return SyncReply(tuple(results), high, tuple(missing))

        return await self._run(ingest)

    @staticmethod
    def _ingest_one(conn: sqlite3.Connection, r: TransactionRecord, seal: str | None, now: str) -> SyncResult:
        if conn.execute("SELECT 1 FROM transactions WHERE txn_id = ?", (r.txn_id,)).fetchone():
            return SyncResult(r.txn_id, r.seq, "duplicate")
        if conn.execute(
            "SELECT 1 FROM transactions WHERE terminal_id = ? AND seq = ?", (r.terminal_id, r.seq)
        ).fetchone():
            return SyncResult(r.txn_id, r.seq, "rejected", f"seq {r.seq} already holds another transaction")
        if reason := seal or chain_check.link_refusal(conn, r):
            return SyncResult(r.txn_id, r.seq, "rejected", reason)
        conn.execute(
            "INSERT INTO transactions (txn_id, terminal_id, seq, body, received_at, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (r.txn_id, r.terminal_id, r.seq, json.dumps(r.to_wire()), now, r.prev_hash, r.hash),
        )
        if r.reservation:  # the hold becomes the spend itself (second half of the two phases)
            conn.execute("DELETE FROM reservations WHERE reservation = ? AND txn_id = ?", (r.reservation, r.txn_id))
        conflicts = [c for c in (LedgerStore._redeem(conn, r, c) for c in r.coupons) if c]
        conflicts += wallet.post(conn, r)
        for instance in r.coupons_restored:  # a full refund gives the coupon back
            conn.execute("DELETE FROM coupon_redemptions WHERE instance = ? AND txn_id = ?", (instance, r.refund_of))
        delta = r.points_earned - r.points_redeemed + r.points_returned - r.points_clawback
        known = r.member_id and conn.execute("SELECT 1 FROM members WHERE member_id = ?", (r.member_id,)).fetchone()
        # Double entry; spending beyond the balance posts the shortfall to the mall's overdraft.
        if (
            r.member_id
            and delta
            and known
            and (shortfall := postings.move(conn, r.txn_id, r.member_id, "points", delta))
        ):
            conflicts.append(f"points overdrawn by {shortfall} (spent offline twice?)")
        for text in conflicts:
            conn.execute(
                "INSERT INTO conflicts (txn_id, terminal_id, detail) VALUES (?, ?, ?)", (r.txn_id, r.terminal_id, text)
            )
        # The sale stands (money changed hands); a conflict is for the mall to settle, never dropped.
        return SyncResult(r.txn_id, r.seq, "accepted", "; ".join(f"conflict: {c}" for c in conflicts) or None)

    async def revoke_coupon(self, instance: str) -> list[str]:
        """Withdraw a coupon copy; return every copy withdrawn so far (for the terminals)."""

        def revoke(conn: sqlite3.Connection) -> list[str]:
            conn.execute(
                "INSERT OR IGNORE INTO revoked_coupons VALUES (?, ?)", (instance, datetime.now(UTC).isoformat())
            )
            return [i for (i,) in conn.execute("SELECT instance FROM revoked_coupons ORDER BY instance")]

        return await self._run(revoke)

    async def revoked_coupons(self) -> list[str]:
        return await self._run(
            lambda conn: [i for (i,) in conn.execute("SELECT instance FROM revoked_coupons ORDER BY instance")]
        )

    @staticmethod
    def _redeem(conn: sqlite3.Connection, r: TransactionRecord, instance: str) -> str | None:
        row = conn.execute(
            "SELECT txn_id, terminal_id FROM coupon_redemptions WHERE instance = ?", (instance,)
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO coupon_redemptions (instance, txn_id, terminal_id) VALUES (?, ?, ?)",
                (instance, r.txn_id, r.terminal_id),
            )
            revoked = conn.execute("SELECT 1 FROM revoked_coupons WHERE instance = ?", (instance,)).fetchone()
            return f"coupon {instance} was redeemed after the mall revoked it" if revoked else None
        return f"coupon {instance} was already redeemed by {row[0]} at {row[1]}"

    async def reserve(
        self, member_id: str, points: int, txn_id: str, terminal_id: str, ttl_seconds: float
    ) -> str | None:
        """Hold points of a member's balance; ``None`` when the balance (less other holds) is short."""
        now = time.time()

        def reserve(conn: sqlite3.Connection) -> str | None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM reservations WHERE expires_at < ?", (now,))
            row = conn.execute("SELECT points FROM members WHERE member_id = ?", (member_id,)).fetchone()
            (held,) = conn.execute(
                "SELECT COALESCE(SUM(points), 0) FROM reservations WHERE member_id = ?", (member_id,)
            ).fetchone()
            if row is None or row[0] - held < points:
                conn.execute("ROLLBACK")
                return None
            reservation = secrets.token_hex(12)
            conn.execute(
                "INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?)",
                (reservation, member_id, points, txn_id, terminal_id, now + ttl_seconds),
            )
            conn.execute("COMMIT")
            return reservation

        return await self._run(reserve)

    async def hold_wallet(self, member_id: str, amount: int, ref: str, terminal_id: str) -> tuple[bool, int]:
        return await self._run(lambda conn: wallet.hold(conn, member_id, amount, ref, terminal_id))

    async def wallet_hold_state(self, ref: str) -> str:
        return await self._run(lambda conn: wallet.state(conn, ref))

    async def release_wallet(self, ref: str) -> None:
        await self._run(lambda conn: wallet.release(conn, ref))

    async def release(self, reservation: str) -> None:
        await self._run(lambda conn: conn.execute("DELETE FROM reservations WHERE reservation = ?", (reservation,)))

    async def available_points(self, member_id: str) -> int:
        def available(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT m.points - COALESCE((SELECT SUM(points) FROM reservations r WHERE r.member_id = m.member_id "
                "AND r.expires_at >= ?), 0) FROM members m WHERE member_id = ?",
                (time.time(), member_id),
            ).fetchone()
            return 0 if row is None else int(row[0])

        return await self._run(available)

    async def conflicts(self) -> list[dict[str, str]]:
        def rows(conn: sqlite3.Connection) -> list[dict[str, str]]:
            found = conn.execute("SELECT txn_id, terminal_id, detail FROM conflicts ORDER BY id")
            return [{"txn_id": t, "terminal_id": term, "detail": d} for t, term, d in found]

        return await self._run(rows)

    async def register_terminal_key(self, terminal_id: str, public_key: str) -> bool:
        """Record a terminal's signing key; the first key wins, a different one is refused."""

        def register(conn: sqlite3.Connection) -> bool:
            conn.execute("INSERT OR IGNORE INTO terminals (terminal_id) VALUES (?)", (terminal_id,))
            conn.execute(
                "UPDATE terminals SET public_key = ? WHERE terminal_id = ? AND public_key IS NULL",
                (public_key, terminal_id),
            )
            (stored,) = conn.execute(
                "SELECT public_key FROM terminals WHERE terminal_id = ?", (terminal_id,)
            ).fetchone()
            return bool(stored == public_key)

        return await self._run(register)

    async def records_of_day(self, day: str) -> list[dict[str, Any]]:
        """Every record the ledger holds that a terminal made on ``day`` (UTC, YYYY-MM-DD)."""

        def records(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT body FROM transactions WHERE substr(json_extract(body, '$.created_at'), 1, 10) = ? "
                "ORDER BY terminal_id, seq",
                (day,),
            )
            return [json.loads(body) for (body,) in rows]

        return await self._run(records)

    async def member_history(self, member_id: str) -> list[dict[str, Any]]:
        """A member's points and stored-value postings, oldest first, with the record each came from."""

        def history(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT CASE p.unit WHEN 'points' THEN 'points' ELSE 'wallet' END, p.amount, p.txn_id, "
                "COALESCE(json_extract(t.body, '$.created_at'), ''), "
                "COALESCE(json_extract(t.body, '$.kind'), "
                "CASE WHEN p.txn_id LIKE 'expiry:%' THEN 'expiry' ELSE 'opening' END), "
                "COALESCE(t.terminal_id, '-') FROM postings p LEFT JOIN transactions t USING (txn_id) "
                "WHERE p.account IN (?, ?) ORDER BY p.id",
                (postings.member_account(member_id, "points"), postings.member_account(member_id, "fen")),
            )
            keys = ("account", "amount", "txn_id", "created_at", "kind", "terminal_id")
            return [dict(zip(keys, row, strict=True)) for row in rows]

        return await self._run(history)

    async def expire_points(self, cutoff: str) -> dict[str, int]:
        """Year-end clearing: points earned before ``cutoff`` and still unspent lapse (``ledger/postings.py``)."""

        def expire(conn: sqlite3.Connection) -> dict[str, int]:
            conn.execute("BEGIN IMMEDIATE")
            expired = postings.expire_points(conn, cutoff)
            conn.execute("COMMIT")
            return expired

        return await self._run(expire)

    async def check(self) -> list[postings.CheckProblem]:
        """The double-entry invariants (``ledger/postings.py``): empty when the books hold."""
        return await self._run(postings.check)

    async def terminal_key(self, terminal_id: str) -> str | None:
        def key(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT public_key FROM terminals WHERE terminal_id = ?", (terminal_id,)).fetchone()
            return None if row is None or row[0] is None else str(row[0])

        return await self._run(key)

    async def terminal_records(self, terminal_id: str) -> list[dict[str, Any]]:
        def records(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute("SELECT body FROM transactions WHERE terminal_id = ? ORDER BY seq", (terminal_id,))
            return [json.loads(body) for (body,) in rows]

        return await self._run(records)
