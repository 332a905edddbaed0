"""Versioned schema migrations for the journal (``PRAGMA user_version``).

Each migration runs in one transaction with the version bump, so a crash
mid-migration leaves the previous version intact. A file written by a newer
posgw is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3

from offline_queue.errors import JournalCorruptError

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE journal (
            seq         INTEGER PRIMARY KEY,
            txn_id      TEXT NOT NULL UNIQUE,
            created_at  TEXT NOT NULL,
            currency    TEXT NOT NULL,
            amount      INTEGER NOT NULL,
            body        BLOB NOT NULL,
            prev_hash   BLOB NOT NULL,
            hash        BLOB NOT NULL,
            signature   BLOB NOT NULL,
            personal    TEXT,
            sync_status TEXT,
            sync_reason TEXT,
            synced_at   TEXT
        );
        CREATE INDEX journal_pending ON journal(seq) WHERE sync_status IS NULL;
        CREATE TABLE idempotency (
            key         TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            txn_id      TEXT NOT NULL
        );
        CREATE TABLE checkpoints (
            seq        INTEGER PRIMARY KEY,
            hash       BLOB NOT NULL,
            signature  BLOB NOT NULL,
            created_at TEXT NOT NULL,
            compacted  INTEGER NOT NULL
        );
        """,
    ),
    (
        2,
        """
        CREATE TABLE redeemed_coupons (
            instance TEXT PRIMARY KEY,
            txn_id   TEXT NOT NULL
        );
        """,
    ),
    (
        3,
        """
        CREATE TABLE used_member_codes (
            nonce  TEXT PRIMARY KEY,
            txn_id TEXT NOT NULL
        );
        """,
    ),
    (
        4,
        # Payment intents: written before a payment request leaves the terminal,
        # settled by the sale that used them (txn_id) in the sale's own commit.
        """
        CREATE TABLE payments (
            payment_id      TEXT PRIMARY KEY,
            basket_id       TEXT NOT NULL,
            idempotency_key TEXT NOT NULL UNIQUE,
            wallet          TEXT NOT NULL,
            provider        TEXT NOT NULL,
            code_hint       TEXT NOT NULL,
            amount          INTEGER NOT NULL,
            currency        TEXT NOT NULL,
            state           TEXT NOT NULL,
            history         TEXT NOT NULL,
            created_at      TEXT NOT NULL,
            updated_at      TEXT NOT NULL,
            txn_id          TEXT,
            detail          TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX payments_open ON payments(state) WHERE txn_id IS NULL;
        """,
    ),
    (
        5,
        # Customers this till enrolled (join records): known here at once and after a restart, until the
        # ledger's signed member list carries them (or the one they turned out to be). No tier: a till
        # enrols only in the rulebook's joining tier, and nothing on disk decides a price.
        """
        CREATE TABLE joined_members (
            member_id  TEXT PRIMARY KEY,
            identifier TEXT NOT NULL UNIQUE,
            txn_id     TEXT NOT NULL
        );
        """,
    ),
]
LATEST = MIGRATIONS[-1][0]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to the latest schema; return the version it was at."""
    (found,) = conn.execute("PRAGMA user_version").fetchone()
    if found > LATEST:
        raise JournalCorruptError(f"the journal has schema {found}, newer than this posgw knows ({LATEST}); upgrade")
    for version, sql in MIGRATIONS:
        if version <= found:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return int(found)
