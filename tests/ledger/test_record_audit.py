"""The background audit of every stored record's own seal (``ledger/record_audit.py``), on both engines.

At ingest one signature a run vouches for the chain; the audit checks each record's own signature and hash
again, as stored. A record altered in the database afterwards is found, quarantined and alerted; an honest
ledger's records all pass (the stored body is what the till signed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ledger import quarantine, record_audit
from ledger.database import Tx
from simulators.fleet import run_fleet
from tests.harness import LedgerHandle, ledger_cli

pytestmark = pytest.mark.ledger


async def alter(ledger: LedgerHandle, txn_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Rewrite a stored record's body in the database, as a careless (or crooked) DBA would."""

    async def rewrite(tx: Tx) -> None:
        row = await tx.one("SELECT body FROM transactions WHERE txn_id = $1", txn_id)
        assert row is not None
        body = json.dumps(change(json.loads(row[0])))
        await tx.run("UPDATE transactions SET body = $1 WHERE txn_id = $2", body, txn_id)

    books = await ledger.open_store()
    try:
        await books.db.write(rewrite)
    finally:
        await books.close()


@pytest.fixture
async def ledger(tmp_path: Path, tokens: dict[str, str], ledger_database: str | None) -> AsyncIterator[LedgerHandle]:
    """A ledger that does not audit on its own: the test says when."""
    handle = LedgerHandle(tmp_path / "ledger", tokens, ("--audit-every", "0"), database=ledger_database)
    await handle.start()
    yield handle
    handle.stop()


async def test_the_audit_passes_an_honest_ledger_and_quarantines_a_record_altered_in_the_database(
    ledger: LedgerHandle,
) -> None:
    result, fleet = await run_fleet(ledger.url, await ledger.fleet_codes(4), 30, offline_share=0.5)
    assert result.accepted == 120
    clean = await asyncio.to_thread(ledger_cli, "audit", "records", *ledger.store_args())
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "120 records audited, 0 failed" in clean.stderr

    # Altered behind the ledger's back: a sale's amount in the stored body, and another's signature.
    edited, forged = fleet[1].made[7], fleet[2].made[12]
    await alter(ledger, edited.txn_id, lambda wire: {**wire, "total_due": wire["total_due"] + 100})
    await alter(ledger, forged.txn_id, lambda wire: {**wire, "signature": "ab" * 64})
    nothing_new = await asyncio.to_thread(ledger_cli, "audit", "records", *ledger.store_args())
    assert "0 records audited, 0 failed" in nothing_new.stderr  # each record is audited once …

    again = ["audit", "records", "--from-start", *ledger.store_args()]
    found = await asyncio.to_thread(ledger_cli, *again)  # … unless asked
    assert found.returncode == 1
    assert "120 records audited, 2 failed" in found.stderr
    assert f"{edited.txn_id}: audit: edited" in found.stdout
    assert f"{forged.txn_id}: audit: forged" in found.stdout
    problems_before = await ledger.books_problems()
    books = await ledger.open_store()
    try:
        held = {q["txn_id"] for q in await books.quarantine.held()}
        assert held == {edited.txn_id, forged.txn_id}
        # Released, it is not applied twice: the operator vouches for the stored record, nothing moves.
        await books.db.write(lambda tx: quarantine.release(tx, forged.txn_id, "ops", "checked", books.rules.shelf))
        assert {q["txn_id"] for q in await books.quarantine.held()} == {edited.txn_id}
        assert (await record_audit.audit_pass(books.db)).checked == 0  # the cursor is past them
    finally:
        await books.close()
    assert await ledger.books_problems() == problems_before


async def test_the_serving_ledger_audits_in_the_background(ledger: LedgerHandle, tokens: dict[str, str]) -> None:
    """Records altered while no node audited are found by the next node that does, held and alerted."""
    _, fleet = await run_fleet(ledger.url, await ledger.fleet_codes(2), 10, offline_share=0.0)
    victim = fleet[0].made[3]
    await alter(ledger, victim.txn_id, lambda wire: {**wire, "change": wire["change"] + 1})
    ledger.stop()
    auditing = LedgerHandle(ledger.data_dir, tokens, ("--audit-every", "1"), database=ledger.database)
    await auditing.start()
    try:
        books = await auditing.open_store()
        try:
            held: list[str] = []
            for _ in range(60):
                if held := [q["txn_id"] for q in await books.quarantine.held()]:
                    break
                await asyncio.sleep(0.5)
            assert held == [victim.txn_id]
            await asyncio.sleep(1.0)  # the pass that held it logs it next: not cut off by the stop
        finally:
            await books.close()
    finally:
        auditing.stop()
    assert "record_audit_failed" in (ledger.data_dir / "ledger.log").read_text()
