"""Double entry: every change to a balance is a set of postings that sums to zero.

Two units are kept apart, ``points`` and ``fen`` (stored value). Accounts:

| account | holds |
|---|---|
| ``member:<id>:points`` | a member's points |
| ``member:<id>:wallet`` | a member's stored value, in fen |
| ``mall:points`` | the mall's side of every point earned or spent (its liability, negated) |
| ``mall:wallet`` | the mall's side of stored value paid at tills or given back |
| ``mall:opening`` | balances brought in when members are loaded |
| ``mall:overdraft`` | what members spent twice offline beyond their balance: a loss for the mall to settle |
| ``mall:expired`` | points that lapsed unspent (year-end clearing) |

A member's balance columns are a cache of their accounts, kept in the same
transaction as the postings; :func:`check` proves both, and that every
posting set sums to zero. A balance never goes below zero: spending beyond
it (two offline terminals) posts the shortfall to ``mall:overdraft`` — the
compensating posting — and the sale is recorded with a conflict.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS postings (
    id      INTEGER PRIMARY KEY,
    txn_id  TEXT NOT NULL,      -- the record (or "opening:<member>") the set belongs to
    ref     TEXT,               -- for stored value: the payment it settles
    account TEXT NOT NULL,
    unit    TEXT NOT NULL CHECK (unit IN ('points', 'fen')),
    amount  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS postings_account ON postings(account);
CREATE INDEX IF NOT EXISTS postings_txn ON postings(txn_id);
CREATE INDEX IF NOT EXISTS postings_ref ON postings(ref) WHERE ref IS NOT NULL;
"""

_COLUMN = {"points": "points", "fen": "wallet"}


def upgrade(conn: sqlite3.Connection) -> None:
    """Create the postings; a ledger file from before double entry gets its point postings paired up."""
    conn.executescript(SCHEMA)
    old = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'point_postings'").fetchone()
    if old and not conn.execute("SELECT 1 FROM postings LIMIT 1").fetchone():
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO postings (txn_id, account, unit, amount) "
            "SELECT txn_id, 'member:' || member_id || ':points', 'points', points FROM point_postings"
        )
        conn.execute(
            "INSERT INTO postings (txn_id, account, unit, amount) "
            "SELECT txn_id, 'mall:points', 'points', -points FROM point_postings"
        )
        conn.execute("COMMIT")


_MALL = {"points": "mall:points", "fen": "mall:wallet"}


def member_account(member_id: str, unit: str) -> str:
    return f"member:{member_id}:{'points' if unit == 'points' else 'wallet'}"


def move(conn: sqlite3.Connection, txn_id: str, member_id: str, unit: str, delta: int, ref: str | None = None) -> int:
    """Change a member's balance by ``delta`` against the mall; return the shortfall posted to overdraft (≥ 0).

    Must run inside the caller's transaction.
    """
    column = _COLUMN[unit]
    (balance,) = conn.execute(f"SELECT {column} FROM members WHERE member_id = ?", (member_id,)).fetchone()  # noqa: S608
    applied = max(delta, -int(balance))
    shortfall = applied - delta  # > 0 only when spending more than the member has
    rows = [(member_account(member_id, unit), applied), (_MALL[unit], -delta)]
    if shortfall:
        rows.append(("mall:overdraft", -shortfall))
    conn.executemany(
        "INSERT INTO postings (txn_id, ref, account, unit, amount) VALUES (?, ?, ?, ?, ?)",
        [(txn_id, ref, account, unit, amount) for account, amount in rows],
    )
    conn.execute(f"UPDATE members SET {column} = {column} + ? WHERE member_id = ?", (applied, member_id))  # noqa: S608
    return shortfall


def opening(conn: sqlite3.Connection, member_id: str, wallet: int) -> None:
    """A member loaded with stored value already on it."""
    if wallet:
        conn.executemany(
            "INSERT INTO postings (txn_id, ref, account, unit, amount) VALUES (?, NULL, ?, 'fen', ?)",
            [
                (f"opening:{member_id}", member_account(member_id, "fen"), wallet),
                (f"opening:{member_id}", "mall:opening", -wallet),
            ],
        )


@dataclass(frozen=True, slots=True)
class CheckProblem:
    what: str

    def __str__(self) -> str:
        return self.what


def check(conn: sqlite3.Connection) -> list[CheckProblem]:
    """Every posting set sums to zero per unit, and every member's balances equal their accounts."""
    problems = [
        CheckProblem(f"postings of {txn_id} in {unit} sum to {total}, not 0")
        for txn_id, unit, total in conn.execute(
            "SELECT txn_id, unit, SUM(amount) FROM postings GROUP BY txn_id, unit HAVING SUM(amount) != 0"
        )
    ]
    for unit, column in _COLUMN.items():
        problems += [
            CheckProblem(f"member {member_id}: {column} {cached} but their postings say {posted}")
            for member_id, cached, posted in conn.execute(
                f"SELECT m.member_id, m.{column}, COALESCE(SUM(p.amount), 0) FROM members m "  # noqa: S608
                "LEFT JOIN postings p ON p.account = 'member:' || m.member_id || ':' || ? AND p.unit = ? "
                f"GROUP BY m.member_id HAVING m.{column} != COALESCE(SUM(p.amount), 0)",
                ("points" if unit == "points" else "wallet", unit),
            )
        ]
    return problems


def expire_points(conn: sqlite3.Connection, cutoff: str) -> dict[str, int]:
    """Points earned before ``cutoff`` (ISO date) and not spent since expire; return expired by member.

    Spending uses the oldest points first, so what expires is what was earned
    before the cutoff less everything spent (and expired) so far. One posting
    set per member, ``expiry:<cutoff>:<member>``: running it again expires
    nothing more. Must run inside the caller's transaction.
    """
    expired: dict[str, int] = {}
    rows = conn.execute(
        "SELECT m.member_id, m.points, "
        "COALESCE((SELECT SUM(p.amount) FROM postings p JOIN transactions t USING (txn_id) "
        "  WHERE p.account = 'member:' || m.member_id || ':points' AND p.amount > 0 "
        "  AND json_extract(t.body, '$.created_at') < ?1), 0), "
        "COALESCE((SELECT -SUM(p.amount) FROM postings p "
        "  WHERE p.account = 'member:' || m.member_id || ':points' AND p.amount < 0), 0) "
        "FROM members m WHERE m.points > 0",
        (cutoff,),
    ).fetchall()
    for member_id, balance, earned_before, used in rows:
        txn_id = f"expiry:{cutoff}:{member_id}"
        if conn.execute("SELECT 1 FROM postings WHERE txn_id = ?", (txn_id,)).fetchone():
            continue
        lapsing = min(int(balance), max(0, int(earned_before) - int(used)))
        if lapsing:
            conn.executemany(
                "INSERT INTO postings (txn_id, account, unit, amount) VALUES (?, ?, 'points', ?)",
                [(txn_id, member_account(member_id, "points"), -lapsing), (txn_id, "mall:expired", lapsing)],
            )
            conn.execute("UPDATE members SET points = points - ? WHERE member_id = ?", (lapsing, member_id))
            expired[member_id] = lapsing
    return expired
