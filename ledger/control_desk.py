"""What an operator does about the mall's controls (``ledger/controls.py``), each with a reason and an audit entry:
release or reject earnings held for review, adjust a member's points or growth by hand, black-list a member.

A release credits what is still held as the sale's own ``earn`` (its day's
points figures count it), and its growth to the sale's year; a manual
adjustment is a posting set of kind ``adjust`` (``adjust:<id>``), in the
points books and the day report of the day it was made. A member's status
(``active``, ``frozen``, ``blacklisted``) reaches every till with the member
news (the member's next revision): a till refuses benefits to a member who
is not active, and the ledger holds what such a member earns meanwhile.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ledger import postings
from ledger.database import Tx
from ledger.identity import audit
from protocols.business_day import business_day, business_year
from protocols.errors import FinalError

STATUSES = ("active", "frozen", "blacklisted")


class ControlRefusedError(FinalError):
    """An operator's command that cannot be done (no such hold, already decided, an unknown member)."""

    code = "control-refused"


async def held(tx: Tx, state: str = "held") -> list[dict[str, Any]]:
    rows = await tx.all(
        "SELECT id, txn_id, member_id, points, growth, reason, day, state, held_at, decided_by, note "
        "FROM held_earnings WHERE state = $1 ORDER BY id",
        state,
    )
    keys = ("id", "txn_id", "member_id", "points", "growth", "reason", "day", "state", "held_at", "decided_by", "note")
    return [dict(zip(keys, row, strict=True)) for row in rows]


async def surges(tx: Tx, day: str | None = None) -> list[dict[str, Any]]:
    rows = await tx.all(
        "SELECT subject, day, points, earlier, txn_id, raised_at FROM surges WHERE $1 = '' OR day = $1 "
        "ORDER BY raised_at",
        day or "",
    )
    keys = ("subject", "day", "points", "earlier_30_days", "txn_id", "raised_at")
    return [dict(zip(keys, row, strict=True)) for row in rows]


async def decide(tx: Tx, held_id: int, release: bool, actor: str, note: str, zone: str) -> dict[str, Any]:
    """Release (credit) or reject what hold ``held_id`` still holds; the hold, as decided."""
    row = await tx.one("SELECT txn_id, member_id, points, growth, state FROM held_earnings WHERE id = $1", held_id)
    if row is None:
        raise ControlRefusedError(f"no earnings held under {held_id}")
    txn_id, member_id, points, growth, state = str(row[0]), str(row[1]), int(row[2]), int(row[3]), str(row[4])
    if state != "held":
        raise ControlRefusedError(f"hold {held_id} was {state} already")
    now = datetime.now(UTC).isoformat()
    if release:
        if points:
            await _move_points(tx, txn_id, member_id, points, "earn", f"review:{held_id}")
        if growth:
            sale = await tx.one("SELECT created_at FROM transactions WHERE txn_id = $1", txn_id)
            year = business_year(str(sale[0]), zone) if sale else business_day(now, zone).isoformat()[:4]
            await _add_growth(tx, member_id, year, growth)
    state = "released" if release else "rejected"
    await tx.run(
        "UPDATE held_earnings SET state = $1, decided_at = $2, decided_by = $3, note = $4 WHERE id = $5",
        state,
        now,
        actor,
        note,
        held_id,
    )
    await audit(tx, actor, f"held-{state}", member_id, {"id": held_id, "txn_id": txn_id, "points": points,
                                                          "growth": growth, "note": note})  # fmt: skip
    return {"id": held_id, "txn_id": txn_id, "member_id": member_id, "points": points, "growth": growth, "state": state}


async def adjust(tx: Tx, member_id: str, points: int, growth: int, actor: str, reason: str, zone: str) -> int:
    """An operator's adjustment of a member's points (either way, never below zero) and growth; its id."""
    if not points and not growth:
        raise ControlRefusedError("an adjustment moves points or growth: give --points or --growth")
    member = await tx.one("SELECT points FROM members WHERE member_id = $1", member_id)
    if member is None:
        raise ControlRefusedError(f"no member {member_id}")
    if int(member[0]) + points < 0:
        raise ControlRefusedError(f"member {member_id} holds {int(member[0]):,} points: {points:,} would go below zero")
    now = datetime.now(UTC).isoformat()
    day = business_day(now, zone)
    made = await tx.one(
        "INSERT INTO adjustments (member_id, points, growth, reason, actor, made_at, day) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        member_id,
        points,
        growth,
        reason,
        actor,
        now,
        day.isoformat(),
    )
    assert made is not None
    adjustment = int(made[0])
    if points:
        await _move_points(tx, f"adjust:{adjustment}", member_id, points, "adjust", None)
    if growth:
        await _add_growth(tx, member_id, str(day.year), growth)
    await audit(
        tx, actor, "adjust", member_id, {"id": adjustment, "points": points, "growth": growth, "reason": reason}
    )
    return adjustment


async def set_status(tx: Tx, member_id: str, status: str, actor: str, reason: str) -> str:
    """A member black-listed, frozen or made active again; the status they had."""
    if status not in STATUSES:
        raise ControlRefusedError(f"a member's status is one of {', '.join(STATUSES)}")
    row = await tx.one("SELECT status FROM members WHERE member_id = $1", member_id)
    if row is None:
        raise ControlRefusedError(f"no member {member_id}")
    await tx.run("UPDATE members SET status = $1 WHERE member_id = $2", status, member_id)
    await audit(tx, actor, "status", member_id, {"from": str(row[0]), "to": status, "reason": reason})
    return str(row[0])


async def _move_points(tx: Tx, txn_id: str, member_id: str, delta: int, kind: str, ref: str | None) -> None:
    row = await tx.one("SELECT points FROM members WHERE member_id = $1", member_id)
    assert row is not None
    applied, _, rows = postings.plan(txn_id, member_id, "points", int(row[0]), delta, kind, ref)
    await tx.many(postings.INSERT, rows)
    await tx.run("UPDATE members SET points = points + $1 WHERE member_id = $2", applied, member_id)


async def _add_growth(tx: Tx, member_id: str, year: str, growth: int) -> None:
    await tx.run(
        "INSERT INTO member_growth (member_id, year, growth) VALUES ($1, $2, $3) "
        "ON CONFLICT (member_id, year) DO UPDATE SET growth = member_growth.growth + excluded.growth",
        member_id,
        year,
        growth,
    )
    await tx.run("UPDATE members SET growth = growth + $1 WHERE member_id = $2", growth, member_id)
