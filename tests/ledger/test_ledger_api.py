"""The reference ledger over HTTP: auth, idempotent ingest, seq conflicts, garbage batches."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.store import LedgerStore
from protocols.records import Tender
from protocols.sync import SyncReply, batch_to_wire
from tests.gateway.records import draft
from tests.harness import LedgerHandle, TestTerminal, key_for, ledger_cli, member_news
from tests.harness import post_batch as post
from tests.harness import register_key as register
from tests.harness import sealed as numbered

pytestmark = pytest.mark.ledger


async def test_ingest_is_idempotent_and_credits_points_once(ledger: LedgerHandle) -> None:
    await register(ledger, "T-9")
    records = numbered([draft("T-9", 25_000, "M0001"), draft("T-9", 999), draft("T-9", 10_000, "M0001")])
    status, body = await post(ledger, batch_to_wire("T-9", records))
    assert status == 200
    reply = SyncReply.from_wire(body)
    assert [r.status for r in reply.results] == ["accepted"] * 3
    assert reply.high_seq == 3
    status, body = await post(ledger, batch_to_wire("T-9", records))
    assert [r.status for r in SyncReply.from_wire(body).results] == ["duplicate"] * 3
    assert await ledger.points("M0001") == 3  # 2 + 1, once


@pytest.fixture
async def every_seal(
    tmp_path: Path, tokens: dict[str, str], ledger_database: str | None
) -> AsyncIterator[LedgerHandle]:
    """A ledger that checks every record's own signature (POSGW_LEDGER_SEAL_CHECK=every), in worker processes."""
    handle = LedgerHandle(
        tmp_path / "every", tokens, database=ledger_database, env={"POSGW_LEDGER_SEAL_CHECK": "every"}
    )
    await handle.start()
    yield handle
    handle.stop()


async def test_an_edit_in_the_middle_of_a_batch_is_caught_by_the_chain_and_a_forged_head_by_its_signature(
    ledger: LedgerHandle,
) -> None:
    """The default check: every hash link, and one signature vouching for the run before it."""
    await register(ledger, "T-41")
    records = numbered([draft("T-41", 10_000, "M0002") for _ in range(40)])  # a point each
    records[19] = dataclasses.replace(records[19], member_id="M0001")  # after it was sealed
    records[39] = dataclasses.replace(records[39], signature=Ed25519PrivateKey.generate().sign(b"x").hex())
    status, body = await post(ledger, batch_to_wire("T-41", records))
    assert status == 200
    results = SyncReply.from_wire(body).results
    assert [(r.seq, (r.reason or "").split(":")[0]) for r in results if r.status == "rejected"] == [
        (20, "edited"),
        (40, "forged"),
    ]
    assert sum(r.status == "accepted" for r in results) == 38  # each vouched by its own run's newest signature
    assert await ledger.points("M0002") == 38
    assert await ledger.books_problems() == []


async def test_a_forged_record_in_a_big_batch_is_rejected_though_the_books_were_written_while_workers_checked(
    every_seal: LedgerHandle,
) -> None:
    """Checking every signature: batches of 32+ are verified in worker processes while the ledger writes them
    (optimistically): one forged record among 40 rolls that back, and the batch is applied again knowing which."""
    ledger = every_seal
    await register(ledger, "T-40")
    records = numbered([draft("T-40", 10_000, "M0002") for _ in range(40)])  # a point each
    stranger = Ed25519PrivateKey.generate()
    records[19] = dataclasses.replace(records[19], signature=stranger.sign(bytes.fromhex(records[19].hash)).hex())
    status, body = await post(ledger, batch_to_wire("T-40", records))
    assert status == 200
    reply = SyncReply.from_wire(body)
    assert [r.seq for r in reply.results if r.status == "rejected"] == [20]
    assert sum(r.status == "accepted" for r in reply.results) == 39
    assert (reply.high_seq, reply.gaps) == (19, ((20, 20),))
    assert await ledger.points("M0002") == 39  # not 40, and not 79: the optimistic pass left nothing behind
    assert await ledger.books_problems() == []


async def test_a_seq_reused_by_another_transaction_is_rejected_and_gaps_hold_high_seq(ledger: LedgerHandle) -> None:
    await register(ledger, "T-8")
    chain = numbered([draft("T-8"), draft("T-8"), draft("T-8")])
    await post(ledger, batch_to_wire("T-8", chain[:1]))
    impostor = numbered([draft("T-8")])[0]  # another transaction, also numbered 1
    _, body = await post(ledger, batch_to_wire("T-8", [impostor, chain[2]]))
    reply = SyncReply.from_wire(body)
    assert [(r.status, r.reason) for r in reply.results] == [
        ("rejected", "seq 1 already holds another transaction"),
        ("accepted", None),
    ]
    assert reply.high_seq == 1  # seq 2 is missing: a gap the terminal must fill
    assert reply.gaps == ((2, 2),)


async def test_records_are_checked_against_the_terminals_key_and_chain(ledger: LedgerHandle) -> None:
    await register(ledger, "T-7")
    chain = numbered([draft("T-7", 1000), draft("T-7", 2000), draft("T-7", 3000), draft("T-7", 4000)])
    forged = numbered([draft("T-7")], Ed25519PrivateKey.generate())[0]  # another terminal's key
    edited = dataclasses.replace(chain[0], member_id="M0001")  # the points moved to someone after it was sealed
    unsigned = dataclasses.replace(chain[0], prev_hash="", hash="", signature="")
    status, body = await post(ledger, batch_to_wire("T-7", [forged, edited, unsigned]))
    assert status == 200
    reasons = [r.reason or "" for r in SyncReply.from_wire(body).results]
    assert [reason.split(":")[0] for reason in reasons] == ["forged", "edited", "unsigned"]
    # Out of order is fine (seq 2 before 1), as long as the links hold.
    _, body = await post(ledger, batch_to_wire("T-7", [chain[1], chain[0]]))
    assert [r.status for r in SyncReply.from_wire(body).results] == ["accepted", "accepted"]
    # A record that does not follow the one the ledger holds before it is refused, and names where.
    stranger = numbered([draft("T-7"), draft("T-7"), draft("T-7")])[2]  # a valid seq 3 of another chain
    _, body = await post(ledger, batch_to_wire("T-7", [stranger]))
    (result,) = SyncReply.from_wire(body).results
    assert (result.status, result.reason) == ("rejected", "chain broken: prev_hash is not the hash of seq 2")
    _, body = await post(ledger, batch_to_wire("T-7", chain[2:]))
    assert SyncReply.from_wire(body).high_seq == 4


async def test_a_terminal_that_was_never_enrolled_is_refused(ledger: LedgerHandle) -> None:
    status, body = await post(ledger, batch_to_wire("T-NEW", numbered([draft("T-NEW")])))
    assert status == 401
    assert body["type"] == "urn:posgw:problem:terminal-unknown"
    assert "enrol it with a code" in body["detail"]


async def test_bad_batches_and_bad_credentials(ledger: LedgerHandle) -> None:
    await register(ledger, "T-1")
    status, body = await post(ledger, {"terminal_id": "T-1", "records": [{"seq": "x"}]})
    assert status == 422
    assert isinstance(body, dict)
    assert any("seq" in p for p in body["problems"])
    status, body = await post(ledger, batch_to_wire("T-1", []), key=Ed25519PrivateKey.generate())
    assert (status, body["type"]) == (401, "urn:posgw:problem:signature-refused")
    status, body = await TestTerminal(ledger.url, "T-1", key_for("T-1")).call("POST", "/v1/sync/batch", raw=b"\xff x")
    assert status == 400
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{ledger.url}/v1/sync/batch", json=batch_to_wire("T-1", [])) as r:
            assert r.status == 401  # unsigned
            assert r.headers["WWW-Authenticate"].startswith("Signature ")
        # The operator's token is not a terminal's, and a terminal cannot mint member QR codes.
        operator = {"Authorization": f"Bearer {ledger.tokens['operator']}"}
        async with http.post(f"{ledger.url}/v1/sync/batch", json=batch_to_wire("T-1", []), headers=operator) as r:
            assert r.status == 401
    status, _ = await TestTerminal(ledger.url, "T-1", key_for("T-1")).call("POST", "/v1/members/M0001/qr")
    assert status == 401


async def test_the_issuer_key_is_the_ledgers_kept_sealed_in_its_database(ledger: LedgerHandle, tmp_path: Path) -> None:
    before = await ledger.rulebook()
    ledger.stop()
    await ledger.start()
    after = await ledger.rulebook()
    assert before.issuer_keys == after.issuer_keys
    assert len(before.issuer_keys) == 1
    assert not (ledger.data_dir / "issuer.key").exists()  # no node's file holds it
    assert (ledger.data_dir / "secrets.key").stat().st_mode & 0o777 == 0o600
    store = await ledger.open_store()
    try:
        row = await store.db.read(lambda tx: tx.one("SELECT value FROM secrets WHERE name = 'issuer'"))
    finally:
        await store.close()
    assert row is not None
    assert "PRIVATE KEY" not in row[0]  # sealed, not the PEM


async def test_member_deltas_carry_only_what_changed(ledger: LedgerHandle) -> None:
    observer = await ledger.observer()

    async def members(since: int) -> dict[str, Any]:
        status, envelope = await observer.call("GET", "/v1/members", params={"since": str(since)})
        assert status == 200
        assert envelope["kid"]
        assert envelope["signature"]
        body: dict[str, Any] = envelope["members"]
        return body

    full = await members(0)
    assert full["full"] is True
    assert {m["member_id"] for m in full["members"]} == {"M0001", "M0002", "M0003", "M0099"}

    def news(delta: dict[str, Any]) -> list[dict[str, Any]]:
        return member_news(delta["members"], full["members"], lambda m: str(m["member_id"]), ledger.database)

    assert news(await members(full["version"])) == []
    await register(ledger, "T-6")
    await post(ledger, batch_to_wire("T-6", numbered([draft("T-6", 30_000, "M0002")])))
    await ledger.add_identifier("M0003", "card:8600001234")
    delta = await members(full["version"])
    assert delta["full"] is False
    assert sorted((m["member_id"], m["points"]) for m in news(delta)) == [("M0002", 3), ("M0003", 0)]
    assert delta["version"] >= full["version"]  # held back while another transaction is in flight
    if ledger.database is None:
        assert delta["version"] > full["version"]


async def test_spending_twice_offline_is_a_compensating_posting_and_the_books_hold(
    ledger: LedgerHandle, tmp_path: Path
) -> None:
    """Two offline tills, each within its own limits, spend the same member's points and wallet."""
    for terminal in ("T-4", "T-5"):
        await register(ledger, terminal)
    spend = dataclasses.replace(draft("T-4", 1000, "M0001"), points_redeemed=50, points_earned=0)

    def paid(terminal: str, ref: str) -> Any:  # M0001 holds ¥500 of stored value; ¥300 a sale offline
        return dataclasses.replace(
            draft(terminal, 30_000, "M0001"), tenders=(Tender("wallet", 30_000, ref),), points_earned=0
        )

    _, body = await post(ledger, batch_to_wire("T-4", numbered([spend, paid("T-4", "pay-x")])))
    assert [r.reason for r in SyncReply.from_wire(body).results] == [
        "conflict: points overdrawn by 50 (spent offline twice?)",
        None,
    ]
    _, body = await post(ledger, batch_to_wire("T-5", numbered([paid("T-5", "pay-y")])))
    assert [r.reason for r in SyncReply.from_wire(body).results] == [
        "conflict: wallet overdrawn by ¥100.00 (spent twice offline?)"
    ]
    assert await ledger.points("M0001") == 0
    assert await ledger.wallet("M0001") == 0
    assert await ledger.books_problems() == []  # the shortfall went to the mall's overdraft, not into thin air
    checked = await asyncio.to_thread(ledger_cli, "check", *ledger.store_args())
    assert checked.returncode == 0
    assert "books hold" in checked.stdout
    # A balance edited behind the books' back is found.
    await ledger.tamper("UPDATE members SET points = 7 WHERE member_id = 'M0002'")
    assert await ledger.books_problems() == ["member M0002: points 7 but their postings say 0"]
    await ledger.tamper("UPDATE members SET points = 0 WHERE member_id = 'M0002'")  # put back, for the fixture


async def test_a_ledger_file_from_before_double_entry_keeps_its_points(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE members (member_id TEXT PRIMARY KEY, tier TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active',
            points INTEGER NOT NULL DEFAULT 0, rev INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE point_postings (id INTEGER PRIMARY KEY, txn_id TEXT NOT NULL, member_id TEXT NOT NULL,
            points INTEGER NOT NULL);
        INSERT INTO members (member_id, tier, points) VALUES ('M1', 'classic', 5);
        INSERT INTO point_postings (txn_id, member_id, points) VALUES ('t1', 'M1', 7), ('t2', 'M1', -2);
        """
    )
    conn.close()
    store = await LedgerStore.open(tmp_path, f"sqlite:{path}")
    try:
        assert await store.reports.check() == []  # the old postings were paired with the mall's side
        assert await store.members.account("M1") == {
            "member_id": "M1", "tier": "classic", "status": "active", "points": 5, "wallet": 0, "growth": 0
        }  # fmt: skip
    finally:
        await store.close()


async def test_points_earned_before_the_cutoff_and_unspent_expire_once(ledger: LedgerHandle) -> None:
    await register(ledger, "T-3")
    old = dataclasses.replace(draft("T-3", 30_000, "M0001"), created_at="2025-12-31T10:00:00.000Z")  # 3 points
    new = dataclasses.replace(draft("T-3", 20_000, "M0001"), created_at="2026-06-01T10:00:00.000Z")  # 2 points
    spend = dataclasses.replace(
        draft("T-3", 1000, "M0001"), created_at="2026-07-01T10:00:00.000Z", points_earned=0, points_redeemed=1
    )
    await post(ledger, batch_to_wire("T-3", numbered([old, new, spend])))
    assert await ledger.points("M0001") == 4
    assert (await ledger.account("M0001"))["growth"] == 300 + 200 + 10  # 1 growth per ¥1, kept beside the points
    expire = ("points", "expire", "--before", "2026-01-01", *ledger.store_args())
    first = await asyncio.to_thread(ledger_cli, *expire)
    assert first.returncode == 0, first.stderr
    assert "M0001: 2 points expired" in first.stdout  # 3 earned before, 1 spent since (oldest first)
    assert await ledger.points("M0001") == 2
    again = await asyncio.to_thread(ledger_cli, *expire)
    assert "0 points expired" in again.stdout  # the job may run twice; points lapse once
    assert await ledger.points("M0001") == 2
    assert await ledger.books_problems() == []
    # The points books: issued − redeemed − expired = outstanding.
    report = await asyncio.to_thread(ledger_cli, "report", "points", "--json", *ledger.store_args())
    books = json.loads(report.stdout)
    assert books == {
        "issued": 5, "clawed_back": 0, "redeemed": 1, "offset": 0, "exchanged": 0, "unsplit": 1, "returned": 0,
        "netted": 0, "adjusted": 0, "expired": 2, "overdrawn": 0, "outstanding": 2,
    }  # fmt: skip


async def test_a_revoked_coupon_redeemed_offline_comes_back_as_a_conflict(ledger: LedgerHandle) -> None:
    await register(ledger, "T-2")
    _, key = await ledger.coupon("M0001", "C-20-OFF-200")
    await ledger.revoke_coupon(key)
    sale = dataclasses.replace(draft("T-2", 30_000, "M0001"), coupons=(key,))
    _, body = await post(ledger, batch_to_wire("T-2", numbered([sale])))
    (result,) = SyncReply.from_wire(body).results
    assert (result.status, result.reason) == (
        "accepted",
        f"conflict: coupon {key} was redeemed after the mall revoked it",
    )


def _children(pid: int, named: bytes = b"") -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split() if named in Path(f"/proc/{p}/cmdline").read_bytes()]


async def test_a_signature_worker_killed_is_replaced_and_nothing_is_lost(every_seal: LedgerHandle) -> None:
    ledger = every_seal
    await register(ledger, "T-W")
    records = numbered([draft("T-W", 10_000, "M0003") for _ in range(80)])
    status, _ = await post(ledger, batch_to_wire("T-W", records[:40]))  # 40: checked in the worker processes
    assert status == 200
    assert ledger.proc.popen is not None
    workers = [w for server in _children(ledger.proc.popen.pid, b"forkserver") for w in _children(server)]
    assert workers  # the workers exist, forked by the forkserver
    for worker in workers:
        os.kill(worker, signal.SIGKILL)  # as the OOM killer would
    statuses = []
    for _ in range(10):  # the terminal's outbox sends again until answered (the pool notices its dead workers
        status, body = await post(ledger, batch_to_wire("T-W", records[40:]))  # in its own time under load)
        statuses.append(status)
        if status == 200:
            break
        await asyncio.sleep(0.2)
    assert statuses[-1] == 200, statuses
    assert [r.status for r in SyncReply.from_wire(body).results] == ["accepted"] * 40
    assert await ledger.points("M0003") == 80  # every record once
    assert "verifier_restarted" in (ledger.data_dir / "ledger.log").read_text()
