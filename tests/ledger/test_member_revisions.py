"""Member revisions, the deltas tills fetch: never a change missed, and on PostgreSQL no row every writer locks.

A till asks for the members changed after the revision it holds and keeps the revision it is given. The
promise: every change at or below a revision given is in that answer or an earlier one, and every change
still to come is above it. On PostgreSQL a change's revision comes from its transaction's id (migration 17),
so two batches changing different members commit side by side, and a transaction that took its id early but
commits late is still found by the next delta.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ledger.database import Tx
from ledger.store import LedgerStore
from protocols.rulebook import MemberEntry
from tests.pg import fresh_schema

pytestmark = [pytest.mark.ledger]

MEMBERS = [MemberEntry(f"R{i}", "classic") for i in range(3)]


@contextlib.asynccontextmanager
async def _with_members(data: Path, database: str | None) -> AsyncIterator[LedgerStore]:
    opened = await LedgerStore.open(data, database)
    try:
        await opened.members.upsert(MEMBERS)
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def store(ledger_database: str | None, tmp_path: Path) -> AsyncIterator[LedgerStore]:
    async with _with_members(tmp_path, ledger_database) as opened:
        yield opened


@pytest.fixture
async def pg_store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    async with fresh_schema("revs_") as url, _with_members(tmp_path, url) as opened:
        yield opened


def _earn(member_id: str, points: int) -> str:
    return f"UPDATE members SET points = points + {points} WHERE member_id = '{member_id}'"


async def _open_change(store: LedgerStore, member_id: str, entered: asyncio.Event, go: asyncio.Event) -> None:
    """Change a member and keep the transaction open until ``go``: a batch still being written."""

    async def hold(tx: Tx) -> None:
        await tx.run(_earn(member_id, 7))
        entered.set()  # the transaction runs on the test's loop, as on the API's
        await go.wait()

    await store.db.write(hold, keys=[f"member:{member_id}"])


async def _newest(store: LedgerStore) -> int:
    row = await store.db.read(lambda tx: tx.one("SELECT max(rev) FROM members"))
    assert row is not None
    return int(row[0])


async def test_every_change_is_in_a_delta_and_the_revision_never_runs_ahead_of_the_changes(
    store: LedgerStore,
) -> None:
    """Other transactions take ids (here other writes; in the suite, other tests' databases): the revision
    still stops at the newest member change, so no news goes out without one."""
    start, everyone = await store.members.since(0)
    assert [m.member_id for m in everyone] == ["R0", "R1", "R2"]
    await store.db.write(lambda tx: tx.run(_earn("R1", 5)))
    first, changed = await store.members.since(start)
    assert first >= start
    assert ("R1", 5) in [(m.member_id, m.points) for m in changed]
    for _ in range(5):
        await store.db.write(lambda tx: tx.run("INSERT INTO audit (at, actor, action, subject, detail) "
                                               "VALUES ('t', 'test', 'nothing', 'x', '{}')"))  # fmt: skip
    now = await store.members.revision()
    assert first <= now <= await _newest(store)
    if store.db.engine == "sqlite":  # one writer, one counter: exactly where the last change left it
        assert now == first == await _newest(store)


@pytest.mark.postgres
async def test_writers_of_different_members_do_not_wait_for_each_other(pg_store: LedgerStore) -> None:
    entered, go = asyncio.Event(), asyncio.Event()
    holder = asyncio.ensure_future(_open_change(pg_store, "R0", entered, go))
    try:
        await entered.wait()
        other = asyncio.ensure_future(pg_store.db.write(lambda tx: tx.run(_earn("R1", 3)), keys=["member:R1"]))
        finished, _ = await asyncio.wait([other], timeout=10)  # a shared counter row would hold it until `go`
    finally:
        go.set()
        await holder
    await other
    assert finished, "a batch changing another member waited for the open one"


@pytest.mark.postgres
async def test_a_change_that_commits_after_a_younger_one_is_still_in_the_next_delta(pg_store: LedgerStore) -> None:
    start = await pg_store.members.revision()
    entered, go = asyncio.Event(), asyncio.Event()
    older = asyncio.ensure_future(_open_change(pg_store, "R0", entered, go))  # takes its id first
    try:
        await entered.wait()
        await pg_store.db.write(lambda tx: tx.run(_earn("R2", 4)), keys=["member:R2"])  # younger, commits first
        seen, changed = await pg_store.members.since(start)
        assert ("R2", 4) in [(m.member_id, m.points) for m in changed]
        assert ("R0", 7) not in [(m.member_id, m.points) for m in changed]  # not committed yet
    finally:
        go.set()
        await older
    later, changed = await pg_store.members.since(seen)
    assert later >= seen
    assert ("R0", 7) in [(m.member_id, m.points) for m in changed]  # not lost below the revision given
