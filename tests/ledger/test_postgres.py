"""PostgreSQL only: versioned migrations, and the database failing (killed mid-batch, unreachable, too new)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ledger.migrations import MIGRATIONS
from ledger.postgres_database import PostgresDatabase
from ledger.postgres_legacy import LEGACY_STEPS
from ledger.rulebooks import OWN_FIELDS
from ledger.service import POLL_SECONDS
from ledger.store import LedgerStore
from simulators.fleet import run_fleet
from tests.harness import LedgerHandle, fleet_differences, ledger_cli
from tests.pg import PrivateServer, fresh_schema

pytestmark = [pytest.mark.ledger, pytest.mark.postgres]


@pytest.fixture
def private_server() -> Iterator[PrivateServer]:
    server = PrivateServer()
    server.start()
    yield server
    server.stop()


async def test_the_database_killed_mid_batch_accepts_nothing_twice_and_loses_nothing(
    tmp_path: Path, tokens: dict[str, str], private_server: PrivateServer
) -> None:
    """SIGKILL PostgreSQL (every process of it) twice while a fleet syncs: 503s meanwhile, then every record once."""
    ledger = LedgerHandle(tmp_path / "ledger", tokens, database=private_server.url)
    await ledger.start()
    try:
        fleet_run = asyncio.create_task(run_fleet(ledger.url, await ledger.fleet_codes(30), 40, pace_seconds=0.01))
        for _ in range(2):
            await asyncio.sleep(0.4)
            private_server.kill()
            await asyncio.sleep(0.5)  # batches meet a dead database
            private_server.start()  # crash recovery from the WAL
        result, fleet = await fleet_run
        assert result.failed_posts > 0  # the kills really cut batches off
        assert result.rejected == 0
        assert await fleet_differences(ledger, [r for t in fleet for r in t.made]) == []
        assert "storage_unavailable" in (tmp_path / "ledger" / "ledger.log").read_text()
        # Down long enough for the ledger's rulebook check to fail: it keeps checking, and a new version
        # loaded once the database is back is served.
        private_server.kill()
        await asyncio.sleep(POLL_SECONDS + 1.0)
        private_server.start()
        body = (await ledger.rulebook()).to_wire()
        rules = tmp_path / "rules.json"
        rules.write_text(json.dumps({k: v for k, v in body.items() if k not in OWN_FIELDS} | {"version": 2}))
        loaded = ledger_cli("rulebook", "load", str(rules), *ledger.store_args())
        assert loaded.returncode == 0, loaded.stderr
        assert (await ledger.wait_rulebook(2)).version == 2
        assert "rulebook_check_failed" in (tmp_path / "ledger" / "ledger.log").read_text()
    finally:
        ledger.stop()
    assert await ledger.books_problems() == []


def test_an_unreachable_database_is_a_clear_refusal_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://posgw-ledger:s3cret-pw@127.0.0.1:1/ledger"  # port 1: nothing listens
    done = ledger_cli("check", "--data", str(tmp_path), "--database", url)
    assert done.returncode == 74
    assert "cannot connect" in done.stderr
    assert "posgw-ledger:***@127.0.0.1:1" in done.stderr
    assert "s3cret-pw" not in done.stderr + done.stdout
    assert ledger_cli("check", "--data", str(tmp_path), "--database", "mysql://x").returncode == 74


async def test_a_database_migrated_by_a_newer_ledger_is_refused(tmp_path: Path) -> None:
    async with fresh_schema() as url:
        assert ledger_cli("check", "--data", str(tmp_path), "--database", url).returncode == 0  # migrates
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')")
        finally:
            await conn.close()
        done = ledger_cli("check", "--data", str(tmp_path), "--database", url)
        assert done.returncode == 74
        assert "schema version 99, newer than this posgw-ledger" in done.stderr


async def test_a_database_of_an_older_ledger_is_migrated_in_place_once() -> None:
    async with fresh_schema() as url:
        conn = await asyncpg.connect(url)
        try:  # what the first release left: migration 1 and a member
            version, name, sql = LEGACY_STEPS[0]
            await conn.execute(
                "CREATE TABLE schema_migrations (version INT PRIMARY KEY, name TEXT NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            await conn.execute("INSERT INTO members (member_id, tier, points) VALUES ('M1', 'classic', 0)")
            # A terminal that registered its key before enrolment, and a hold of each kind.
            await conn.execute(f"INSERT INTO terminals VALUES ('T-OLD', 7, '{'K' * 43}')")
            await conn.execute("INSERT INTO reservations VALUES ('r1', 'M1', 5, 'txn', 'T-OLD', 1e12)")
            await conn.execute("INSERT INTO wallet_holds VALUES ('pay-1', 'M1', 500, 'T-OLD', 1e12)")
        finally:
            await conn.close()
        databases = await asyncio.gather(*(PostgresDatabase.connect(url) for _ in range(3)))  # three ledgers at once
        for db in databases:
            await db.close()
        store = await LedgerStore.open(Path("/nonexistent"), url)
        try:
            assert (await store.members.account("M1") or {})["growth"] == 0
            assert await store.db.read(lambda tx: tx.all("SELECT version FROM schema_migrations ORDER BY 1")) == [
                *((v,) for v, _, _ in LEGACY_STEPS),
                *((m.version,) for m in MIGRATIONS[1:]),  # the baseline's steps, then each one after it
            ]
            assert LEGACY_STEPS[-1][0] == MIGRATIONS[0].version == 4
            assert await store.members.growth("M1") == {}  # migration 3's table is there
            # Migration 4: the old key is the terminal's first chain (to be checked by an operator), holds moved.
            assert await store.terminals.signing_key("T-OLD") == (1, "K" * 43)
            assert await store.terminals.chain_key("T-OLD", 1) == "K" * 43
            assert (await store.holds.get("r1"), await store.holds.get("pay-1")) != (None, None)
            assert await store.holds.available("M1", "points") == 0  # 0 points, 5 held: never below nothing
        finally:
            await store.close()
