"""The journal on a real SQLite file: durable, gapless, idempotent, refuses when full."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import pytest

from offline_queue.errors import IdempotencyConflictError, JournalFullError
from offline_queue.ids import uuid7
from offline_queue.journal import TransactionJournal
from protocols.sync import SyncResult
from tests.gateway.records import draft


@pytest.fixture
async def journal(tmp_path: Path) -> TransactionJournal:
    j = TransactionJournal(tmp_path / "journal.sqlite3")
    await j.open()
    return j


async def test_concurrent_appends_get_gapless_seqs(journal: TransactionJournal) -> None:
    results = await asyncio.gather(*(journal.append(draft()) for _ in range(50)))
    assert sorted(r.seq for r, _ in results) == list(range(1, 51))
    pending = await journal.pending(100)
    assert [r.seq for r in pending] == list(range(1, 51))
    await journal.close()


async def test_the_file_is_wal_with_full_sync(journal: TransactionJournal) -> None:
    await journal.append(draft())
    await journal.close()
    conn = sqlite3.connect(journal.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_records_survive_a_reopen(tmp_path: Path) -> None:
    j = TransactionJournal(tmp_path / "j.sqlite3")
    first, _ = await j.append(draft(amount=1234))
    await j.close()
    again = TransactionJournal(tmp_path / "j.sqlite3")
    assert await again.pending(10) == [first]
    second, _ = await again.append(draft())
    assert second.seq == 2
    await again.close()


async def test_idempotency_key_replays_and_detects_misuse(journal: TransactionJournal) -> None:
    first, replayed = await journal.append(draft(), idempotency_key="k1", fingerprint="basket-a")
    assert not replayed
    again, replayed = await journal.append(draft(), idempotency_key="k1", fingerprint="basket-a")
    assert replayed
    assert again == first
    with pytest.raises(IdempotencyConflictError):
        await journal.append(draft(), idempotency_key="k1", fingerprint="basket-b")
    assert (await journal.stats()).total == 1
    await journal.close()


async def test_mark_synced_keeps_rejected_records_visible(journal: TransactionJournal) -> None:
    a, _ = await journal.append(draft())
    b, _ = await journal.append(draft())
    await journal.mark_synced(
        [SyncResult(a.txn_id, a.seq, "accepted"), SyncResult(b.txn_id, b.seq, "rejected", "why")], "now"
    )
    stats = await journal.stats()
    assert (stats.total, stats.pending, stats.rejected) == (2, 0, 1)
    assert await journal.get(b.txn_id) == b
    await journal.close()


async def test_full_storage_refuses_the_sale_and_loses_nothing(tmp_path: Path) -> None:
    j = TransactionJournal(tmp_path / "small.sqlite3", max_bytes=64 * 1024)
    kept = []

    async def fill() -> None:
        for _ in range(10_000):
            record, _ = await j.append(draft(), idempotency_key=uuid.uuid4().hex, fingerprint="x")
            kept.append(record)

    with pytest.raises(JournalFullError, match="storage is full"):
        await fill()
    assert len(kept) > 10
    assert [r.seq for r in await j.pending(100_000)] == [r.seq for r in kept]
    await j.close()


def test_uuid7_is_time_ordered_and_versioned() -> None:
    a, b = uuid7(1_000), uuid7(2_000)
    assert a.version == 7
    assert a.variant == uuid.RFC_4122
    assert str(a) < str(b)
