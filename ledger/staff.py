"""The mall's staff at the ledger: added, given a new PIN, disabled, and served to tills signed.

Each change takes the next staff revision (``staff_rev``), which is the
version of the list a till holds (``protocols/staff.py``): a till refuses a
list older than its own, so a replayed list cannot bring back a PIN changed or
a cashier disabled. Disabled staff stay in the table: records name them for
ever, and the ledger's re-check (``ledger/staff_check.py``) knows who they were.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.database import Tx, marks
from protocols.errors import FinalError
from protocols.staff import ROLES, STAFF_ID, Policy, StaffEntry, hash_pin, staff_to_wire

POLICY_KEY = "staff_policy"


class StaffError(FinalError):
    """A staff change the ledger refuses: an unknown or duplicate id, a bad role or PIN."""

    code = "staff-refused"


@dataclass(frozen=True, slots=True)
class Member:
    """One of the staff as the ledger holds them (``active`` false: disabled)."""

    entry: StaffEntry
    active: bool
    changed_at: str
    changed_by: str


async def _bump(tx: Tx) -> int:
    await tx.run("UPDATE staff_rev SET n = n + 1 WHERE id = 1")
    row = await tx.one("SELECT n FROM staff_rev WHERE id = 1")
    assert row is not None
    return int(row[0])


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def add(tx: Tx, staff_id: str, name: str, role: str, pin: str, by: str) -> int:
    """A new member of staff; the list's new version."""
    if not re.fullmatch(STAFF_ID, staff_id):
        raise StaffError(f"a staff id is 1-32 letters, digits, '_', '.' or '-'; got {staff_id[:40]!r}")
    if role not in ROLES:
        raise StaffError(f"a role is one of {', '.join(ROLES)}; got {role!r}")
    if not name or len(name) > 64:
        raise StaffError("a name is 1 to 64 characters")
    if await tx.one("SELECT 1 FROM staff WHERE staff_id = $1", staff_id) is not None:
        raise StaffError(f"staff id {staff_id} exists (give it a new PIN with `staff pin`)")
    await tx.run(
        "INSERT INTO staff VALUES ($1, $2, $3, $4, 1, $5, $6)", staff_id, name, role, _pin_hash(pin), _now(), by
    )
    return await _bump(tx)


def _pin_hash(pin: str) -> str:
    try:
        return hash_pin(pin)
    except ValueError as err:
        raise StaffError(str(err)) from None


async def set_pin(tx: Tx, staff_id: str, pin: str, by: str) -> int:
    return await _change(tx, staff_id, "pin_hash", _pin_hash(pin), by)


async def set_active(tx: Tx, staff_id: str, active: bool, by: str) -> int:
    return await _change(tx, staff_id, "active", int(active), by)


async def _change(tx: Tx, staff_id: str, column: str, value: object, by: str) -> int:
    """One column of a staff member changed, who did it and when kept; the list's new version."""
    await _known(tx, staff_id)
    assert column in ("pin_hash", "active")  # never a caller's text in the statement
    await tx.run(
        f"UPDATE staff SET {column} = $2, changed_at = $3, changed_by = $4 WHERE staff_id = $1",  # noqa: S608
        staff_id,
        value,
        _now(),
        by,
    )
    return await _bump(tx)


async def set_policy(tx: Tx, policy: Policy) -> int:
    await tx.run(
        "INSERT INTO meta VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        POLICY_KEY,
        json.dumps(policy.to_wire()),
    )
    return await _bump(tx)


async def _known(tx: Tx, staff_id: str) -> None:
    if await tx.one("SELECT 1 FROM staff WHERE staff_id = $1", staff_id) is None:
        raise StaffError(f"no staff id {staff_id}")


async def policy(tx: Tx) -> Policy:
    row = await tx.one("SELECT value FROM meta WHERE key = $1", POLICY_KEY)
    if row is None:
        return Policy()
    wire: dict[str, Any] = json.loads(row[0])
    return Policy(int(wire["refund_above"]), int(wire["max_tries"]), int(wire["lockout_seconds"]))


async def everyone(tx: Tx) -> list[Member]:
    rows = await tx.all(
        "SELECT staff_id, name, role, pin_hash, active, changed_at, changed_by FROM staff ORDER BY staff_id"
    )
    return [
        Member(StaffEntry(str(s), str(n), str(r), str(h)), bool(a), str(at), str(by)) for s, n, r, h, a, at, by in rows
    ]


async def roles(tx: Tx, ids: list[str]) -> dict[str, str]:
    """The role of each of ``ids`` the ledger knows (disabled or not)."""
    if not ids:
        return {}
    rows = await tx.all(f"SELECT staff_id, role FROM staff WHERE staff_id IN ({marks(len(ids))})", *ids)  # noqa: S608
    return {str(s): str(r) for s, r in rows}


async def listing(tx: Tx) -> dict[str, Any]:
    """The list tills get: its version, the active staff with their PIN hashes, and the policy."""
    row = await tx.one("SELECT n FROM staff_rev WHERE id = 1")
    version = int(row[0]) if row else 0
    active = [m.entry for m in await everyone(tx) if m.active]
    return staff_to_wire(version, active, await policy(tx))
