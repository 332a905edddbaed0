"""The transaction journal: durable, gapless, hash-chained, signed.

SQLite in WAL mode with ``synchronous=FULL``: :meth:`TransactionJournal.append`
returns only once the record's commit is on disk, so the cashier is only
told "done" about a sale that survives a power cut. Appends go through one
writer thread with group commit (``offline_queue/writer.py``); reads use their
own connection so a long drain never holds up a sale.

Each record gets the next gapless ``seq``, the hash of the record before it and
the terminal's Ed25519 signature (``protocols/chain.py``). Idempotency keys are
stored with their record and never expire. Personal data travels beside the
record, encrypted with AES-GCM (``offline_queue/personal.py``), outside the
signed body so that rotating keys never touches the chain.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from offline_queue.errors import (
    CouponAlreadyRedeemedError,
    IdempotencyConflictError,
    JournalCorruptError,
    JournalError,
    JournalKeyError,
    MemberCodeUsedError,
)
from offline_queue.lookups import JournalLookups, code_used
from offline_queue.outbox import JournalOutbox
from offline_queue.payments import JournalPayments, check_settleable, settle
from offline_queue.personal import Keyring
from offline_queue.rows import JournalStats, connect, row_record, sqlite_error
from offline_queue.schema import migrate
from offline_queue.verify import checkpoint_message, verify_conn
from offline_queue.writer import GroupCommitWriter
from protocols.chain import GENESIS, ChainProblem, canonical, seal
from protocols.records import TransactionRecord

T = TypeVar("T")


class TransactionJournal:
    """The chain of this terminal's records (append, replay, get), and its facets.

    ``lookups`` (what was spent, redeemed, refunded here), ``payments`` (payment
    intents) and ``outbox`` (what waits for the ledger) each take the journal's
    read and write access, nothing more.
    """

    def __init__(
        self,
        path: Path,
        signing_key: Ed25519PrivateKey,
        *,
        keyring: Keyring | None = None,
        max_bytes: int | None = None,
        epoch: int = 1,
    ) -> None:
        self.path = Path(path)
        self.signing_key = signing_key
        self.epoch = epoch  # the chain epoch the ledger enrolled this key for: every record carries it
        self.keyring = keyring
        self.max_bytes = max_bytes
        self._writer = GroupCommitWriter(lambda: connect(self.path, max_bytes), sqlite_error, self._forget_head)
        self._head: tuple[int, bytes] | None = None  # (seq, hash) of the newest record; writer thread only
        self._reader_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="posgw-journal-reader")
        self._reader: sqlite3.Connection | None = None
        self._opened = False
        self.lookups = JournalLookups(self)
        self.payments = JournalPayments(self)
        self.outbox = JournalOutbox(self, keyring)
        # Names who made each record (the cashier signed in, the shift open; ``gateway/staff``). Called in the
        # writer as the record is committed, so records and a shift's close keep one order.
        self.stamp: Callable[[TransactionRecord], TransactionRecord] | None = None

    # -- lifecycle ------------------------------------------------------------

    async def open(self) -> None:
        """Migrate, check integrity and keys; refuse to start on any doubt."""
        if self._opened:
            return
        await asyncio.get_running_loop().run_in_executor(self._reader_pool, self._open_checks)
        self._writer.start()
        self._opened = True

    def _open_checks(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = connect(self.path, None)
            (ok,) = conn.execute("PRAGMA integrity_check").fetchone()
            if ok != "ok":
                raise JournalCorruptError(f"{self.path} failed its integrity check ({ok}); restore it from backup")
            migrate(conn)
        except sqlite3.DatabaseError as err:
            raise JournalCorruptError(f"{self.path} is not a readable journal ({err}); restore it from backup") from err
        self._reader = conn
        kids = self._key_ids(conn)
        known = set(self.keyring.kids) if self.keyring else set()
        if missing := sorted(set(kids) - known):
            raise JournalKeyError(f"stored personal data needs key(s) {', '.join(missing)}, which are not configured")
        tail = conn.execute("SELECT body, prev_hash, hash, signature, seq FROM journal ORDER BY seq DESC LIMIT 1")
        row = tail.fetchone()
        if row is not None:
            try:
                self.signing_key.public_key().verify(row[3], row[2])
            except InvalidSignature as err:
                raise JournalKeyError(
                    f"the last record (seq {row[4]}) was not signed by this terminal's key: wrong key file?"
                ) from err

    @staticmethod
    def _key_ids(conn: sqlite3.Connection) -> list[str]:
        rows = conn.execute(
            "SELECT DISTINCT substr(personal, 1, instr(personal, '.') - 1) FROM journal WHERE personal IS NOT NULL"
        )
        return [r[0] for r in rows]

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._writer.stop)
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await asyncio.get_running_loop().run_in_executor(self._reader_pool, reader.close)
        self._reader_pool.shutdown(wait=True)
        self._opened = False

    def _forget_head(self) -> None:
        self._head = None

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if not self._opened:
            raise JournalError("the journal is not open")
        result: T = await self._writer.submit(fn)
        return result

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._reader is None:
                raise JournalError("the journal is not open")
            try:
                return fn(self._reader)
            except sqlite3.Error as err:
                raise sqlite_error(err) from err

        return await asyncio.get_running_loop().run_in_executor(self._reader_pool, call)

    @property
    def commit_groups(self) -> int:
        return self._writer.groups

    # -- appending --------------------------------------------------------------

    async def append(
        self,
        draft: TransactionRecord,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        personal: dict[str, str] | None = None,
        member_code: str | None = None,
        payments: tuple[str, ...] = (),
    ) -> tuple[TransactionRecord, bool]:
        """Commit ``draft`` as the next record; return it and whether it was a replay.

        ``member_code`` (a member QR code's nonce) is spent with the sale: the
        same code can never identify a member for another sale here. The paid
        ``payments`` (intent ids) are settled by this sale in the same commit.
        """
        return await self.write(
            lambda conn: self._append(conn, draft, idempotency_key, fingerprint, personal, member_code, payments)
        )

    def _append(
        self,
        conn: sqlite3.Connection,
        draft: TransactionRecord,
        key: str | None,
        fingerprint: str,
        personal: dict[str, str] | None,
        member_code: str | None,
        payments: tuple[str, ...] = (),
    ) -> tuple[TransactionRecord, bool]:
        if key is not None:
            earlier = _find_idempotent(conn, key, fingerprint)
            if earlier is not None:
                return earlier, True
        # A wallet code that paid one of this sale's own payments may also be what attached its member.
        own = {f"payment:{p}" for p in payments}
        if member_code is not None and code_used(conn, member_code) not in (None, *own):
            raise MemberCodeUsedError("this member code was already used for a sale; ask for a fresh code")
        for instance in draft.coupons:
            used = conn.execute("SELECT txn_id FROM redeemed_coupons WHERE instance = ?", (instance,)).fetchone()
            if used is not None:
                raise CouponAlreadyRedeemedError(f"coupon {instance} was already redeemed by sale {used[0]}")
        check_settleable(conn, payments)
        if self.stamp is not None:
            draft = self.stamp(draft)
        if draft.epoch != self.epoch:
            draft = dataclasses.replace(draft, epoch=self.epoch)
        last = self._head or _read_head(conn)
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
        wire = draft.to_wire()
        wire["seq"] = seq
        body = canonical(wire)
        digest, signature = seal(prev_hash, body, self.signing_key)
        sealed = None
        if personal:
            if self.keyring is None:
                raise JournalKeyError("personal data given but no personal-data key is configured")
            sealed = self.keyring.encrypt(json.dumps(personal).encode(), draft.txn_id.encode())
        conn.execute(
            "INSERT INTO journal (seq, txn_id, created_at, currency, amount, body, prev_hash, hash, signature,"
            " personal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                draft.txn_id,
                draft.created_at,
                draft.currency,
                draft.total_due,
                body,
                prev_hash,
                digest,
                signature,
                sealed,
            ),
        )
        if key is not None:
            conn.execute(
                "INSERT INTO idempotency (key, fingerprint, txn_id) VALUES (?, ?, ?)", (key, fingerprint, draft.txn_id)
            )
        # Statements only when there is something to write: this is the sale's hot path.
        if draft.coupons:
            conn.executemany(
                "INSERT INTO redeemed_coupons (instance, txn_id) VALUES (?, ?)",
                [(c, draft.txn_id) for c in draft.coupons],
            )
        if member_code is not None:
            conn.execute(
                "INSERT OR REPLACE INTO used_member_codes (nonce, txn_id) VALUES (?, ?)", (member_code, draft.txn_id)
            )
        if payments:
            settle(conn, payments, draft.txn_id)
        if draft.joined is not None and draft.member_id is not None:
            conn.execute(
                "INSERT INTO joined_members (member_id, identifier, txn_id) VALUES (?, ?, ?)",
                (draft.member_id, draft.joined, draft.txn_id),
            )
        if draft.coupons_restored:  # a full refund gives its coupons back: they may be redeemed again
            conn.executemany("DELETE FROM redeemed_coupons WHERE instance = ?", [(c,) for c in draft.coupons_restored])
        record = dataclasses.replace(
            draft, seq=seq, prev_hash=prev_hash.hex(), hash=digest.hex(), signature=signature.hex()
        )
        self._head = (seq, digest)  # last, so a failed job never moves the head
        return record, False

    async def append_closing(
        self, since_seq: int, build: Callable[[list[TransactionRecord]], TransactionRecord]
    ) -> TransactionRecord:
        """Commit the record ``build`` makes from every record after ``since_seq``, read in the same write: no
        record can fall between what it sums and itself (a shift's Z report, ``gateway/staff/shifts.py``)."""

        def close(conn: sqlite3.Connection) -> TransactionRecord:
            rows = conn.execute(
                "SELECT body, prev_hash, hash, signature FROM journal WHERE seq > ? ORDER BY seq", (since_seq,)
            ).fetchall()
            record, _ = self._append(conn, build([row_record(*row) for row in rows]), None, "", None, None)
            return record

        return await self.write(close)

    async def joined_members(self) -> list[tuple[str, str]]:
        """The customers this till enrolled: (member id, identifier), oldest first."""
        query = "SELECT member_id, identifier FROM joined_members ORDER BY rowid"
        rows = await self.read(lambda conn: conn.execute(query).fetchall())
        return [(str(m), str(i)) for m, i in rows]

    async def replay(self, idempotency_key: str, fingerprint: str) -> TransactionRecord | None:
        """The record an earlier request with this key produced, if any."""
        return await self.read(lambda conn: _find_idempotent(conn, idempotency_key, fingerprint))

    async def get(self, txn_id: str) -> TransactionRecord | None:
        def get(conn: sqlite3.Connection) -> TransactionRecord | None:
            row = conn.execute(
                "SELECT body, prev_hash, hash, signature FROM journal WHERE txn_id = ?", (txn_id,)
            ).fetchone()
            return None if row is None else row_record(*row)

        return await self.read(get)

    # -- status -----------------------------------------------------------------

    async def stats(self) -> JournalStats:
        def stats(conn: sqlite3.Connection) -> JournalStats:
            total, last, rejected, synced, quarantined = conn.execute(
                "SELECT COUNT(*), COALESCE(MAX(seq), 0), COALESCE(SUM(sync_status = 'rejected'), 0),"
                " MAX(synced_at), COALESCE(SUM(sync_status = 'quarantined'), 0) FROM journal"
            ).fetchone()
            pending, oldest = conn.execute(
                "SELECT COUNT(*), MIN(created_at) FROM journal WHERE sync_status IS NULL"
            ).fetchone()
            amounts = dict(
                conn.execute(
                    "SELECT currency, SUM(amount) FROM journal WHERE sync_status IS NULL GROUP BY currency"
                ).fetchall()
            )
            if not last:
                checkpoint = conn.execute("SELECT MAX(seq) FROM checkpoints").fetchone()
                last = checkpoint[0] or 0
            size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
            keys = self._key_ids(conn)
            return JournalStats(total, pending, amounts, oldest, last, rejected, synced, size, keys, quarantined)

        return await self.read(stats)

    # -- verification, export, compaction -------------------------------------

    async def verify(self) -> list[ChainProblem]:
        """Check the whole chain against this terminal's public key."""
        return await self.read(lambda conn: verify_conn(conn, self.signing_key.public_key()))

    def export_lines(self) -> Iterator[str]:
        """Every record as a JSON line, with its sync outcome (blocking; for the CLI)."""
        conn = connect(self.path, None)
        try:
            for body, prev, digest, sig, status, reason, synced_at in conn.execute(
                "SELECT body, prev_hash, hash, signature, sync_status, sync_reason, synced_at FROM journal ORDER BY seq"
            ):
                wire = row_record(body, prev, digest, sig).to_wire()
                wire["sync"] = {"status": status, "reason": reason, "at": synced_at}
                yield json.dumps(wire, ensure_ascii=False)
        finally:
            conn.close()

    async def compact(self, older_than: str) -> int:
        """Drop settled records created before ``older_than`` (ISO time), keeping the chain.

        Only an unbroken prefix of settled records goes; the last one's hash
        is kept as a checkpoint signed by the terminal, so the verifier can
        still check every record that remains.
        """

        def compact(conn: sqlite3.Connection) -> int:
            first_open = conn.execute(
                "SELECT MIN(seq) FROM journal WHERE sync_status IS NULL OR created_at >= ?", (older_than,)
            ).fetchone()[0]
            row = conn.execute(
                "SELECT seq, hash FROM journal WHERE (? IS NULL OR seq < ?) ORDER BY seq DESC LIMIT 1",
                (first_open, first_open),
            ).fetchone()
            if row is None:
                return 0
            seq, digest = row
            count = conn.execute("DELETE FROM journal WHERE seq <= ?", (seq,)).rowcount
            conn.execute(
                "INSERT INTO checkpoints (seq, hash, signature, created_at, compacted) VALUES (?, ?, ?, ?, ?)",
                (
                    seq,
                    digest,
                    self.signing_key.sign(checkpoint_message(seq, digest)),
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    count,
                ),
            )
            # Idempotency keys stay: a retry of an archived sale must still not sell twice.
            return int(count)

        return await self.write(compact)


def _read_head(conn: sqlite3.Connection) -> tuple[int, bytes] | None:
    row = conn.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        row = conn.execute("SELECT seq, hash FROM checkpoints ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), bytes(row[1]))


def _find_idempotent(conn: sqlite3.Connection, key: str, fingerprint: str) -> TransactionRecord | None:
    row = conn.execute(
        "SELECT i.fingerprint, i.txn_id, j.body, j.prev_hash, j.hash, j.signature "
        "FROM idempotency i LEFT JOIN journal j USING (txn_id) WHERE i.key = ?",
        (key,),
    ).fetchone()
    if row is None:
        return None
    # A key stored before requests carried a digest (``<request>#<digest>``) matches its request alone.
    if row[0] != fingerprint and not fingerprint.startswith(row[0] + "#"):
        raise IdempotencyConflictError("this Idempotency-Key was already used for a different request")
    if row[2] is None:
        raise IdempotencyConflictError(f"this sale was completed long ago as {row[1]} and has been archived")
    return row_record(*row[2:])
