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

from ledger import ingest, postings, tiers, wallet
from ledger.database import Database, Tx, open_database
from ledger.rulebooks import RulebookRefusedError
from protocols.records import TransactionRecord
from protocols.rulebook import MemberEntry
from protocols.sync import SyncReply
from protocols.tokens import b64url_encode


class LedgerStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._ingest = ingest.GroupWriter(db)
        self._keys: dict[str, str] = {}  # terminal -> registered key; a key never changes once set

    @classmethod
    async def open(cls, data_dir: Path, url: str | None = None) -> LedgerStore:
        """PostgreSQL at ``url`` (``postgresql://…``), or the SQLite file in ``data_dir``."""
        return cls(await open_database(data_dir, url))

    async def close(self) -> None:
        await self.db.close()

    @property
    def ladder(self) -> tiers.Ladder:
        """The tiers growth value moves members between (the rulebook in force's; ``ledger/tiers.py``)."""
        return self._ingest.ladder

    @ladder.setter
    def ladder(self, ladder: tiers.Ladder) -> None:
        self._ingest.ladder = ladder

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
        """Add or update members (tier, status; a new member's opening wallet) in one transaction."""

        async def upsert(tx: Tx) -> None:
            for m in members:
                new = not await tx.one("SELECT 1 FROM members WHERE member_id = $1", m.member_id)
                await tx.run(
                    "INSERT INTO members (member_id, tier, status, wallet) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (member_id) DO UPDATE SET tier = excluded.tier, status = excluded.status",
                    m.member_id,
                    m.tier,
                    m.status,
                    m.wallet if new else 0,
                )
                if new:
                    await postings.opening(tx, m.member_id, m.wallet)  # stored value brought in
            await tx.many(_ADD_IDENTIFIER, [(i, m.member_id) for m in members for i in m.identifiers])

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
        """Register a card (or other identifier) to a member, replacing any earlier owner; False if no such member."""

        async def add(tx: Tx) -> bool:
            if await tx.one("SELECT 1 FROM members WHERE member_id = $1", member_id) is None:
                return False
            await tx.run(_ADD_IDENTIFIER, identifier, member_id)
            return True

        return await self.db.write(add)

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

    # -- two-phase holds -------------------------------------------------------

    async def reserve(
        self, member_id: str, points: int, txn_id: str, terminal_id: str, ttl_seconds: float
    ) -> str | None:
        """Hold points of a member's balance; ``None`` when the balance (less other holds) is short."""
        now = time.time()

        async def reserve(tx: Tx) -> str | None:
            await tx.run("DELETE FROM reservations WHERE expires_at < $1", now)
            row = await tx.one("SELECT points FROM members WHERE member_id = $1", member_id)
            held = await tx.one(
                "SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM reservations WHERE member_id = $1", member_id
            )
            if row is None or int(row[0]) - (int(held[0]) if held else 0) < points:
                return None
            reservation = secrets.token_hex(12)
            await tx.run(
                "INSERT INTO reservations VALUES ($1, $2, $3, $4, $5, $6)",
                reservation,
                member_id,
                points,
                txn_id,
                terminal_id,
                now + ttl_seconds,
            )
            return reservation

        return await self.db.write(reserve)

    async def release(self, reservation: str) -> None:
        await self.db.write(lambda tx: tx.run("DELETE FROM reservations WHERE reservation = $1", reservation))

    async def available_points(self, member_id: str) -> int:
        row = await self.db.read(
            lambda tx: tx.one(
                "SELECT m.points - CAST(COALESCE((SELECT SUM(points) FROM reservations r "
                "WHERE r.member_id = m.member_id AND r.expires_at >= $1), 0) AS BIGINT) "
                "FROM members m WHERE member_id = $2",
                time.time(),
                member_id,
            )
        )
        return 0 if row is None else int(row[0])

    async def hold_wallet(self, member_id: str, amount: int, ref: str, terminal_id: str) -> tuple[bool, int]:
        return await self.db.write(lambda tx: wallet.hold(tx, member_id, amount, ref, terminal_id))

    async def wallet_hold_state(self, ref: str) -> str:
        return await self.db.read(lambda tx: wallet.state(tx, ref))

    async def release_wallet(self, ref: str) -> None:
        await self.db.write(lambda tx: wallet.release(tx, ref))

    # -- terminals ---------------------------------------------------------------

    async def register_terminal_key(self, terminal_id: str, public_key: str) -> bool:
        """Record a terminal's signing key; the first key wins, a different one is refused."""

        async def register(tx: Tx) -> bool:
            await tx.run(
                "INSERT INTO terminals (terminal_id, public_key) VALUES ($1, $2) ON CONFLICT (terminal_id) "
                "DO UPDATE SET public_key = excluded.public_key WHERE terminals.public_key IS NULL",
                terminal_id,
                public_key,
            )
            stored = await tx.one("SELECT public_key FROM terminals WHERE terminal_id = $1", terminal_id)
            return stored is not None and stored[0] == public_key

        if self._keys.get(terminal_id) == public_key:
            return True
        if registered := await self.db.write(register):
            self._keys[terminal_id] = public_key
        return registered

    async def terminal_key(self, terminal_id: str) -> str | None:
        row = await self.db.read(
            lambda tx: tx.one("SELECT public_key FROM terminals WHERE terminal_id = $1", terminal_id)
        )
        return None if row is None or row[0] is None else str(row[0])

    async def terminal_records(self, terminal_id: str) -> list[dict[str, Any]]:
        rows = await self.db.read(
            lambda tx: tx.all("SELECT body FROM transactions WHERE terminal_id = $1 ORDER BY seq", terminal_id)
        )
        return [json.loads(body) for (body,) in rows]

    # -- reports and jobs ---------------------------------------------------------

    async def conflicts(self) -> list[dict[str, str]]:
        rows = await self.db.read(lambda tx: tx.all("SELECT txn_id, terminal_id, detail FROM conflicts ORDER BY id"))
        return [{"txn_id": t, "terminal_id": term, "detail": d} for t, term, d in rows]

    async def records_of_day(self, day: str) -> list[dict[str, Any]]:
        """Every record the ledger holds that a terminal made on ``day`` (UTC, YYYY-MM-DD)."""
        rows = await self.db.read(
            lambda tx: tx.all(
                "SELECT body FROM transactions WHERE created_at >= $1 AND created_at < $2 ORDER BY terminal_id, seq",
                day,
                day + "~",  # after every "YYYY-MM-DDT…" of that day
            )
        )
        return [json.loads(body) for (body,) in rows]

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
        """Points issued, spent, expired and outstanding, from the postings (issued = spent + expired + outstanding).

        ``overdrawn`` is what members spent beyond their balance offline, carried by the mall (``mall:overdraft``).
        """
        row = await self.db.read(
            lambda tx: tx.one(
                "SELECT "
                "CAST(COALESCE(SUM(CASE WHEN account LIKE 'member:%' AND amount > 0 THEN amount END), 0) AS BIGINT), "
                "CAST(COALESCE(-SUM(CASE WHEN account LIKE 'member:%' AND amount < 0 AND txn_id NOT LIKE 'expiry:%' "
                "THEN amount END), 0) AS BIGINT), "
                "CAST(COALESCE(SUM(CASE WHEN account = 'mall:expired' THEN amount END), 0) AS BIGINT), "
                "CAST(COALESCE(SUM(CASE WHEN account LIKE 'member:%' THEN amount END), 0) AS BIGINT), "
                "CAST(COALESCE(-SUM(CASE WHEN account = 'mall:overdraft' THEN amount END), 0) AS BIGINT) "
                "FROM postings WHERE unit = 'points'"
            )
        )
        keys = ("issued", "spent", "expired", "outstanding", "overdrawn")
        return dict(zip(keys, (int(v) for v in row), strict=True)) if row else dict.fromkeys(keys, 0)

    async def expire_points(self, cutoff: str) -> dict[str, int]:
        """Year-end clearing: points earned before ``cutoff`` and still unspent lapse (``ledger/postings.py``)."""
        return await self.db.write(lambda tx: postings.expire_points(tx, cutoff))

    async def review_tiers(self, year: int) -> list[tuple[str, str, str, int]]:
        """The yearly review (``ledger/tiers.py``) under the rulebook in force: (member, from, to, growth) moved."""
        now = datetime.now(UTC).isoformat()
        return await self.db.write(lambda tx: tiers.review(tx, self.ladder, year, now))

    async def check(self) -> list[postings.CheckProblem]:
        """The double-entry invariants (``ledger/postings.py``): empty when the books hold."""
        return await self.db.read(postings.check)


_ADD_IDENTIFIER = (
    "INSERT INTO identifiers (identifier, member_id) VALUES ($1, $2) "
    "ON CONFLICT (identifier) DO UPDATE SET member_id = excluded.member_id"
)
# Members and their identifiers, one row per identifier.
_MEMBERS = (
    "SELECT m.member_id, m.tier, m.status, m.points, m.wallet, i.identifier FROM members m "
    "LEFT JOIN identifiers i USING (member_id) WHERE m.member_id IN ({found})"
)
