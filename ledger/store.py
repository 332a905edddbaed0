"""The ledger's books: members, identifiers, points and stored value, terminal records.

Written once over :mod:`ledger.database`, so the same code runs on embedded
SQLite (the demo and a single shop) and on PostgreSQL (a mall group).
Batches of terminal records are applied by :mod:`ledger.ingest`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger import holds, identity, ingest, postings, quarantine, reports, terminals, tiers
from ledger.database import Database, Tx
from ledger.engines import open_database
from ledger.rulebooks import RulebookRefusedError, Shelf
from protocols.business_day import day_bounds
from protocols.records import TransactionRecord
from protocols.rulebook import MemberEntry, Rulebook
from protocols.sync import SyncReply
from protocols.tokens import b64url_encode


class LedgerStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._ingest = ingest.GroupWriter(db)

    @classmethod
    async def open(cls, data_dir: Path, url: str | None = None) -> LedgerStore:
        """PostgreSQL at ``url`` (``postgresql://…``), or the SQLite file in ``data_dir``."""
        db = await open_database(data_dir, url)
        try:
            await db.write(postings.upgrade_kinds)  # books from before postings said what moved (once)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        await self.db.close()

    @property
    def shelf(self) -> Shelf:
        """The rulebooks records are re-checked by, and the one in force (its ladder and time zone)."""
        return self._ingest.shelf

    def use_rules(self, book: Rulebook) -> None:
        """Put ``book`` in force for ingest, the yearly jobs and reports; earlier versions stay on the shelf."""
        self._ingest.shelf = Shelf(book)

    # -- rules and members -------------------------------------------------

    async def get_meta(self, key: str) -> Any:
        row = await self.db.read(lambda tx: tx.one("SELECT value FROM meta WHERE key = $1", key))
        return None if row is None else json.loads(row[0])

    async def phone_salt(self) -> str:
        """The mall's salt for hashing phone numbers and payer ids (made once, on first use; base64url)."""
        fresh = json.dumps(b64url_encode(os.urandom(16)))

        async def salt(tx: Tx) -> str:
            await tx.run("INSERT INTO meta VALUES ('phone_salt', $1) ON CONFLICT (key) DO NOTHING", fresh)
            row = await tx.one("SELECT value FROM meta WHERE key = 'phone_salt'")
            return str(json.loads(row[0])) if row else ""

        return await self.db.write(salt)

    async def add_rulebook(self, body: dict[str, Any]) -> tuple[int, str]:
        """Put a rulebook version in force, kept beside the earlier ones; (version, SHA-256 of its text).

        Raises :class:`RulebookRefusedError` unless it is newer than the one in force.
        """
        text = json.dumps(body, sort_keys=True, ensure_ascii=False)
        digest, version = hashlib.sha256(text.encode()).hexdigest(), int(body["version"])

        async def add(tx: Tx) -> tuple[int, str]:
            row = await tx.one("SELECT value FROM meta WHERE key = 'rulebook'")
            current = int(json.loads(row[0])["version"]) if row else 0
            if version <= current:
                raise RulebookRefusedError(f"version {version} is not newer than version {current}, in force")
            await tx.run(
                "INSERT INTO rulebooks (version, body, sha256, loaded_at) VALUES ($1, $2, $3, $4)",
                version,
                text,
                digest,
                datetime.now(UTC).isoformat(),
            )
            await tx.run(
                "INSERT INTO meta VALUES ('rulebook', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value", text
            )
            return version, digest

        return await self.db.write(add)

    async def rulebook_versions(self) -> list[tuple[int, str, str]]:
        """Every version loaded: (version, SHA-256, loaded at), oldest first."""
        rows = await self.db.read(
            lambda tx: tx.all("SELECT version, sha256, loaded_at FROM rulebooks ORDER BY version")
        )
        return [(int(v), str(d), str(at)) for v, d, at in rows]

    async def upsert_members(self, members: list[MemberEntry]) -> None:
        """Add or update members (tier, status; a new member's opening wallet) in one transaction.

        A tier changed here is kept in the member's tier history (``loaded``), as growth's moves are.
        Raises :class:`IdentifierOwnedError` (nothing loaded) for an identifier another member carries.
        """
        now = datetime.now(UTC).isoformat()

        async def upsert(tx: Tx) -> None:
            await identity.refuse_owned(tx, [(i, m.member_id) for m in members for i in m.identifiers])
            for m in members:
                before = await tx.one("SELECT tier FROM members WHERE member_id = $1", m.member_id)
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

    async def member_revision(self) -> int:
        row = await self.db.read(lambda tx: tx.one("SELECT n FROM member_rev"))
        return int(row[0]) if row else 0

    async def members(self, since: int = 0) -> tuple[int, list[MemberEntry]]:
        """The current revision and the members changed after ``since`` (0: all of them)."""

        async def members(tx: Tx) -> tuple[int, list[MemberEntry]]:
            row = await tx.one("SELECT n FROM member_rev")
            return int(row[0]) if row else 0, await self._members(tx, None, since)

        return await self.db.read(members)

    async def add_identifier(self, member_id: str, identifier: str) -> bool:
        """Bind a card (or other identifier) to a member; False if no such member.

        Raises :class:`IdentifierOwnedError` when another member carries it: moving it is an
        operator's explicit command (``ledger/identity.py``), never a side effect.
        """
        return await self.db.write(lambda tx: identity.bind(tx, member_id, identifier))

    async def member_by_identifier(self, identifier: str) -> MemberEntry | None:
        found = await self.db.read(lambda tx: self._members(tx, identifier))
        return found[0] if found else None

    async def member_account(self, member_id: str) -> dict[str, Any] | None:
        row = await self.db.read(
            lambda tx: tx.one(
                "SELECT member_id, tier, status, points, wallet, growth FROM members WHERE member_id = $1", member_id
            )
        )
        keys = ("member_id", "tier", "status", "points", "wallet", "growth")
        return None if row is None else dict(zip(keys, row, strict=True))

    async def member_growth(self, member_id: str) -> dict[str, int]:
        """A member's growth value by calendar year (what tiers follow)."""
        rows = await self.db.read(
            lambda tx: tx.all("SELECT year, growth FROM member_growth WHERE member_id = $1 ORDER BY year", member_id)
        )
        return {str(year): int(growth) for year, growth in rows}

    async def tier_changes(self, member_id: str) -> list[dict[str, Any]]:
        """A member's tier moves, oldest first: from, to, the growth behind it, why and when."""
        return await self.db.read(lambda tx: tiers.changes(tx, member_id))

    # -- sync ----------------------------------------------------------------

    async def ingest(
        self, terminal_id: str, records: list[TransactionRecord], seals: ingest.Seals | asyncio.Future[ingest.Seals]
    ) -> SyncReply:
        """Apply a batch whole (``ledger/ingest.py``); ``seals`` says, per record, why its own seal fails
        (perhaps still being decided: the database work starts meanwhile)."""
        return await self._ingest.ingest(terminal_id, records, seals)

    async def revoke_coupon(self, instance: str) -> list[str]:
        """Withdraw a coupon copy; return every copy withdrawn so far (for the terminals)."""

        async def revoke(tx: Tx) -> list[str]:
            await tx.run(
                "INSERT INTO revoked_coupons VALUES ($1, $2) ON CONFLICT DO NOTHING",
                instance,
                datetime.now(UTC).isoformat(),
            )
            return await self._revoked(tx)

        return await self.db.write(revoke)

    async def revoked_coupons(self) -> list[str]:
        return await self.db.read(self._revoked)

    @staticmethod
    async def _revoked(tx: Tx) -> list[str]:
        return [str(i) for (i,) in await tx.all("SELECT instance FROM revoked_coupons ORDER BY instance")]

    # -- two-phase holds (``ledger/holds.py``) ----------------------------------------

    async def reserve(self, member_id: str, points: int, txn_id: str, terminal_id: str) -> str | None:
        """Hold points of a member's balance for a sale; ``None`` when the balance (less other holds) is short."""
        ref = secrets.token_hex(12)

        async def reserve(tx: Tx) -> str | None:
            held, _ = await holds.place(tx, ref, "points", member_id, points, terminal_id, time.time(), txn_id)
            return ref if held else None

        return await self.db.write(reserve)

    async def hold(self, ref: str) -> holds.Hold | None:
        return await self.db.read(lambda tx: holds.get(tx, ref))

    async def void_hold(self, ref: str, terminal_id: str) -> bool:
        """Give up a pending hold of this terminal's; False when it has none by that ref."""
        return await self.db.write(lambda tx: holds.void(tx, ref, terminal_id))

    async def available(self, member_id: str, unit: str) -> int:
        """What a member may still hold or spend: the balance less live holds, never below nothing."""
        found = await self.db.read(lambda tx: holds.available(tx, member_id, unit, time.time()))
        return max(0, found or 0)

    async def hold_wallet(self, member_id: str, amount: int, ref: str, terminal_id: str) -> tuple[bool, int]:
        return await self.db.write(lambda tx: holds.place(tx, ref, "fen", member_id, amount, terminal_id, time.time()))

    async def hold_state(self, ref: str) -> str:
        return await self.db.read(lambda tx: holds.state(tx, ref, time.time()))

    # -- terminals (enrolment and keys: ``ledger/terminals.py``) -----------------------

    async def signing_key(self, terminal_id: str) -> tuple[int, str] | None:
        """The (epoch, key) a terminal signs requests with now; None if not enrolled or retired."""
        return await self.db.read(lambda tx: terminals.signing_key(tx, terminal_id))

    async def chain_key(self, terminal_id: str, epoch: int) -> str | None:
        return await self.db.read(lambda tx: terminals.chain_key(tx, terminal_id, epoch))

    async def enrol(self, terminal_id: str, code: str, public_key: str, proof: bytes) -> terminals.Enrolment:
        try:
            return await self.db.write(
                lambda tx: terminals.enrol(tx, terminal_id, code, public_key, proof, time.time())
            )
        except terminals.EnrolRefusedError as err:
            if err.code == "enrolment-code-invalid":
                await self.db.write(lambda tx: terminals.code_failed(tx, terminal_id))
            raise

    # -- quarantine (``ledger/quarantine.py``) --------------------------------------------

    async def quarantine(self, state: str = "held") -> list[dict[str, Any]]:
        return await self.db.read(lambda tx: quarantine.listing(tx, state))

    async def quarantine_count(self) -> int:
        return await self.db.read(quarantine.held_count)

    async def terminal_records(self, terminal_id: str) -> list[dict[str, Any]]:
        rows = await self.db.read(
            lambda tx: tx.all("SELECT body FROM transactions WHERE terminal_id = $1 ORDER BY epoch, seq", terminal_id)
        )
        return [json.loads(body) for (body,) in rows]

    # -- reports and jobs ---------------------------------------------------------

    async def conflicts(self) -> list[dict[str, str]]:
        rows = await self.db.read(lambda tx: tx.all("SELECT txn_id, terminal_id, detail FROM conflicts ORDER BY id"))
        return [{"txn_id": t, "terminal_id": term, "detail": d} for t, term, d in rows]

    async def records_of_day(self, day: str) -> list[dict[str, Any]]:
        """Every record the ledger holds that a terminal made on the mall's business ``day`` (YYYY-MM-DD),
        each with ``"state"`` beside it (applied, quarantined, rejected)."""
        start, end = day_bounds(day, self.shelf.zone)
        rows = await self.db.read(
            lambda tx: tx.all(
                "SELECT body, state FROM transactions WHERE created_at >= $1 AND created_at < $2 "
                "ORDER BY terminal_id, epoch, seq",
                start,
                end,
            )
        )
        return [{**json.loads(body), "state": str(state)} for body, state in rows]

    async def points_of_day(self, day: str) -> dict[str, int]:
        """The points the mall's side posted for records of ``day``, by kind (``ledger/reports.py``)."""
        start, end = day_bounds(day, self.shelf.zone)
        return await self.db.read(lambda tx: reports.points_posted(tx, start, end, day))

    async def member_history(self, member_id: str) -> list[dict[str, Any]]:
        """A member's points and stored-value postings, oldest first, with the record each came from."""
        rows = await self.db.read(
            lambda tx: tx.all(
                "SELECT CASE p.unit WHEN 'points' THEN 'points' ELSE 'wallet' END, p.amount, p.txn_id, "
                "COALESCE(t.created_at, ''), "
                "COALESCE(t.kind, CASE WHEN p.txn_id LIKE 'expiry:%' THEN 'expiry' ELSE 'opening' END), "
                "COALESCE(t.terminal_id, '-') FROM postings p LEFT JOIN transactions t USING (txn_id) "
                "WHERE p.account IN ($1, $2) ORDER BY p.id",
                postings.member_account(member_id, "points"),
                postings.member_account(member_id, "fen"),
            )
        )
        keys = ("account", "amount", "txn_id", "created_at", "kind", "terminal_id")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def points_books(self) -> dict[str, int]:
        """Points issued, redeemed, clawed back, returned, expired, overdrawn, outstanding (``ledger/reports.py``)."""
        return await self.db.read(reports.points_books)

    async def expire_points(self, cutoff: str) -> dict[str, int]:
        """Year-end clearing: points earned before the mall's day ``cutoff`` and still unspent lapse."""
        return await self.db.write(lambda tx: postings.expire_points(tx, cutoff, self.shelf.zone))

    async def review_tiers(self, year: int) -> list[tuple[str, str, str, int]]:
        """The yearly review (``ledger/tiers.py``) under the rulebook in force: (member, from, to, growth) moved."""
        now = datetime.now(UTC).isoformat()
        return await self.db.write(lambda tx: tiers.review(tx, self.shelf.ladder, year, now))

    async def check(self) -> list[postings.CheckProblem]:
        """The double-entry invariants (``ledger/postings.py``) and points conservation: empty when the books hold."""

        async def check(tx: Tx) -> list[postings.CheckProblem]:
            return [*await postings.check(tx), *await reports.conservation(tx)]

        return await self.db.read(check)


# Members and their identifiers, one row per identifier.
_MEMBERS = (
    "SELECT m.member_id, m.tier, m.status, m.points, m.wallet, i.identifier FROM members m "
    "LEFT JOIN identifiers i USING (member_id) WHERE m.member_id IN ({found})"
)
