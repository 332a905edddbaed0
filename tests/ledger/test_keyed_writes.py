"""PostgreSQL's keyed writes: no global lock between batches, one fixed order, no deadlock, nothing lost.

The database layer alone (``ledger/postgres_database.py``), on the real server: a keyed write waits only for
a write naming one of its keys, plain writes still exclude them all, and many writers taking overlapping keys
at random finish with every increment counted.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from ledger.database import StorageError, Tx
from ledger.engines import open_database
from ledger.postgres_database import LOCK_KEYS, PostgresDatabase, key_numbers, lock_keys_sql
from tests.pg import fresh_schema

pytestmark = [pytest.mark.ledger, pytest.mark.postgres]


@pytest.fixture
async def db() -> AsyncIterator[PostgresDatabase]:
    async with fresh_schema("keyed_") as url:
        database = await PostgresDatabase.connect(url, pool_size=6)
        try:
            await database.write(lambda tx: tx.run("CREATE TABLE tally (k TEXT PRIMARY KEY, n BIGINT NOT NULL)"))
            yield database
        finally:
            await database.close()


async def _held_open(db: PostgresDatabase, keys: list[str] | None, entered: asyncio.Event, go: asyncio.Event) -> None:
    async def hold(tx: Tx) -> None:
        entered.set()  # the transaction runs on the test's loop, as on the API's
        await go.wait()

    await db.write(hold, keys=keys)


async def _finishes(db: PostgresDatabase, keys: list[str] | None) -> bool:
    """Whether a write naming ``keys`` (None: a plain write) finishes within a second."""
    done = asyncio.ensure_future(db.write(lambda tx: tx.one("SELECT 1"), keys=keys))
    finished, _ = await asyncio.wait([done], timeout=1.0)
    if not finished:
        await done  # let it finish once the holder lets go: nothing left running
        return False
    return True


async def test_a_keyed_write_waits_only_for_one_that_shares_a_key(db: PostgresDatabase) -> None:
    entered, go = asyncio.Event(), asyncio.Event()
    holder = asyncio.ensure_future(_held_open(db, ["terminal:T-1", "member:M0001"], entered, go))
    await entered.wait()
    assert await _finishes(db, ["terminal:T-2", "member:M0002"])  # another terminal's batch commits beside it
    later = asyncio.ensure_future(_finishes(db, ["terminal:T-3", "member:M0001"]))  # the same member: waits
    plain = asyncio.ensure_future(_finishes(db, None))  # a plain write waits for every keyed one
    await asyncio.sleep(1.2)
    go.set()
    await holder
    assert await later is False
    assert await plain is False
    waited, ran = db.lock_stats()
    assert 0 < waited < ran


async def test_a_plain_write_excludes_keyed_ones(db: PostgresDatabase) -> None:
    entered, go = asyncio.Event(), asyncio.Event()
    holder = asyncio.ensure_future(_held_open(db, None, entered, go))
    await entered.wait()
    waiting = asyncio.ensure_future(_finishes(db, ["terminal:T-9"]))
    await asyncio.sleep(1.2)
    go.set()
    await holder
    assert await waiting is False


async def test_many_writers_on_overlapping_keys_count_every_increment_and_never_deadlock(
    db: PostgresDatabase,
) -> None:
    """Forty writers, each taking three of eight keys in its own order of naming: read, then write back."""
    names = [f"member:M{i:04d}" for i in range(8)]
    rng = random.Random(5)
    plans = [rng.sample(names, 3) for _ in range(40)]

    def bump(keys: list[str]) -> object:
        async def work(tx: Tx) -> None:
            for k in keys:  # read-modify-write: lost updates were the keys not held
                row = await tx.one("SELECT n FROM tally WHERE k = $1", k)
                await asyncio.sleep(0)
                n = int(row[0]) + 1 if row else 1
                await tx.run("INSERT INTO tally VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET n = EXCLUDED.n", k, n)

        return work

    await asyncio.gather(*(db.write(bump(keys), keys=keys) for keys in plans))  # type: ignore[arg-type]
    rows = await db.read(lambda tx: tx.all("SELECT k, n FROM tally"))
    expected = {k: sum(k in p for p in plans) for k in names}
    assert {str(k): int(n) for k, n in rows} == {k: n for k, n in expected.items() if n}


async def test_a_deadlock_the_database_breaks_is_run_again(db: PostgresDatabase) -> None:
    """Two writers that learn a second key after their first, in opposite orders: one is chosen to fail, then
    runs again and both land."""
    first = asyncio.Event()
    loop = asyncio.get_running_loop()
    arrived = 0

    def crossing(mine: str, other: str) -> object:
        async def work(tx: Tx) -> None:
            nonlocal arrived
            arrived += 1
            if arrived == 2:
                loop.call_soon_threadsafe(first.set)
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(first.wait(), loop))
            await tx.lock([other])  # learnt late, out of the first order
            await tx.run("INSERT INTO tally VALUES ($1, 1) ON CONFLICT (k) DO UPDATE SET n = tally.n + 1", mine)

        return work

    await asyncio.gather(
        db.write(crossing("a", "key:b"), keys=["key:a"]),  # type: ignore[arg-type]
        db.write(crossing("b", "key:a"), keys=["key:b"]),  # type: ignore[arg-type]
    )
    rows = await db.read(lambda tx: tx.all("SELECT k, n FROM tally ORDER BY k"))
    assert [(str(k), int(n)) for k, n in rows] == [("a", 1), ("b", 1)]
    assert db.retried >= 1


async def test_reads_that_may_lag_go_to_the_replica_and_the_rest_to_the_primary() -> None:
    async with fresh_schema("primary_") as primary, fresh_schema("replica_") as replica:
        for url, where in ((primary, "primary"), (replica, "replica")):
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("CREATE TABLE here (name TEXT)")
                await conn.execute("INSERT INTO here VALUES ($1)", where)
            finally:
                await conn.close()
        database = await PostgresDatabase.connect(primary, replica=replica)
        try:
            row = await database.read(lambda tx: tx.one("SELECT name FROM here"), replica=True)
            assert row is not None
            assert row[0] == "replica"
            row = await database.read(lambda tx: tx.one("SELECT name FROM here"))
            assert row is not None
            assert row[0] == "primary"
        finally:
            await database.close()


async def test_a_lease_has_one_holder_until_it_stops(db: PostgresDatabase) -> None:
    first, other = await PostgresDatabase.connect(db._url), await PostgresDatabase.connect(db._url)
    try:
        assert await first.lease("notices")
        assert not await other.lease("notices")  # another node: not while the first holds it
        assert await first.lease("notices")  # held, still
        assert await other.lease("audit")  # another duty: its own lease
        await first.close()
        assert await other.lease("notices")  # the holder gone: the next round takes it over
    finally:
        await other.close()


async def test_a_replica_for_a_sqlite_ledger_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="read replica"):
        await open_database(tmp_path, None, replica="postgresql://elsewhere/db")


async def test_a_lease_whose_session_died_is_given_up_and_taken_by_another(db: PostgresDatabase) -> None:
    first, other = await PostgresDatabase.connect(db._url), await PostgresDatabase.connect(db._url)
    try:
        assert await first.lease("notices")
        pid = first._leases["notices"].get_server_pid()
        await db.read(lambda tx: tx.one("SELECT pg_terminate_backend($1)", pid))  # the holder's session cut off
        for _ in range(200):  # the backend lets go of its locks as it exits, a moment after it is told to
            if not await db.read(lambda tx: tx.one("SELECT 1 FROM pg_locks WHERE pid = $1", pid)):
                break
            await asyncio.sleep(0.05)
        assert await other.lease("notices")  # free: the next node takes it
        assert not await first.lease("notices")  # and the first, on a new session, knows it no longer holds it
    finally:
        await first.close()
        await other.close()


def test_key_locks_are_numbers_made_by_the_node_in_one_order_and_per_schema() -> None:
    hostile = ["member:x'); DROP TABLE members; --", "terminal:T-1", "member:M1", "member:M1"]
    numbers = key_numbers("s1", hostile)
    assert numbers == sorted(numbers)
    assert len(numbers) == 3  # the same key twice is one lock
    assert all(-(2**63) <= n < 2**63 for n in numbers)  # PostgreSQL's bigint
    assert key_numbers("s1", reversed(hostile)) == numbers  # whatever order they were named in
    assert set(key_numbers("s2", hostile)).isdisjoint(numbers)  # two ledgers in one database never meet
    assert lock_keys_sql(numbers) == LOCK_KEYS.format(",".join(map(str, numbers)))  # integers, nothing else


async def test_a_session_left_in_a_transaction_goes_back_to_the_pool_rolled_back(db: PostgresDatabase) -> None:
    async def fails(tx: Tx) -> None:
        await tx.run("INSERT INTO tally VALUES ('left', 1)")
        raise RuntimeError("the work failed mid-transaction")

    for _ in range(8):  # more than the pool holds: every session went back through the reset
        with pytest.raises(RuntimeError):
            await db.write(fails, keys=["left"])
    assert await db.read(lambda tx: tx.one("SELECT count(*) FROM tally")) == (0,)
    assert await db.write(lambda tx: tx.one("SELECT 1"), keys=["k"]) == (1,)
