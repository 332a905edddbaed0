"""The member's stored-value wallet at the ledger: balances, holds, postings.

A payment from the wallet is two-phase, like points: the terminal holds the
amount (keyed by its payment reference) before it tells the cashier "paid";
the sale record's ``wallet`` tender then debits the balance and consumes the
hold. Only a sale record ever debits a wallet: a hold whose sale never comes
lapses by itself, so a payment the terminal could not confirm is given back
even if the ledger cannot be reached to release it. A balance never goes
below zero; a sale that would take it there (spent twice offline) is accepted
with a conflict for the mall to settle.
"""

from __future__ import annotations

import sqlite3
import time

from ledger import postings
from protocols.money import format_cny
from protocols.records import TransactionRecord

HOLD_TTL = 600.0  # seconds a wallet hold lasts if its sale never arrives

SCHEMA = """
CREATE TABLE IF NOT EXISTS wallet_holds (
    ref         TEXT PRIMARY KEY,  -- the terminal's payment id
    member_id   TEXT NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    terminal_id TEXT NOT NULL,
    expires_at  REAL NOT NULL
);
"""


def upgrade(conn: sqlite3.Connection) -> None:
    """Give a ledger file made before wallets its wallet column (and the revision trigger that sees it)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(members)")}
    if "wallet" not in columns:
        conn.execute("ALTER TABLE members ADD COLUMN wallet INTEGER NOT NULL DEFAULT 0 CHECK (wallet >= 0)")
    conn.executescript(
        """
        DROP TRIGGER IF EXISTS members_rev_upd;
        CREATE TRIGGER members_rev_upd AFTER UPDATE OF tier, status, points, wallet ON members BEGIN
            UPDATE member_rev SET n = n + 1;
            UPDATE members SET rev = (SELECT n FROM member_rev) WHERE member_id = NEW.member_id;
        END;
        """
    )
    conn.executescript(SCHEMA)
    postings.upgrade(conn)


def available(conn: sqlite3.Connection, member_id: str, now_seconds: float) -> int | None:
    """The balance less live holds (at Unix time ``now_seconds``); None for an unknown member."""
    row = conn.execute("SELECT wallet FROM members WHERE member_id = ?", (member_id,)).fetchone()
    if row is None:
        return None
    (held,) = conn.execute(
        "SELECT COALESCE(SUM(amount), 0) FROM wallet_holds WHERE member_id = ? AND expires_at >= ?",
        (member_id, now_seconds),
    ).fetchone()
    return int(row[0]) - int(held)


def hold(conn: sqlite3.Connection, member_id: str, amount: int, ref: str, terminal_id: str) -> tuple[bool, int]:
    """Hold ``amount`` for payment ``ref`` (the same ref again is the same hold); (held, available after)."""
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")  # rolled back by the store if anything below raises
    conn.execute("DELETE FROM wallet_holds WHERE expires_at < ?", (now,))
    earlier = conn.execute("SELECT member_id, amount FROM wallet_holds WHERE ref = ?", (ref,)).fetchone()
    left = available(conn, member_id, now)
    if earlier is not None:
        outcome = (earlier[0] == member_id and earlier[1] == amount), left or 0
    elif left is None or left < amount:
        outcome = False, max(left or 0, 0)
    else:
        conn.execute(
            "INSERT INTO wallet_holds VALUES (?, ?, ?, ?, ?)", (ref, member_id, amount, terminal_id, now + HOLD_TTL)
        )
        outcome = True, left - amount
    conn.execute("COMMIT")
    return outcome


def state(conn: sqlite3.Connection, ref: str) -> str:
    """``spent`` (a sale paid with it arrived), ``held``, or ``none``."""
    if conn.execute("SELECT 1 FROM postings WHERE ref = ? AND unit = 'fen'", (ref,)).fetchone():
        return "spent"
    row = conn.execute("SELECT 1 FROM wallet_holds WHERE ref = ? AND expires_at >= ?", (ref, time.time())).fetchone()
    return "held" if row else "none"


def release(conn: sqlite3.Connection, ref: str) -> None:
    conn.execute("DELETE FROM wallet_holds WHERE ref = ?", (ref,))


def post(conn: sqlite3.Connection, r: TransactionRecord) -> list[str]:
    """Inside a sync batch: apply the record's wallet tenders; return conflicts to record."""
    conflicts: list[str] = []
    sign = 1 if r.kind in ("refund", "void") else -1  # a refund's wallet tender gives the money back
    for tender in (t for t in r.tenders if t.kind == "wallet"):
        if r.member_id is None:
            conflicts.append(f"wallet tender {tender.ref} without a member")
            continue
        if conn.execute("SELECT 1 FROM members WHERE member_id = ?", (r.member_id,)).fetchone() is None:
            conflicts.append(f"wallet tender {tender.ref} for unknown member {r.member_id}")
            continue
        if shortfall := postings.move(conn, r.txn_id, r.member_id, "fen", sign * tender.amount, tender.ref):
            conflicts.append(f"wallet overdrawn by {format_cny(shortfall)} (spent twice offline?)")
        if tender.ref:
            release(conn, tender.ref)  # the hold becomes the spend itself
    return conflicts
