"""Who carries which identifier, and the operator's explicit commands that change it.

An identifier (a card number, a UID, a hashed phone number or payer id) is
bound to one member. Binding one that another member carries is refused
(``identifier-owned``): a card never moves silently, balances left behind.
Moving an identifier, or merging two members' accounts, is an operator's
command (``posgw-ledger member move-identifier | merge``), each with an
entry in the audit trail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from ledger import postings
from ledger.database import Tx, marks
from ledger.holds import use_code
from protocols.errors import FinalError
from protocols.masking import mask_member_id

BIND = "INSERT INTO identifiers (identifier, member_id) VALUES ($1, $2) ON CONFLICT (identifier) DO NOTHING"


class IdentifierOwnedError(FinalError):
    """The identifier is bound to another member: only an operator may move it."""

    code = "identifier-owned"


class UnknownMemberError(FinalError):
    code = "unknown-member"


class MergeRefusedError(FinalError):
    """Two accounts that cannot be merged (the same member, one unknown, or one with money on hold)."""

    code = "merge-refused"


def _owned_message(identifier: str, owner: str) -> str:
    kind = identifier.split(":", 1)[0]
    move = "posgw-ledger member move-identifier"
    return f"this {kind} identifier is bound to member {owner}; an operator can move it ({move})"


async def refuse_owned(tx: Tx, bindings: Sequence[tuple[str, str]]) -> None:
    """Raise :class:`IdentifierOwnedError` if any ``(identifier, member)`` names an identifier another member has."""
    if not bindings:
        return
    wanted = dict(bindings)
    for start in range(0, len(bindings), 1_000):
        chunk = sorted({i for i, _ in bindings[start : start + 1_000]})
        for identifier, owner in await tx.all(
            f"SELECT identifier, member_id FROM identifiers WHERE identifier IN ({marks(len(chunk))})",  # noqa: S608
            *chunk,
        ):
            if owner != wanted[identifier]:
                raise IdentifierOwnedError(_owned_message(str(identifier), str(owner)))


async def bind(tx: Tx, member_id: str, identifier: str) -> bool:
    """Bind ``identifier`` to ``member_id`` (again is a no-op); False for an unknown member."""
    if await tx.one("SELECT 1 FROM members WHERE member_id = $1", member_id) is None:
        return False
    await refuse_owned(tx, [(identifier, member_id)])
    await tx.run(BIND, identifier, member_id)
    return True


class CardOwnedError(IdentifierOwnedError):
    """A till tried to bind a card another member carries: refused, naming that member only masked."""

    def __init__(self, identifier: str, owner: str) -> None:
        self.owner = mask_member_id(owner)
        super().__init__(
            f"this card is another member's ({self.owner}): an operator can move it "
            f"(posgw-ledger member move-identifier {identifier} --to MEMBER) "
            "or merge the two accounts (posgw-ledger member merge)"
        )


class CodeUsedError(FinalError):
    """The member's code already bound a card: one code, one binding (a till cannot bind more on it)."""

    code = "code-used"


async def bind_at_till(tx: Tx, member_id: str, identifier: str, terminal_id: str, code: str) -> bool:
    """A till binds an unbound card to the member at its counter, who showed their code (``code``: its
    ``kid:nonce``, checked by the caller): True if bound now, False if it already was theirs.

    Another member's card raises :class:`CardOwnedError`, a code that bound another card
    :class:`CodeUsedError`; the binding is audited and the member gets a new revision, so every
    till's cache learns the card."""
    if await tx.one("SELECT 1 FROM members WHERE member_id = $1", member_id) is None:
        raise UnknownMemberError(f"no member {member_id}")
    owner = await tx.one("SELECT member_id FROM identifiers WHERE identifier = $1", identifier)
    if owner is not None:
        if str(owner[0]) == member_id:
            return False
        raise CardOwnedError(identifier, str(owner[0]))
    # Kept apart from the code's use for a sale or a payment ("bind:"): showing it for both is one visit.
    if earlier := await use_code(tx, f"bind:{code}", member_id, terminal_id, identifier, None, time.time()):
        raise CodeUsedError(f"this member code already bound a card ({earlier}): ask the member for a fresh code")
    await tx.run(BIND, identifier, member_id)
    await _touch(tx, member_id)
    await audit(tx, f"terminal:{terminal_id}", "bind-card", identifier, {"member_id": member_id})
    return True


async def audit(tx: Tx, actor: str, action: str, subject: str, detail: dict[str, object]) -> None:
    await tx.run(
        "INSERT INTO audit (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
        datetime.now(UTC).isoformat(),
        actor,
        action,
        subject,
        json.dumps(detail, sort_keys=True),
    )


async def move(tx: Tx, identifier: str, to_member: str, actor: str, reason: str) -> str:
    """Move ``identifier`` to ``to_member`` (an operator's command); return the member it left."""
    row = await tx.one("SELECT member_id FROM identifiers WHERE identifier = $1", identifier)
    if row is None:
        raise UnknownMemberError(f"no member carries identifier {identifier}")
    if await tx.one("SELECT 1 FROM members WHERE member_id = $1", to_member) is None:
        raise UnknownMemberError(f"no member {to_member}")
    before = str(row[0])
    await tx.run("UPDATE identifiers SET member_id = $1 WHERE identifier = $2", to_member, identifier)
    await _touch(tx, before)  # the old owner's entry in terminals' caches changes too
    await audit(tx, actor, "move-identifier", identifier, {"from": before, "to": to_member, "reason": reason})
    return before


async def _touch(tx: Tx, member_id: str) -> None:
    """Give a member a new revision, so terminals' caches hear that their identifiers changed."""
    await tx.run("UPDATE members SET status = status WHERE member_id = $1", member_id)


async def merge(tx: Tx, source: str, target: str, actor: str, reason: str) -> dict[str, int]:
    """Merge member ``source`` into ``target``: balances (by postings), growth by year, identifiers,
    and history; ``source`` is left frozen and empty, its records still naming it. Returns what moved."""
    if source == target:
        raise MergeRefusedError("a member cannot be merged into itself")
    rows = {
        str(m): (int(p), int(w))
        for m, p, w in await tx.all(
            "SELECT member_id, points, wallet FROM members WHERE member_id IN ($1, $2)", source, target
        )
    }
    for member in (source, target):
        if member not in rows:
            raise UnknownMemberError(f"no member {member}")
    if await tx.one("SELECT 1 FROM holds WHERE member_id = $1 AND state = 'pending' AND expires_at >= $2",
                    source, datetime.now(UTC).timestamp()):  # fmt: skip
        raise MergeRefusedError(f"member {source} has points or stored value on hold at a till; try again later")
    points, wallet = rows[source]
    txn_id = f"merge:{source}:{target}"
    moves: list[postings.PostingRow] = []
    for unit, amount in (("points", points), ("fen", wallet)):
        if amount:
            moves += [
                (txn_id, None, postings.member_account(source, unit), unit, -amount, "merge"),
                (txn_id, None, postings.member_account(target, unit), unit, amount, "merge"),
            ]
    await tx.many(postings.INSERT, moves)
    await tx.run(
        "UPDATE members SET points = points + $1, wallet = wallet + $2 WHERE member_id = $3", points, wallet, target
    )
    await tx.run("UPDATE members SET points = 0, wallet = 0, status = 'frozen' WHERE member_id = $1", source)
    for year, growth in await tx.all("SELECT year, growth FROM member_growth WHERE member_id = $1", source):
        await tx.run(
            "INSERT INTO member_growth (member_id, year, growth) VALUES ($1, $2, $3) ON CONFLICT (member_id, year) "
            "DO UPDATE SET growth = member_growth.growth + excluded.growth",
            target,
            year,
            growth,
        )
    growth_moved = await tx.one(
        "SELECT CAST(COALESCE(SUM(growth), 0) AS BIGINT) FROM member_growth WHERE member_id = $1", source
    )
    await tx.run("DELETE FROM member_growth WHERE member_id = $1", source)
    moved_growth = int(growth_moved[0]) if growth_moved else 0
    await tx.run("UPDATE members SET growth = growth + $1 WHERE member_id = $2", moved_growth, target)
    await tx.run("UPDATE members SET growth = 0 WHERE member_id = $1", source)
    # The stored value moved carries its top-up bonuses with it: they still lapse on their day.
    await tx.run("UPDATE wallet_grants SET member_id = $1 WHERE member_id = $2", target, source)
    idents = await tx.all("SELECT identifier FROM identifiers WHERE member_id = $1", source)
    await tx.run("UPDATE identifiers SET member_id = $1 WHERE member_id = $2", target, source)
    await _touch(tx, target)
    moved = {"points": points, "wallet": wallet, "growth": moved_growth, "identifiers": len(idents)}
    await audit(tx, actor, "merge", f"{source}->{target}", {**moved, "reason": reason})
    return moved
