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

from dataclasses import dataclass

from ledger.database import Tx

_COLUMN = {"points": "points", "fen": "wallet"}
_MALL = {"points": "mall:points", "fen": "mall:wallet"}


def member_account(member_id: str, unit: str) -> str:
    return f"member:{member_id}:{'points' if unit == 'points' else 'wallet'}"


INSERT = "INSERT INTO postings (txn_id, ref, account, unit, amount) VALUES ($1, $2, $3, $4, $5)"


def plan(
    txn_id: str, member_id: str, unit: str, balance: int, delta: int, ref: str | None = None
) -> tuple[int, int, list[tuple[str, str | None, str, str, int]]]:
    """Change a member's ``balance`` by ``delta`` against the mall: (applied, shortfall, posting rows).

    The shortfall (> 0 only when spending more than the member has) is posted
    to ``mall:overdraft``; the member's balance moves by ``applied`` and stays
    at or above zero. The rows are for :data:`INSERT`, in the caller's transaction.
    """
    applied = max(delta, -balance)
    shortfall = applied - delta
    rows = [(member_account(member_id, unit), applied), (_MALL[unit], -delta)]
    if shortfall:
        rows.append(("mall:overdraft", -shortfall))
    return applied, shortfall, [(txn_id, ref, account, unit, amount) for account, amount in rows]


async def opening(tx: Tx, member_id: str, wallet: int) -> None:
    """A member loaded with stored value already on it."""
    if wallet:
        await tx.many(
            "INSERT INTO postings (txn_id, ref, account, unit, amount) VALUES ($1, NULL, $2, 'fen', $3)",
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


async def check(tx: Tx) -> list[CheckProblem]:
    """Every posting set sums to zero per unit, and every member's balances equal their accounts."""
    problems = [
        CheckProblem(f"postings of {txn_id} in {unit} sum to {total}, not 0")
        for txn_id, unit, total in await tx.all(
            "SELECT txn_id, unit, CAST(SUM(amount) AS BIGINT) FROM postings GROUP BY txn_id, unit "
            "HAVING SUM(amount) != 0"
        )
    ]
    for unit, column in _COLUMN.items():
        problems += [
            CheckProblem(f"member {member_id}: {column} {cached} but their postings say {posted}")
            for member_id, cached, posted in await tx.all(
                f"SELECT m.member_id, m.{column}, CAST(COALESCE(SUM(p.amount), 0) AS BIGINT) FROM members m "  # noqa: S608
                "LEFT JOIN postings p ON p.account = 'member:' || m.member_id || ':' || $1 AND p.unit = $2 "
                f"GROUP BY m.member_id, m.{column} HAVING m.{column} != COALESCE(SUM(p.amount), 0)",
                "points" if unit == "points" else "wallet",
                unit,
            )
        ]
    return problems


async def expire_points(tx: Tx, cutoff: str) -> dict[str, int]:
    """Points earned before ``cutoff`` (ISO date) and not spent since expire; return expired by member.

    Spending uses the oldest points first, so what expires is what was earned
    before the cutoff less everything spent (and expired) so far. One posting
    set per member, ``expiry:<cutoff>:<member>``: running it again expires
    nothing more. Must run inside the caller's transaction.
    """
    expired: dict[str, int] = {}
    rows = await tx.all(
        "SELECT m.member_id, m.points, "
        "CAST(COALESCE((SELECT SUM(p.amount) FROM postings p JOIN transactions t USING (txn_id) "
        "  WHERE p.account = 'member:' || m.member_id || ':points' AND p.amount > 0 "
        "  AND t.created_at < $1), 0) AS BIGINT), "
        "CAST(COALESCE((SELECT -SUM(p.amount) FROM postings p "
        "  WHERE p.account = 'member:' || m.member_id || ':points' AND p.amount < 0), 0) AS BIGINT) "
        "FROM members m WHERE m.points > 0",
        cutoff,
    )
    for member_id, balance, earned_before, used in rows:
        txn_id = f"expiry:{cutoff}:{member_id}"
        if await tx.one("SELECT 1 FROM postings WHERE txn_id = $1", txn_id):
            continue
        lapsing = min(int(balance), max(0, int(earned_before) - int(used)))
        if lapsing:
            await tx.many(
                "INSERT INTO postings (txn_id, account, unit, amount) VALUES ($1, $2, 'points', $3)",
                [(txn_id, member_account(member_id, "points"), -lapsing), (txn_id, "mall:expired", lapsing)],
            )
            await tx.run("UPDATE members SET points = points - $1 WHERE member_id = $2", lapsing, member_id)
            expired[member_id] = lapsing
    return expired
