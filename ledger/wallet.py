"""The member's stored-value wallet at the ledger: balances and holds.

A payment from the wallet is two-phase, like points: the terminal holds the
amount (keyed by its payment reference) before it tells the cashier "paid";
the sale record's ``wallet`` tender then debits the balance and consumes the
hold (``ingest.py``). Only a sale record ever debits a wallet: a hold whose sale never comes
lapses by itself, so a payment the terminal could not confirm is given back
even if the ledger cannot be reached to release it. A balance never goes
below zero; a sale that would take it there (spent twice offline) is accepted
with a conflict for the mall to settle.
"""

from __future__ import annotations

import time

from ledger.database import Tx

HOLD_TTL = 600.0  # seconds a wallet hold lasts if its sale never arrives


async def available(tx: Tx, member_id: str, now_seconds: float) -> int | None:
    """The balance less live holds (at Unix time ``now_seconds``); None for an unknown member."""
    row = await tx.one("SELECT wallet FROM members WHERE member_id = $1", member_id)
    if row is None:
        return None
    held = await tx.one(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM wallet_holds WHERE member_id = $1 AND expires_at >= $2",
        member_id,
        now_seconds,
    )
    return int(row[0]) - (int(held[0]) if held else 0)


async def hold(tx: Tx, member_id: str, amount: int, ref: str, terminal_id: str) -> tuple[bool, int]:
    """Hold ``amount`` for payment ``ref`` (the same ref again is the same hold); (held, available after).

    Must run in a write transaction (reading the balance, then holding it).
    """
    now = time.time()
    await tx.run("DELETE FROM wallet_holds WHERE expires_at < $1", now)
    earlier = await tx.one("SELECT member_id, amount FROM wallet_holds WHERE ref = $1", ref)
    left = await available(tx, member_id, now)
    if earlier is not None:
        return (earlier[0] == member_id and earlier[1] == amount), left or 0
    if left is None or left < amount:
        return False, max(left or 0, 0)
    await tx.run(
        "INSERT INTO wallet_holds VALUES ($1, $2, $3, $4, $5)", ref, member_id, amount, terminal_id, now + HOLD_TTL
    )
    return True, left - amount


async def state(tx: Tx, ref: str) -> str:
    """``spent`` (a sale paid with it arrived), ``held``, or ``none``."""
    if await tx.one("SELECT 1 FROM postings WHERE ref = $1 AND unit = 'fen'", ref):
        return "spent"
    row = await tx.one("SELECT 1 FROM wallet_holds WHERE ref = $1 AND expires_at >= $2", ref, time.time())
    return "held" if row else "none"


async def release(tx: Tx, ref: str) -> None:
    await tx.run("DELETE FROM wallet_holds WHERE ref = $1", ref)
