"""Customers who join at a till (开卡): the member the till made for them, confirmed or merged.

A till enrols a customer by phone number, online or offline alike, with a
signed ``join`` record in its chain: it names the member the till made,
``J-<terminal>-<n>`` (a till can make members only in its own namespace), and
the salted hash of the phone number (``joined``), never the number. The
customer's first sale names that member and earns at once.

When the ledger takes the join, the phone number is either nobody's yet (the
member is created as named, in the rulebook's joining tier, and every till
learns them with the next member delta) or already a member's: two tills
enrolled one person offline, or the cashier did not look the number up. Then
the till's member becomes an *alias* of the one who carried the number, and
every record naming it (the first sale, and any after it until the till's
cache learns) moves that member's balances. Nothing is created twice and
nothing earned is lost; each outcome is in the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ledger.database import Tx, marks
from ledger.identity import audit
from protocols.records import TransactionRecord


async def aliases(tx: Tx, member_ids: Iterable[str]) -> dict[str, str]:
    """Of ``member_ids``, those that are aliases (a till's member for someone already a member): alias → member."""
    joined = sorted({m for m in member_ids if m.startswith("J-")})
    if not joined:
        return {}
    rows = await tx.all(
        f"SELECT alias, member_id FROM member_aliases WHERE alias IN ({marks(len(joined))})",  # noqa: S608
        *joined,
    )
    return {str(a): str(m) for a, m in rows}


async def enrol(tx: Tx, r: TransactionRecord, now: datetime) -> str | None:
    """Take a believed join: create its member, or alias it to the member who carries its phone number
    already (returned; None when the member was created)."""
    assert r.member_id is not None
    assert r.joined is not None
    assert r.member_tier is not None
    actor = f"terminal:{r.terminal_id}"
    owner = await tx.one("SELECT member_id FROM identifiers WHERE identifier = $1", r.joined)
    if owner is not None:
        await tx.run(
            "INSERT INTO member_aliases (alias, member_id, txn_id, joined_at) VALUES ($1, $2, $3, $4)",
            r.member_id,
            str(owner[0]),
            r.txn_id,
            now.isoformat(),
        )
        await audit(tx, actor, "join-merged", r.member_id, {"into": str(owner[0]), "txn_id": r.txn_id})
        return str(owner[0])
    await tx.run("INSERT INTO members (member_id, tier, status) VALUES ($1, $2, 'active')", r.member_id, r.member_tier)
    await tx.run("INSERT INTO identifiers (identifier, member_id) VALUES ($1, $2)", r.joined, r.member_id)
    await audit(tx, actor, "join", r.member_id, {"tier": r.member_tier, "txn_id": r.txn_id})
    return None
