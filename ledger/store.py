"""The ledger's books: members, identifiers, points and stored value, terminal records.

Written once over :mod:`ledger.database`, so the same code runs on embedded
SQLite (the demo and a single shop) and on PostgreSQL (a mall group). The
store is its facets, each over the storage interface alone: ``members``
(``member_books.py``), ``rules`` (``rulebooks.py``), ``holds`` (``holds.py``),
``terminals`` (``terminals.py``), ``quarantine`` (``quarantine.py``) and
``reports`` (``reports.py``); batches of terminal records are applied by
:mod:`ledger.ingest`, under the rules in force.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger import group_writer, ingest, postings
from ledger.database import Database, Tx
from ledger.engines import open_database
from ledger.holds import HoldBook
from ledger.member_books import MemberBook
from ledger.quarantine import QuarantineBook
from ledger.reports import ReportBook
from ledger.rulebooks import RuleBook
from ledger.terminals import TerminalBook
from protocols.records import TransactionRecord
from protocols.sync import SyncReply


class LedgerStore:
    def __init__(self, db: Database, lanes: int = group_writer.LANES) -> None:
        self.db = db
        self.rules = RuleBook(db)
        self.members = MemberBook(db, lambda: self.rules.shelf)
        self.holds = HoldBook(db)
        self.terminals = TerminalBook(db)
        self.quarantine = QuarantineBook(db)
        self.reports = ReportBook(db, lambda: self.rules.shelf)
        self._ingest = group_writer.GroupWriter(db, lambda: self.rules.shelf, lanes)

    @classmethod
    async def open(
        cls, data_dir: Path, url: str | None = None, replica: str | None = None, lanes: int = group_writer.LANES
    ) -> LedgerStore:
        """PostgreSQL at ``url`` (``postgresql://…``; ``replica``: a read replica of it), or the SQLite file in
        ``data_dir``; ``lanes``: groups of batches in flight at once (``group_writer.LANES``)."""
        db = await open_database(data_dir, url, replica)
        try:
            await db.write(postings.upgrade_kinds)  # books from before postings said what moved (once)
        except BaseException:
            await db.close()
            raise
        return cls(db, lanes)

    async def close(self) -> None:
        await self.db.close()

    async def get_meta(self, key: str) -> Any:
        row = await self.db.read(lambda tx: tx.one("SELECT value FROM meta WHERE key = $1", key))
        return None if row is None else json.loads(row[0])

    # -- sync ----------------------------------------------------------------

    async def ingest(
        self,
        terminal_id: str,
        records: list[TransactionRecord],
        seals: ingest.Seals | asyncio.Future[ingest.Seals],
        bodies: list[str] | None = None,
    ) -> SyncReply:
        """Apply a batch whole (``ledger/ingest.py``); ``seals`` says, per record, why its own seal fails
        (perhaps still being decided: the database work starts meanwhile); ``bodies``, the records as
        received, to keep."""
        return await self._ingest.ingest(terminal_id, records, seals, bodies)

    async def revoke_coupon(self, instance: str) -> int:
        """Withdraw a coupon copy; the revocation list's version with it in (the same again: no change)."""

        async def revoke(tx: Tx) -> int:
            now = datetime.now(UTC).isoformat()
            await tx.run("INSERT INTO revoked_coupons VALUES ($1, $2) ON CONFLICT DO NOTHING", instance, now)
            await tx.run("INSERT INTO revocation_log (instance, revoked_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                         instance, now)  # fmt: skip
            return await _revocations_version(tx)

        return await self.db.write(revoke)

    async def revocations(self, since: int = 0) -> tuple[int, int, list[str]]:
        """(version, since, copies): every copy withdrawn (``since`` 0, or past the version held: a full
        list), else those withdrawn after version ``since``."""

        async def read(tx: Tx) -> tuple[int, int, list[str]]:
            version = await _revocations_version(tx)
            after = since if 0 < since <= version else 0
            rows = await tx.all("SELECT instance FROM revocation_log WHERE rev > $1 ORDER BY rev", after)
            return version, after, [str(i) for (i,) in rows]

        return await self.db.read(read, replica=True)

    async def revocations_version(self) -> int:
        return await self.db.read(_revocations_version)


async def _revocations_version(tx: Tx) -> int:
    row = await tx.one("SELECT COALESCE(MAX(rev), 0) FROM revocation_log")
    return 0 if row is None else int(row[0])
