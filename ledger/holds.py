"""One hold primitive for points and stored value: pending → posted | voided, with an expiry.

Spending at a till is two-phase when the ledger can be reached: the terminal
holds the amount first (points: a reservation the ledger names; stored
value: keyed by the terminal's payment id), and the sale record that spends
it *posts* the hold when it arrives. A hold the till gives up is *voided*. A
pending hold stops counting against the balance at its expiry, but it is
never deleted: a sale that arrives late still finds the hold it spent, and
the re-check at ingest (``ledger/recheck.py``) can tell a spend the ledger
authorised from one it never saw.

Only the terminal that placed a hold may void it or ask about it. Must run
in a write transaction where it writes (reading the balance, then holding).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ledger.database import Database, Row, Tx, marks

TTL = {"points": 120.0, "fen": 600.0}  # seconds a hold counts if its sale never arrives
_BALANCE = {"points": "points", "fen": "wallet"}


@dataclass(frozen=True, slots=True)
class Hold:
    ref: str
    unit: str
    member_id: str
    amount: int
    terminal_id: str
    txn_id: str | None
    state: str  # pending | posted | voided
    expires_at: float
    posted_by: str | None


_COLUMNS = "ref, unit, member_id, amount, terminal_id, txn_id, state, expires_at, posted_by"


def _hold(row: Row) -> Hold:
    ref, unit, member, amount, terminal, txn, state, expires, posted = row
    return Hold(str(ref), str(unit), str(member), int(str(amount)), str(terminal),
                None if txn is None else str(txn), str(state), float(str(expires)),
                None if posted is None else str(posted))  # fmt: skip


async def available(tx: Tx, member_id: str, unit: str, now: float) -> int | None:
    """The balance less pending holds not yet expired; None for an unknown member."""
    row = await tx.one(
        f"SELECT m.{_BALANCE[unit]} - CAST(COALESCE((SELECT SUM(h.amount) FROM holds h "  # noqa: S608
        "WHERE h.member_id = m.member_id AND h.unit = $1 AND h.state = 'pending' AND h.expires_at >= $2), 0) "
        "AS BIGINT) FROM members m WHERE m.member_id = $3",
        unit,
        now,
        member_id,
    )
    return None if row is None else int(row[0])


async def place(
    tx: Tx,
    ref: str,
    unit: str,
    member_id: str,
    amount: int,
    terminal_id: str,
    now: float,
    txn_id: str | None = None,
    ttl: float | None = None,
) -> tuple[bool, int]:
    """Hold ``amount`` of the member's ``unit`` for ``ttl`` seconds (default: the unit's ``TTL``); the same ref
    again is the same hold. (held, available after)."""
    earlier = await get(tx, ref)
    left = await available(tx, member_id, unit, now)
    if earlier is not None:
        same = (earlier.unit, earlier.member_id, earlier.amount, earlier.terminal_id, earlier.state) == (
            unit, member_id, amount, terminal_id, "pending",
        )  # fmt: skip
        return same, max(left or 0, 0)
    if left is None or left < amount:
        return False, max(left or 0, 0)
    await insert(tx, ref, unit, member_id, amount, terminal_id, now, txn_id, ttl)
    return True, left - amount


async def insert(
    tx: Tx,
    ref: str,
    unit: str,
    holder: str,
    amount: int,
    terminal_id: str,
    now: float,
    txn_id: str | None = None,
    ttl: float | None = None,
) -> None:
    """A pending hold, its balance checked by the caller (a member's: :func:`place`; a gift card's)."""
    await tx.run(
        f"INSERT INTO holds ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, NULL)",  # noqa: S608
        ref,
        unit,
        holder,
        amount,
        terminal_id,
        txn_id,
        now + (TTL[unit] if ttl is None else ttl),
    )


async def get(tx: Tx, ref: str) -> Hold | None:
    row = await tx.one(f"SELECT {_COLUMNS} FROM holds WHERE ref = $1", ref)  # noqa: S608
    return None if row is None else _hold(row)


async def of_refs(tx: Tx, refs: Sequence[str]) -> dict[str, Hold]:
    """The holds with these refs (for a group of records at ingest)."""
    if not refs:
        return {}
    rows = await tx.all(f"SELECT {_COLUMNS} FROM holds WHERE ref IN ({marks(len(refs))})", *refs)  # noqa: S608
    return {h.ref: h for h in map(_hold, rows)}


async def void(tx: Tx, ref: str, terminal_id: str) -> bool:
    """Give a pending hold up; False when no pending hold of this terminal has that ref."""
    held = await get(tx, ref)
    if held is None or held.terminal_id != terminal_id or held.state != "pending":
        return False
    await tx.run("UPDATE holds SET state = 'voided' WHERE ref = $1", ref)
    return True


async def state(tx: Tx, ref: str, now: float) -> str:
    """``spent`` (a record posted it, or paid with it), ``held``, or ``none``."""
    held = await get(tx, ref)
    if held is not None and held.state == "posted":
        return "spent"
    if await tx.one("SELECT 1 FROM postings WHERE ref = $1 AND unit = 'fen'", ref):
        return "spent"
    return "held" if held is not None and held.state == "pending" and held.expires_at >= now else "none"


POST = "UPDATE holds SET state = 'posted', posted_by = $1 WHERE ref = $2"


class HoldBook:
    """The store's facet for holds (``store.holds``): one primitive for points and stored value."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def reserve_points(self, member_id: str, points: int, txn_id: str, terminal_id: str) -> str | None:
        """Hold points of a member's balance for a sale; ``None`` when the balance (less other holds) is short."""
        ref = secrets.token_hex(12)

        async def reserve(tx: Tx) -> str | None:
            held, _ = await place(tx, ref, "points", member_id, points, terminal_id, time.time(), txn_id)
            return ref if held else None

        return await self.db.write(reserve)

    async def get(self, ref: str) -> Hold | None:
        return await self.db.read(lambda tx: get(tx, ref))

    async def void(self, ref: str, terminal_id: str) -> bool:
        """Give up a pending hold of this terminal's; False when it has none by that ref."""
        return await self.db.write(lambda tx: void(tx, ref, terminal_id))

    async def available(self, member_id: str, unit: str) -> int:
        """What a member may still hold or spend: the balance less live holds, never below nothing."""
        found = await self.db.read(lambda tx: available(tx, member_id, unit, time.time()))
        return max(0, found or 0)

    async def hold_wallet(
        self, member_id: str, amount: int, ref: str, terminal_id: str, code: str
    ) -> tuple[bool, int, str | None]:
        """Hold stored value for payment ``ref`` paid with the wallet code ``code`` (its ``kid:nonce``):
        (held, available after, the earlier use when the code already paid another payment)."""

        async def hold(tx: Tx) -> tuple[bool, int, str | None]:
            now = time.time()
            if earlier := await use_code(tx, code, member_id, terminal_id, ref, None, now):
                return False, await available(tx, member_id, "fen", now) or 0, f"payment {earlier}"
            held, left = await place(tx, ref, "fen", member_id, amount, terminal_id, now)
            return held, left, None

        return await self.db.write(hold)

    async def state(self, ref: str) -> str:
        return await self.db.read(lambda tx: state(tx, ref, time.time()))


async def use_code(
    tx: Tx, code: str, member_id: str, terminal_id: str, ref: str, txn_id: str | None, now: float
) -> str | None:
    """Mark a code used by ``ref`` (a payment; a sale, for a member code); what used it before
    (``<ref> at <terminal>``), when that was something else.

    The same payment again (a retried hold, its sale arriving) is the same
    use: the sale's id is noted on it.
    """
    row = await tx.one("SELECT ref, terminal_id FROM used_codes WHERE nonce = $1", code)
    if row is not None:
        if str(row[0]) != ref:
            return f"{row[0]} at {row[1]}"
        if txn_id is not None:
            await tx.run("UPDATE used_codes SET txn_id = $1 WHERE nonce = $2", txn_id, code)
        return None
    await tx.run(
        "INSERT INTO used_codes (nonce, member_id, terminal_id, ref, txn_id, used_at) VALUES ($1, $2, $3, $4, $5, $6)",
        code,
        member_id,
        terminal_id,
        ref,
        txn_id,
        datetime.fromtimestamp(now, UTC).isoformat(),
    )
    return None
