"""How records are kept in journal rows and read back: wire bytes, stats, errors."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offline_queue.errors import JournalCorruptError, JournalError, JournalFullError
from protocols.records import TransactionRecord


@dataclass(frozen=True, slots=True)
class JournalStats:
    total: int
    pending: int
    pending_amount: dict[str, int]
    oldest_pending: str | None
    last_seq: int
    rejected: int
    last_synced_at: str | None
    file_bytes: int
    key_ids: list[str]
    quarantined: int = 0  # held by the ledger, which could not believe them: an operator decides


@dataclass(frozen=True, slots=True)
class Pending:
    """A record leased for sending: its wire form (as signed) and its personal data, decrypted.

    The wire form is not re-validated here: it was checked when the record was
    made, and the chain and signature travel with it for the ledger to verify.
    """

    txn_id: str
    seq: int
    wire: bytes  # the record's JSON, chain fields included
    personal: dict[str, str] | None


def sqlite_error(err: sqlite3.Error) -> Exception:
    text = str(err).lower()
    if "full" in text:
        return JournalFullError(
            "the journal's storage is full (disk or configured limit): the sale was not recorded; call store IT"
        )
    if "malformed" in text or "not a database" in text:
        return JournalCorruptError(f"the journal file is damaged ({err}); restore it from backup, call store IT")
    return JournalError(f"the sale could not be recorded ({err}); do not take payment, call store IT")


def connect(path: Path, max_bytes: int | None) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    if max_bytes is not None:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        conn.execute(f"PRAGMA max_page_count = {max(1, max_bytes // page_size):d}")
    return conn


def wire_bytes(body: bytes, prev_hash: bytes, digest: bytes, signature: bytes) -> bytes:
    """The stored canonical JSON with the chain fields added, without parsing it again."""
    chain = f',"prev_hash":"{prev_hash.hex()}","hash":"{digest.hex()}","signature":"{signature.hex()}"}}'
    return bytes(body[:-1]) + chain.encode("ascii")


def row_wire(body: bytes, prev_hash: bytes, digest: bytes, signature: bytes) -> dict[str, Any]:
    wire: dict[str, Any] = json.loads(body)
    wire.update(prev_hash=prev_hash.hex(), hash=digest.hex(), signature=signature.hex())
    return wire


def row_record(body: bytes, prev_hash: bytes, digest: bytes, signature: bytes) -> TransactionRecord:
    return TransactionRecord.from_wire(row_wire(body, prev_hash, digest, signature), "journal")
