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

from ledger import ingest, postings
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
    def __init__(self, db: Database) -> None:
        self.db = db
        self.rules = RuleBook(db)
        self.members = MemberBook(db, lambda: self.rules.shelf)
        self.holds = HoldBook(db)
        self.terminals = TerminalBook(db)
        self.quarantine = QuarantineBook(db)
        self.reports = ReportBook(db, lambda: self.rules.shelf)
        self._ingest = ingest.GroupWriter(db, lambda: self.rules.shelf)

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

    async def get_meta(self, key: str) -> Any:
        row = await self.db.read(lambda tx: tx.one("SELECT value FROM meta WHERE key = $1", key))
        return None if row is None else json.loads(row[0])

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
