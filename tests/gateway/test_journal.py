"""The journal on a real SQLite file: durable, gapless, chained, idempotent, refuses when full."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from offline_queue.errors import IdempotencyConflictError, JournalCorruptError, JournalFullError, JournalKeyError
from offline_queue.ids import uuid7
from offline_queue.journal import TransactionJournal
from offline_queue.keys import load_or_create_signing_key
from offline_queue.personal import Keyring, new_key_line
from offline_queue.schema import LATEST
from protocols.chain import canonical, link
from protocols.records import Tender
from protocols.sync import SyncResult
from tests.gateway.records import draft

KEY = Ed25519PrivateKey.generate()


@pytest.fixture
async def journal(tmp_path: Path) -> TransactionJournal:
    j = TransactionJournal(tmp_path / "journal.sqlite3", KEY)
    await j.open()
    return j


async def test_concurrent_appends_get_gapless_seqs_and_share_commits(journal: TransactionJournal) -> None:
    results = await asyncio.gather(*(journal.append(draft()) for _ in range(200)))
    assert sorted(r.seq for r, _ in results) == list(range(1, 201))
    assert journal.commit_groups < 200  # fsyncs were shared
    assert [r.seq for r in await journal.outbox.pending(1000)] == list(range(1, 201))
    assert await journal.verify() == []
    await journal.close()


async def test_records_are_chained_and_signed(journal: TransactionJournal) -> None:
    first, _ = await journal.append(draft())
    second, _ = await journal.append(draft())
    assert first.prev_hash == "00" * 32
    assert second.prev_hash == first.hash
    body = canonical(second.to_wire())
    assert link(bytes.fromhex(second.prev_hash), body).hex() == second.hash
    KEY.public_key().verify(bytes.fromhex(second.signature), bytes.fromhex(second.hash))
    assert await journal.get(second.txn_id) == second
    await journal.close()


async def test_the_file_is_wal(journal: TransactionJournal) -> None:
    await journal.append(draft())
    await journal.close()
    conn = sqlite3.connect(journal.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    conn.close()


async def test_records_survive_a_reopen(tmp_path: Path) -> None:
    j = TransactionJournal(tmp_path / "j.sqlite3", KEY)
    await j.open()
    first, _ = await j.append(draft(amount=1234))
    await j.close()
    again = TransactionJournal(tmp_path / "j.sqlite3", KEY)
    await again.open()
    assert await again.outbox.pending(10) == [first]
    second, _ = await again.append(draft())
    assert (second.seq, second.prev_hash) == (2, first.hash)
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


async def test_outbox_leases_settle_and_tolerate_odd_answers(journal: TransactionJournal) -> None:
    records = [(await journal.append(draft(amount=100 * i)))[0] for i in range(1, 6)]
    leased = await journal.outbox.lease(3, lease_seconds=60)
    assert [p.seq for p in leased] == [1, 2, 3]
    assert [p.seq for p in await journal.outbox.lease(10, lease_seconds=60)] == [4, 5]
    assert await journal.outbox.lease(10) == []  # everything is out on lease
    a, b, c = records[:3]
    answers = [SyncResult(c.txn_id, c.seq, "accepted"), SyncResult(a.txn_id, a.seq, "duplicate")]
    assert await journal.outbox.mark_synced(answers, "t1") == 2  # out of order is fine
    assert await journal.outbox.mark_synced(answers, "t2") == 0  # answered twice: nothing changes
    assert await journal.outbox.mark_synced([SyncResult("nope", 9, "accepted")], "t3") == 0
    assert await journal.outbox.mark_synced([SyncResult(b.txn_id, 99, "accepted")], "t3") == 0  # wrong seq
    await journal.outbox.release([b.txn_id])
    assert [p.seq for p in await journal.outbox.lease(10)] == [2]
    stats = await journal.stats()
    assert (stats.pending, stats.pending_amount, stats.last_synced_at) == (3, {"CNY": 200 + 400 + 500}, "t1")
    await journal.close()


async def test_an_expired_lease_is_taken_again(journal: TransactionJournal) -> None:
    await journal.append(draft())
    assert len(await journal.outbox.lease(10, lease_seconds=0.05)) == 1
    await asyncio.sleep(0.1)
    assert len(await journal.outbox.lease(10)) == 1
    await journal.close()


async def test_rejected_records_stay_visible(journal: TransactionJournal) -> None:
    a, _ = await journal.append(draft())
    await journal.outbox.mark_synced([SyncResult(a.txn_id, a.seq, "rejected", "why")], "now")
    stats = await journal.stats()
    assert (stats.total, stats.pending, stats.rejected) == (1, 0, 1)
    exported = list(journal.export_lines())
    assert '"status": "rejected"' in exported[0]
    await journal.close()


async def test_compaction_keeps_the_chain_verifiable(journal: TransactionJournal) -> None:
    records = [(await journal.append(draft()))[0] for _ in range(10)]
    await journal.outbox.mark_synced([SyncResult(r.txn_id, r.seq, "accepted") for r in records[:6]], "t")
    await journal.outbox.mark_synced([SyncResult(records[7].txn_id, 8, "accepted")], "t")  # 7 is still pending
    assert await journal.compact(older_than="9999") == 6
    assert await journal.verify() == []
    stats = await journal.stats()
    assert (stats.total, stats.last_seq) == (4, 10)
    nxt, _ = await journal.append(draft())
    assert (nxt.seq, nxt.prev_hash) == (11, records[-1].hash)
    assert await journal.verify() == []
    await journal.close()


async def test_personal_data_is_encrypted_at_rest(tmp_path: Path) -> None:
    old_line, new = new_key_line(), new_key_line()
    old = Keyring.from_text(old_line, "old")
    j = TransactionJournal(tmp_path / "j.sqlite3", KEY, keyring=old)
    await j.open()
    await j.append(draft(), personal={"receipt_phone": "13812345678"})
    await j.close()
    assert not files_containing(tmp_path, b"13812345678")
    # Rotation: the new key encrypts, the old one still decrypts.
    rotated = Keyring.from_text(f"# newest first\n{new}\n{old_line}\n", "rotated")
    j = TransactionJournal(tmp_path / "j.sqlite3", KEY, keyring=rotated)
    await j.open()
    await j.append(draft(), personal={"receipt_phone": "13987654321"})
    leased = await j.outbox.lease(10)
    assert [p.personal for p in leased] == [{"receipt_phone": "13812345678"}, {"receipt_phone": "13987654321"}]
    assert sorted((await j.stats()).key_ids) == sorted([old.current, rotated.current])
    await j.close()
    # Without the old key the journal refuses to start, naming the key.
    j = TransactionJournal(tmp_path / "j.sqlite3", KEY, keyring=Keyring.from_text(new, "new only"))
    with pytest.raises(JournalKeyError, match=old.current):
        await j.open()


async def test_a_wrong_terminal_key_refuses_to_start(tmp_path: Path) -> None:
    j = TransactionJournal(tmp_path / "j.sqlite3", KEY)
    await j.open()
    await j.append(draft())
    await j.close()
    with pytest.raises(JournalKeyError, match="not signed by this terminal's key"):
        await TransactionJournal(tmp_path / "j.sqlite3", Ed25519PrivateKey.generate()).open()


async def test_a_corrupt_or_newer_file_refuses_to_start(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(JournalCorruptError, match="not a readable journal"):
        await TransactionJournal(garbage, KEY).open()
    newer = tmp_path / "newer.sqlite3"
    conn = sqlite3.connect(newer)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(JournalCorruptError, match="newer than this posgw"):
        await TransactionJournal(newer, KEY).open()


async def test_full_storage_refuses_the_sale_and_loses_nothing(tmp_path: Path) -> None:
    j = TransactionJournal(tmp_path / "small.sqlite3", KEY, max_bytes=96 * 1024)
    await j.open()
    kept = []

    async def fill() -> None:
        for _ in range(10_000):
            record, _ = await j.append(draft(), idempotency_key=uuid.uuid4().hex, fingerprint="x")
            kept.append(record)

    with pytest.raises(JournalFullError, match="storage is full"):
        await fill()
    assert len(kept) > 10
    assert [r.seq for r in await j.outbox.pending(100_000)] == [r.seq for r in kept]
    assert await j.verify() == []
    await j.close()


def files_containing(folder: Path, needle: bytes) -> list[Path]:
    return [f for f in folder.iterdir() if f.is_file() and needle in f.read_bytes()]


def test_signing_key_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "terminal.key"
    key = load_or_create_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_signing_key(path).public_key() == key.public_key()
    path.chmod(0o644)
    with pytest.raises(JournalKeyError, match="readable by others"):
        load_or_create_signing_key(path)
    with pytest.raises(JournalKeyError, match="no terminal key"):
        load_or_create_signing_key(tmp_path / "missing.key", create=False)


def test_uuid7_is_time_ordered_and_versioned() -> None:
    a, b = uuid7(1_000), uuid7(2_000)
    assert a.version == 7
    assert a.variant == uuid.RFC_4122
    assert str(a) < str(b)
    assert dataclasses.is_dataclass(draft())


async def test_a_version_1_journal_is_migrated_and_keeps_its_records(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    j = TransactionJournal(path, KEY)
    await j.open()
    first, _ = await j.append(draft())
    await j.close()
    conn = sqlite3.connect(path)  # make it look like a file written before migrations 2 to 5
    conn.execute("DROP TABLE redeemed_coupons")
    conn.execute("DROP TABLE used_member_codes")
    conn.execute("DROP TABLE payments")
    conn.execute("DROP TABLE joined_members")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    j = TransactionJournal(path, KEY)
    await j.open()
    assert await j.outbox.pending(10) == [first]
    assert await j.lookups.coupon_redeemed("nothing") is None  # the tables migrations 2 and 3 add are there
    assert await j.lookups.member_code_used("nothing") is False
    assert await j.payments.open_payments() == []  # and migration 4's
    assert await j.joined_members() == []  # and 5's
    assert await j.verify() == []
    await j.close()


async def test_wallet_spending_counts_sales_and_takes_refunds_back(tmp_path: Path) -> None:
    j = TransactionJournal(tmp_path / "j.sqlite3", KEY)
    await j.open()
    sale = dataclasses.replace(draft(amount=5000, member_id="M1"), tenders=(Tender("wallet", 5000, "pay-1"),))
    record, _ = await j.append(sale)
    refund = dataclasses.replace(
        draft(amount=2000, member_id="M1"),
        kind="refund",
        refund_of=record.txn_id,
        tenders=(Tender("wallet", 2000, "pay-1"),),
    )
    await j.append(refund)
    await j.append(draft(amount=700, member_id="M1"))  # cash: not the wallet's
    assert await j.payments.wallet_spending("M1", "2026-01-01T00:00:00Z") == (3000, 3000)
    assert await j.payments.wallet_spending("M2", "2026-01-01T00:00:00Z") == (0, 0)
    await j.close()
