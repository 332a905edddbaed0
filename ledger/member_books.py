"""The members' side of the ledger's books: who they are, their identifiers, balances, growth and tiers.

A facet of :class:`ledger.store.LedgerStore` (``store.members``), over the
storage interface alone; the year-end jobs (points expiry, the tier review)
run under the rulebook in force.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from ledger import identity, paid_tiers, postings, tiers, wallet_grants
from ledger.database import Database, Tx
from ledger.rulebooks import Shelf
from protocols.rulebook import MemberEntry

# The member revision a reader may promise: every change at or below it is visible to it, and every change
# still to come is above it. SQLite has one writer and a counter. On PostgreSQL a change's revision is the
# base plus its transaction's id (migration 17): ids below the snapshot's xmin belong to transactions that
# have all ended, so base + xmin - 1 is safe; capped at the newest revision there is, so an idle ledger's
# revision stands still (news only when a member changed) while other transactions take ids.
_REVISION = {
    "sqlite": "SELECT n FROM member_rev",
    "postgres": "SELECT LEAST(r.n + pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1, "
    "GREATEST(r.n, (SELECT max(rev) FROM members))) FROM member_rev r",
}


class MemberBook:
    def __init__(self, db: Database, shelf: Callable[[], Shelf]) -> None:
        self.db = db
        self.shelf = shelf  # the rulebooks in force (the yearly jobs' ladder and time zone)

    async def upsert(self, members: list[MemberEntry]) -> list[tuple[str, int, int]]:
        """Add or update members (tier, status; a new member's opening wallet) in one transaction.

        A tier changed here is kept in the member's tier history (``loaded``), as growth's moves are.
        An existing member's stored value is never set from a file (it moves only by postings: top-ups,
        payments, refunds): those whose ``wallet`` differs are returned, (member, in the file, held), to be
        said. Raises :class:`IdentifierOwnedError` (nothing loaded) for an identifier another member carries.
        """
        now = datetime.now(UTC).isoformat()
        differing: list[tuple[str, int, int]] = []

        async def upsert(tx: Tx) -> None:
            differing.clear()  # a retried transaction starts again
            await identity.refuse_owned(tx, [(i, m.member_id) for m in members for i in m.identifiers])
            for m in members:
                before = await tx.one("SELECT tier, wallet FROM members WHERE member_id = $1", m.member_id)
                if before is not None and m.wallet and m.wallet != int(before[1]):
                    differing.append((m.member_id, m.wallet, int(before[1])))
                await tx.run(
                    "INSERT INTO members (member_id, tier, status, wallet) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (member_id) DO UPDATE SET tier = excluded.tier, status = excluded.status",
                    m.member_id,
                    m.tier,
                    m.status,
                    m.wallet if before is None else 0,
                )
                if before is None:
                    await postings.opening(tx, m.member_id, m.wallet)  # stored value brought in
                elif before[0] != m.tier:
                    await tx.run(tiers.INSERT_CHANGE, m.member_id, before[0], m.tier, 0, "loaded", now)
            await tx.many(identity.BIND, [(i, m.member_id) for m in members for i in m.identifiers])

        await self.db.write(upsert)
        return differing

    @staticmethod
    async def _members(tx: Tx, identifier: str | None = None, since: int = 0) -> list[MemberEntry]:
        """Every member changed after revision ``since``, or only the one carrying ``identifier``."""
        if identifier is None:
            changed = "SELECT member_id FROM members WHERE rev > $1"
            rows = await tx.all(_MEMBERS.format(found=changed), since)
        else:
            found_by = "SELECT member_id FROM identifiers WHERE identifier = $1"
            rows = await tx.all(_MEMBERS.format(found=found_by), identifier)
        found: dict[str, tuple[MemberEntry, list[str]]] = {}
        for member_id, tier, status, points, balance, ident in rows:
            _, idents = found.setdefault(
                member_id, (MemberEntry(member_id, tier, status, (), int(points), int(balance)), [])
            )
            if ident is not None:
                idents.append(ident)
        # Sorted here, not in SQL: the engines' collations differ, terminals must see one order.
        return [
            dataclasses.replace(entry, identifiers=tuple(sorted(idents)))
            for _, (entry, idents) in sorted(found.items())
        ]

    async def revision(self) -> int:
        """The revision a delta read now would give: every member change up to it is in the books."""
        return await self.db.read(self._revision)

    async def _revision(self, tx: Tx) -> int:
        row = await tx.one(_REVISION[self.db.engine])
        return int(row[0]) if row else 0

    async def since(self, since: int = 0) -> tuple[int, list[MemberEntry]]:
        """The current revision and the members changed after ``since`` (0: all of them); a member may come
        again in the next delta (at the same or a newer state), never be missed."""

        async def members(tx: Tx) -> tuple[int, list[MemberEntry]]:
            return await self._revision(tx), await self._members(tx, None, since)

        return await self.db.read(members, replica=True)  # a replica a moment behind: the next delta catches up

    async def add_identifier(self, member_id: str, identifier: str) -> bool:
        """Bind a card (or other identifier) to a member; False if no such member.

        Raises :class:`IdentifierOwnedError` when another member carries it: moving it is an
        operator's explicit command (``ledger/identity.py``), never a side effect.
        """
        return await self.db.write(lambda tx: identity.bind(tx, member_id, identifier))

    async def bind_card(self, member_id: str, identifier: str, terminal_id: str, code: str) -> bool:
        """A till binds an unbound card to a member who showed ``code`` (``ledger/identity.bind_at_till``);
        True if bound now."""
        return await self.db.write(lambda tx: identity.bind_at_till(tx, member_id, identifier, terminal_id, code))

    async def by_identifier(self, identifier: str) -> MemberEntry | None:
        found = await self.db.read(lambda tx: self._members(tx, identifier), replica=True)
        return found[0] if found else None

    async def account(self, member_id: str) -> dict[str, Any] | None:
        row = await self.db.read(
            lambda tx: tx.one(
                "SELECT member_id, tier, status, points, wallet, growth FROM members WHERE member_id = $1", member_id
            )
        )
        keys = ("member_id", "tier", "status", "points", "wallet", "growth")
        return None if row is None else dict(zip(keys, row, strict=True))

    async def growth(self, member_id: str) -> dict[str, int]:
        """A member's growth value by calendar year (what tiers follow)."""
        rows = await self.db.read(
            lambda tx: tx.all("SELECT year, growth FROM member_growth WHERE member_id = $1 ORDER BY year", member_id)
        )
        return {str(year): int(growth) for year, growth in rows}

    async def tier_changes(self, member_id: str) -> list[dict[str, Any]]:
        """A member's tier moves, oldest first: from, to, the growth behind it, why and when."""
        return await self.db.read(lambda tx: tiers.changes(tx, member_id))

    async def history(self, member_id: str) -> list[dict[str, Any]]:
        """A member's points and stored-value postings, oldest first, with the record each came from."""
        rows = await self.db.read(
            lambda tx: tx.all(
                "SELECT CASE p.unit WHEN 'points' THEN 'points' ELSE 'wallet' END, p.amount, p.txn_id, "
                "COALESCE(t.created_at, ''), "
                "COALESCE(t.kind, CASE WHEN p.txn_id LIKE 'expiry:%' OR p.txn_id LIKE 'wallet-expiry:%' "
                "THEN 'expiry' WHEN p.txn_id LIKE 'adjust:%' THEN 'adjust' ELSE 'opening' END), "
                "COALESCE(t.terminal_id, '-') FROM postings p LEFT JOIN transactions t USING (txn_id) "
                "WHERE p.account IN ($1, $2) ORDER BY p.id",
                postings.member_account(member_id, "points"),
                postings.member_account(member_id, "fen"),
            )
        )
        keys = ("account", "amount", "txn_id", "created_at", "kind", "terminal_id")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def expire_points(self, cutoff: str) -> dict[str, int]:
        """Year-end clearing: points earned before the mall's day ``cutoff`` and still unspent lapse."""
        return await self.db.write(lambda tx: postings.expire_points(tx, cutoff, self.shelf().zone))

    async def wallet_statement(self, member_id: str, last: int) -> dict[str, Any] | None:
        """A member's stored value for the counter: balance, bonuses left (and their day), latest movements."""

        async def read(tx: Tx) -> dict[str, Any] | None:
            row = await tx.one("SELECT wallet FROM members WHERE member_id = $1", member_id)
            if row is None:
                return None
            bonuses = await tx.all(
                "SELECT remaining, expires_on FROM wallet_grants WHERE member_id = $1 AND remaining > 0 "
                "ORDER BY expires_on, txn_id",
                member_id,
            )
            moves = await tx.all(
                "SELECT p.amount, p.kind, COALESCE(t.created_at, ''), COALESCE(t.terminal_id, '-') FROM postings p "
                "LEFT JOIN transactions t USING (txn_id) WHERE p.account = $1 ORDER BY p.id DESC LIMIT $2",
                postings.member_account(member_id, "fen"),
                last,
            )
            return {
                "member_id": member_id,
                "balance": int(row[0]),
                "bonus": [{"remaining": int(r), "expires_on": str(e)} for r, e in bonuses],
                "history": [
                    {"amount": int(a), "kind": str(k), "at": str(at), "terminal_id": str(t)} for a, k, at, t in moves
                ],
            }

        return await self.db.read(read)

    async def expire_bonuses(self, day: str) -> dict[str, int]:
        """Top-up bonuses whose day (the mall's ``day`` or before) has come lapse (``ledger/wallet_grants.py``)."""
        return await self.db.write(lambda tx: wallet_grants.expire(tx, day))

    async def lapse_paid_tiers(self, day: date) -> list[tuple[str, str, str]]:
        """Paid tiers whose last day is before ``day`` end (``ledger/paid_tiers.py``): (member, from, to) moved."""
        shelf = self.shelf()
        now = datetime.now(UTC).isoformat()
        return await self.db.write(lambda tx: paid_tiers.lapse(tx, shelf.ladder, shelf.zone, now, day))

    async def review_tiers(self, year: int) -> list[tuple[str, str, str, int]]:
        """The yearly review (``ledger/tiers.py``) under the rulebook in force: (member, from, to, growth) moved."""
        now = datetime.now(UTC).isoformat()
        return await self.db.write(lambda tx: tiers.review(tx, self.shelf().ladder, year, now))


# Members and their identifiers, one row per identifier.
_MEMBERS = (
    "SELECT m.member_id, m.tier, m.status, m.points, m.wallet, i.identifier FROM members m "
    "LEFT JOIN identifiers i USING (member_id) WHERE m.member_id IN ({found})"
)
