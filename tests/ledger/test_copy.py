"""A shop's SQLite ledger copied into PostgreSQL: whole, checked, and the terminals carry on."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from ledger.copy import TABLES
from ledger.store import LedgerStore
from protocols.sync import SyncReply, batch_to_wire
from simulators.fleet import run_fleet
from tests.gateway.records import draft
from tests.harness import LedgerHandle, fleet_differences, ledger_cli, post_batch, register_key, sealed
from tests.pg import fresh_schema

pytestmark = [pytest.mark.ledger, pytest.mark.postgres]


async def snapshot(data: Path, url: str | None) -> dict[str, object]:
    store = await LedgerStore.open(data, url)
    try:
        return {
            "accounts": [await store.members.account(m) for m in ("M0001", "M0002", "M0003")],
            "revision": await store.members.since(0),
            "conflicts": await store.reports.conflicts(),
            "points": await store.reports.points_books(),
            "salt": await store.get_meta("phone_salt"),
            "tiers": await store.members.tier_changes("M0001"),
            "quarantine": await store.quarantine.held(),
        }
    finally:
        await store.close()


async def test_a_shops_ledger_moves_to_postgresql_whole(tmp_path: Path, tokens: dict[str, str]) -> None:
    data = tmp_path / "ledger"
    shop = LedgerHandle(data, tokens)
    await shop.start()
    try:
        _, fleet = await run_fleet(shop.url, await shop.fleet_codes(8), 10, offline_share=0.3)
        # A conflict, a tier move and a record in quarantine, to be carried over too.
        await register_key(shop, "T-TWICE")
        spent = dataclasses.replace(draft("T-TWICE", 6_000_000, "M0001"), points_earned=0, points_redeemed=400)
        minted = dataclasses.replace(draft("T-TWICE", 100, "M0001"), points_earned=5_000)
        status, _ = await post_batch(shop, batch_to_wire("T-TWICE", sealed([spent, minted])))
        assert status == 200
    finally:
        shop.stop()
    before = await snapshot(data, None)
    assert before["conflicts"]
    assert before["tiers"]
    assert before["quarantine"]

    async with fresh_schema() as url:
        done = ledger_cli("copy", "--data", str(data), "--to", url)
        assert done.returncode == 0, done.stderr
        assert "transactions: 82 / 82 (100%)" in done.stderr
        assert "the books hold" in done.stdout
        assert await snapshot(data, url) == before  # balances, member revisions, conflicts, salt, tiers
        again = ledger_cli("copy", "--data", str(data), "--to", url)
        assert again.returncode == 65
        assert "the target already holds a ledger (4 members, 82 transactions" in again.stderr

        group = LedgerHandle(data, tokens, database=url)  # the same data directory: the same issuer key
        await group.start()
        try:
            assert await fleet_differences(group, [r for t in fleet for r in t.made]) == []
            # A terminal carries on where it was: its next record follows its chain.
            terminal = fleet[0]
            record = terminal.sell(random.Random(5))
            status, body = await post_batch(group, batch_to_wire(terminal.terminal_id, [record]), terminal.key)
            assert status == 200
            reply = SyncReply.from_wire(body)
            assert [r.status for r in reply.results] == ["accepted"]
            assert reply.high_seq == 11
            assert await group.books_problems() == []  # new postings take ids after the copied ones
        finally:
            group.stop()


def test_a_copy_is_refused_without_a_sqlite_ledger_or_a_postgresql_url(tmp_path: Path) -> None:
    missing = ledger_cli("copy", "--data", str(tmp_path / "none"), "--to", "postgresql://127.0.0.1/x")
    assert missing.returncode == 65
    assert "no SQLite ledger at" in missing.stderr
    (tmp_path / "ledger.sqlite3").touch()
    wrong = ledger_cli("copy", "--data", str(tmp_path), "--to", "mysql://127.0.0.1/x")
    assert wrong.returncode == 65
    assert "--to must be a postgresql:// URL" in wrong.stderr


async def test_the_copy_carries_every_table_the_schema_has(tmp_path: Path) -> None:
    """A table added by a migration and forgotten here would be left behind by a copy, silently."""
    store = await LedgerStore.open(tmp_path, None)
    try:
        rows = await store.db.read(lambda tx: tx.all("SELECT name FROM sqlite_master WHERE type = 'table'"))
    finally:
        await store.close()
    made = {str(name) for (name,) in rows} - {"member_rev", "staff_rev", "schema_migrations", "sqlite_sequence"}
    assert made - set(TABLES) == set()
