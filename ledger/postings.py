"""Double entry: every change to a balance is a set of postings that sums to zero.

Two units are kept apart, ``points`` and ``fen`` (stored value). Accounts:

| account | holds |
|---|---|
| ``member:<id>:points`` | a member's points |
| ``member:<id>:wallet`` | a member's stored value, in fen |
| ``mall:points`` | the mall's side of every point earned or spent (its liability, negated) |
| ``mall:wallet`` | the mall's side of stored value sold, given as a bonus, paid at tills, given back or lapsed |
| ``mall:opening`` | balances brought in when members are loaded |
| ``mall:overdraft`` | what members spent twice offline beyond their balance: a loss for the mall to settle |
| ``mall:expired`` | points that lapsed unspent (year-end clearing) |

A member's balance columns are a cache of their accounts, kept in the same
transaction as the postings; :func:`check` proves both, and that every
posting set sums to zero. A balance never goes below zero: spending beyond
it (two offline terminals) posts the shortfall to ``mall:overdraft`` — the
compensating posting — and the sale is recorded with a conflict.

Every posting says what moved (``kind``), so the points books and the day
report count the same things: points ``earn`` (issued), ``clawback`` (a
refund takes back what its units earned), ``offset`` and ``exchange``
(redeemed; ``spend`` for records too old to say which), ``return`` (a refund
gives back what its units consumed), ``expiry``, ``overdraft``, ``netted``
(moved before postings said what moved, by no record the ledger holds); stored value
``opening``, ``topup`` (sold), ``bonus`` (a top-up's bonus, ``ledger/wallet_grants.py``),
``topup-refund`` and ``bonus-back`` (a top-up given back, and its bonus with it), ``pay``, ``refund``,
``expiry`` (a bonus lapsed), ``overdraft``; gift cards (``giftcard:<number>`` against ``mall:giftcards``,
``ledger/gift_cards.py``) ``gc-load``, ``gc-unload``, ``gc-pay``, ``gc-refund``, ``gc-expiry``. The mall's side of each
carries the amount the record names; the member's side what their balance
could give. Points conservation (:func:`points_books`)::

    outstanding = issued − clawed back − redeemed + returned − expired + overdrawn + netted
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ledger.database import Tx, marks
from protocols.business_day import day_bounds

_COLUMN = {"points": "points", "fen": "wallet"}
_MALL = {"points": "mall:points", "fen": "mall:wallet"}


def member_account(member_id: str, unit: str) -> str:
    return f"member:{member_id}:{'points' if unit == 'points' else 'wallet'}"


COLUMNS = ("txn_id", "ref", "account", "unit", "amount", "kind")
INSERT = "INSERT INTO postings (txn_id, ref, account, unit, amount, kind) VALUES ($1, $2, $3, $4, $5, $6)"
PostingRow = tuple[str, str | None, str, str, int, str]
POINTS_CREDITS = ("earn", "return")  # applied before a record's debits, so netting never changes the floor
POINTS_DEBITS = ("offset", "exchange", "spend", "clawback")


def plan(
    txn_id: str, member_id: str, unit: str, balance: int, delta: int, kind: str, ref: str | None = None
) -> tuple[int, int, list[PostingRow]]:
    """Change a member's ``balance`` by ``delta`` against the mall: (applied, shortfall, posting rows).

    The shortfall (> 0 only when spending more than the member has) is posted
    to ``mall:overdraft``; the member's balance moves by ``applied`` and stays
    at or above zero. The rows are for :data:`INSERT`, in the caller's transaction.
    """
    applied = max(delta, -balance)
    shortfall = applied - delta
    rows = [(member_account(member_id, unit), applied, kind), (_MALL[unit], -delta, kind)]
    if shortfall:
        rows.append(("mall:overdraft", -shortfall, "overdraft"))
    return applied, shortfall, [(txn_id, ref, account, unit, amount, k) for account, amount, k in rows]


async def opening(tx: Tx, member_id: str, wallet: int) -> None:
    """A member loaded with stored value already on it."""
    if wallet:
        await tx.many(
            "INSERT INTO postings (txn_id, ref, account, unit, amount, kind) "
            "VALUES ($1, NULL, $2, 'fen', $3, 'opening')",
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
    problems += [
        CheckProblem(f"gift card {number}: balance {cached} but its postings say {posted}")
        for number, cached, posted in await tx.all(
            "SELECT g.number, g.balance, CAST(COALESCE(SUM(p.amount), 0) AS BIGINT) FROM gift_cards g "
            "LEFT JOIN postings p ON p.account = 'giftcard:' || g.number AND p.unit = 'fen' "
            "GROUP BY g.number, g.balance HAVING g.balance != COALESCE(SUM(p.amount), 0)"
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


async def expire_points(tx: Tx, cutoff: str, zone: str) -> dict[str, int]:
    """Points earned before the mall's day ``cutoff`` (ISO date, its midnight in ``zone``) and not spent
    since expire; return expired by member.

    Spending uses the oldest points first, so what expires is what was earned
    before the cutoff less everything spent (and expired) so far. One posting
    set per member, ``expiry:<cutoff>:<member>``: running it again expires
    nothing more. Must run inside the caller's transaction.
    """
    before, _ = day_bounds(cutoff, zone)
    expired: dict[str, int] = {}
    rows = await tx.all(
        "SELECT m.member_id, m.points, "
        "CAST(COALESCE((SELECT SUM(p.amount) FROM postings p JOIN transactions t USING (txn_id) "
        "  WHERE p.account = 'member:' || m.member_id || ':points' AND p.amount > 0 "
        "  AND t.created_at < $1), 0) AS BIGINT), "
        "CAST(COALESCE((SELECT -SUM(p.amount) FROM postings p "
        "  WHERE p.account = 'member:' || m.member_id || ':points' AND p.amount < 0), 0) AS BIGINT) "
        "FROM members m WHERE m.points > 0",
        before,
    )
    for member_id, balance, earned_before, used in rows:
        txn_id = f"expiry:{cutoff}:{member_id}"
        if await tx.one("SELECT 1 FROM postings WHERE txn_id = $1", txn_id):
            continue
        lapsing = min(int(balance), max(0, int(earned_before) - int(used)))
        if lapsing:
            await tx.many(
                "INSERT INTO postings (txn_id, account, unit, amount, kind) VALUES ($1, $2, 'points', $3, 'expiry')",
                [(txn_id, member_account(member_id, "points"), -lapsing), (txn_id, "mall:expired", lapsing)],
            )
            await tx.run("UPDATE members SET points = points - $1 WHERE member_id = $2", lapsing, member_id)
            expired[member_id] = lapsing
    return expired


async def upgrade_kinds(tx: Tx) -> int:
    """Books from before postings said what moved: each record's netted points postings split into
    earned, spent, clawed back and returned (from the record itself), stored value named by its sign.
    Every member's balance stays what it was; returns the postings rewritten (0 once done)."""
    if await tx.one("SELECT 1 FROM postings WHERE kind IS NULL LIMIT 1") is None:
        return 0
    done = 0
    for kind, where in (
        ("opening", "txn_id LIKE 'opening:%'"),
        ("expiry", "txn_id LIKE 'expiry:%'"),
        ("overdraft", "unit = 'fen' AND account = 'mall:overdraft'"),
        (
            "pay",
            "unit = 'fen' AND ((account LIKE 'member:%' AND amount < 0) OR (account = 'mall:wallet' AND amount > 0))",
        ),
        ("refund", "unit = 'fen'"),
    ):
        await tx.run(f"UPDATE postings SET kind = $1 WHERE kind IS NULL AND {where}", kind)  # noqa: S608
    # Points moved by something other than a record the ledger holds (a file older still): kept as they are.
    await tx.run(
        "UPDATE postings SET kind = 'netted' WHERE kind IS NULL AND txn_id NOT IN (SELECT txn_id FROM transactions)"
    )
    txns = [str(t) for (t,) in await tx.all("SELECT DISTINCT txn_id FROM postings WHERE kind IS NULL")]
    for start in range(0, len(txns), 500):
        chunk = txns[start : start + 500]
        rows = await tx.all(
            f"SELECT txn_id, account, amount FROM postings WHERE kind IS NULL AND txn_id IN ({marks(len(chunk))})",  # noqa: S608
            *chunk,
        )
        held = f"SELECT txn_id, body FROM transactions WHERE txn_id IN ({marks(len(chunk))})"  # noqa: S608
        bodies = {str(t): json.loads(b) for t, b in await tx.all(held, *chunk)}
        split: list[PostingRow] = []
        members: dict[str, str] = {}
        shortfall: dict[str, int] = {}
        for txn_id, account, amount in rows:
            if str(account).startswith("member:"):
                members[str(txn_id)] = str(account)
            elif account == "mall:overdraft":
                shortfall[str(txn_id)] = -int(amount)
        for txn_id, account in members.items():
            body = bodies.get(txn_id, {})
            short = shortfall.get(txn_id, 0)
            earned, returned = int(body.get("points_earned", 0)), int(body.get("points_returned", 0))
            spent, clawed = int(body.get("points_redeemed", 0)), int(body.get("points_clawback", 0))
            spent_short = min(short, spent)
            for kind, mall, member in (
                ("earn", -earned, earned),
                ("return", -returned, returned),
                ("spend", spent, -(spent - spent_short)),
                ("clawback", clawed, -(clawed - (short - spent_short))),
                ("overdraft", -short, 0),
            ):
                if mall:
                    split.append(
                        (txn_id, None, "mall:overdraft" if kind == "overdraft" else "mall:points", "points", mall, kind)
                    )
                if member:
                    split.append((txn_id, None, account, "points", member, kind))
        await tx.run(f"DELETE FROM postings WHERE kind IS NULL AND txn_id IN ({marks(len(chunk))})", *chunk)  # noqa: S608
        await tx.many(INSERT, split)
        done += len(rows)
    return done
