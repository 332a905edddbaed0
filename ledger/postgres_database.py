"""The ledger on PostgreSQL through asyncpg: a mall group's storage.

A small connection pool. A plain write transaction first takes a
transaction-scoped advisory lock (one per schema) exclusively, which gives
the same "one writer at a time" the SQLite engine has. A *keyed* write (a
batch of terminal records, ``ledger/ingest.py``) takes that lock shared,
then one advisory lock per key it names (its terminals, members, coupon
copies, holds …), sorted by their 64-bit hash and taken in the round trip
that opens the transaction: two keyed writes wait for each other only when
they share a key, and never deadlock on those locks. The rest (a member an
enrolment turns out to alias, a unique index two inserts race for) could
still meet in another order; the database then breaks the deadlock and the
transaction is run again.

Everything runs on the caller's event loop, the API's: with a thread (and a
loop) of its own for the database, a record cost 12 – 30 % more CPU, the two
threads taking turns under one interpreter lock
(``docs/protocols/sync.md``, "2026-12-04, later"); a group of batches gives the
loop back every ``ingest.YIELD_EVERY`` records, so a long one does not hold
up the requests meanwhile.

Reads run in repeatable-read snapshots beside the writers, on a read replica
when one is configured and the reader accepts a moment's lag. A *lease* is
a session-level advisory lock held on a connection of its own: one node of
many holds it until it stops or loses the database (then another takes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from ledger.database import Gate, GateClosedError, Row, StorageError, StorageUnavailableError, Work
from ledger.migrations import BASELINE, LATEST, MIGRATIONS
from ledger.postgres_legacy import LEGACY_STEPS

T = TypeVar("T")

# A server gone, restarting, shutting down or refusing connections; a connection lost mid-query.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)
LOCK_CLASS = 7305  # advisory lock namespace: (LOCK_CLASS, hash of the schema)
# One round trip: the transaction and the lock that makes it the only writer (released at its end).
BEGIN_WRITE = f"BEGIN; SELECT pg_advisory_xact_lock({LOCK_CLASS}, hashtext(current_schema()))"
# A keyed write: the ledger's lock shared (plain writes still exclude it), then its keys' locks in one order;
# all in the one round trip that opens the transaction (the keys' numbers are made here: no text goes in).
BEGIN_KEYED = f"BEGIN; SELECT pg_advisory_xact_lock_shared({LOCK_CLASS}, hashtext(current_schema()))"
LOCK_KEYS = "SELECT count(pg_advisory_xact_lock(h)) FROM unnest('{{{}}}'::bigint[]) AS h"  # in the array's order
TAKE_LEASE = "SELECT pg_try_advisory_lock(hashtextextended(current_schema() || ':lease:' || $1, 0))"
RETRIES = 8  # a keyed write the database chose to break a deadlock with, run again (each time after a pause)
COPY_FROM = 16  # rows from which an insert goes by COPY (below it, a prepared insert costs less)
APPLICATION = "posgw-ledger"  # in pg_stat_activity: what the bench watches for lock waits


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def key_numbers(schema: str, keys: Iterable[str]) -> list[int]:
    """The advisory lock numbers of a schema's keys, distinct and in the one order every writer takes them:
    64 bits of BLAKE2b, signed as PostgreSQL's ``bigint``."""
    numbers = {
        int.from_bytes(hashlib.blake2b(f"{schema}:{k}".encode(), digest_size=8).digest(), "big", signed=True)
        for k in keys
    }
    return sorted(numbers)


def lock_keys_sql(numbers: Sequence[int]) -> str:
    """The statement taking ``numbers``' locks in their order (integers only: nothing to quote)."""
    return LOCK_KEYS.format(",".join(str(int(n)) for n in numbers))


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A connection back to the pool is kept as it is: the ledger sets nothing on its sessions (no ``SET``,
    ``LISTEN``, cursor or session lock outlives its use), and asyncpg has already rolled back a transaction
    left open. Its default reset would cost every transaction a round trip more."""


class PostgresTx:
    def __init__(self, conn: asyncpg.Connection | PoolConnectionProxy, schema: str = "") -> None:
        self._conn = conn
        self._schema = schema

    async def one(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._conn.fetchrow(sql, *args)
        return row

    async def all(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._conn.fetch(sql, *args))

    async def run(self, sql: str, *args: Any) -> None:
        await self._conn.execute(sql, *args)

    async def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = list(rows)
        if batch:
            await self._conn.executemany(sql, batch)

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) >= COPY_FROM:  # COPY: no statement per row for the server to plan and run
            await self._conn.copy_records_to_table(table, records=rows, columns=list(columns))
        elif rows:
            marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
            await self._conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)  # noqa: S608

    async def pause(self) -> None:
        await asyncio.sleep(0)  # the API's requests share this loop

    async def lock(self, keys: Sequence[str]) -> None:
        if keys:  # out of the first order: a deadlock is possible here, and broken by the database (run again)
            await self._conn.execute(lock_keys_sql(key_numbers(self._schema, keys)))


class PostgresDatabase:
    engine = "postgres"

    def __init__(self, pool: asyncpg.Pool, url: str, replica: asyncpg.Pool | None = None) -> None:
        self._pool, self._url = pool, url
        self._replica = replica
        self.schema = ""  # the schema the URL's connections write to: it names their key locks
        self._leases: dict[str, asyncpg.Connection] = {}  # a session per lease, held or waiting to take it
        self._held: set[str] = set()  # the leases this node holds
        self._waited = self._ran = 0.0  # keyed writes: seconds waiting for their locks, seconds in all
        self.retried = 0  # keyed writes run again after the database broke a deadlock

    @classmethod
    async def connect(cls, url: str, *, pool_size: int = 4, replica: str | None = None) -> PostgresDatabase:
        """Connect and bring the schema up to date; an unreachable or newer database is a :class:`StorageError`.

        ``replica``: a read replica's URL, for the reads that may lag a moment (snapshots, deltas, lookups).
        """

        async def create(at: str) -> asyncpg.Pool:
            return await asyncpg.create_pool(
                at, min_size=1, max_size=pool_size, command_timeout=60, reset=_keep_session,
                server_settings={"application_name": APPLICATION},
            )  # fmt: skip

        pools: list[asyncpg.Pool] = []
        try:
            for at in (url, replica) if replica else (url,):
                pools.append(await create(at))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            for pool in pools:
                await pool.close()
            raise StorageError(f"ledger database {redacted(at)}: cannot connect: {err}") from err
        db = cls(pools[0], url, pools[1] if replica else None)
        try:
            await db.migrate()
            db.schema = str(await db._pool.fetchval("SELECT current_schema()"))
        except BaseException:
            await db.close()
            raise
        return db

    async def migrate(self) -> int:
        """Apply the migrations this database lacks; return how many were applied."""
        applied = 0
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1, hashtext(current_schema()))", LOCK_CLASS)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, name TEXT NOT NULL, "
                    "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                done = {int(v) for (v,) in await conn.fetch("SELECT version FROM schema_migrations")}
                if done and max(done) > LATEST:
                    raise StorageError(
                        f"the ledger database is at schema version {max(done)}, newer than this posgw-ledger "
                        f"knows ({LATEST}): upgrade posgw-ledger"
                    )
                steps = [(m.version, m.name, m.render("postgres")) for m in MIGRATIONS]
                if done and max(done) < BASELINE.version:  # made before the baseline: brought to it by its own steps
                    steps = [*LEGACY_STEPS, *(s for s in steps if s[0] > BASELINE.version)]
                for version, name, sql in steps:
                    if version in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                        )
                    applied += 1
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1, hashtext(current_schema()))", LOCK_CLASS)
        return applied

    async def write(self, fn: Work[T], gate: Gate | None = None, *, keys: Sequence[str] | None = None) -> T:
        if keys is None:
            return await self._write(fn, gate, None)
        for attempt in range(RETRIES):
            try:
                return await self._write(fn, gate, list(keys))
            except (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError):
                if attempt == RETRIES - 1:
                    raise
                self.retried += 1
                await asyncio.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
        raise AssertionError("unreachable")

    async def read(self, fn: Work[T], *, replica: bool = False) -> T:
        return await self._read(fn, self._replica if replica and self._replica is not None else self._pool)

    async def _write(self, fn: Work[T], gate: Gate | None, keys: list[str] | None) -> T:
        try:
            async with self._pool.acquire() as conn:
                started = time.perf_counter()
                if keys is None:
                    await conn.execute(BEGIN_WRITE)
                else:
                    numbers = key_numbers(self.schema, keys)
                    await conn.execute(f"{BEGIN_KEYED}; {lock_keys_sql(numbers)}" if numbers else BEGIN_KEYED)
                    locked = time.perf_counter()
                try:
                    result = await fn(PostgresTx(conn, self.schema))
                    if gate is not None and not await asyncio.wrap_future(gate):
                        raise GateClosedError("the transaction's gate said no: rolled back")
                except BaseException:
                    with contextlib.suppress(*UNAVAILABLE):
                        await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
                if keys is not None:
                    self._waited += locked - started
                    self._ran += time.perf_counter() - started
                return result
        except UNAVAILABLE as err:
            # Whether a cut-off COMMIT landed is unknown; a batch sent again is answered "duplicate" if it did.
            raise StorageUnavailableError(f"the ledger's database did not answer: {type(err).__name__}: {err}") from err

    async def _read(self, fn: Work[T], pool: asyncpg.Pool) -> T:
        try:
            async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                return await fn(PostgresTx(conn))
        except UNAVAILABLE as err:
            raise StorageUnavailableError(f"the ledger's database did not answer: {type(err).__name__}: {err}") from err

    async def lease(self, name: str) -> bool:
        """On the lease's own session: held while it lives (a lock taken twice by one session is still one)."""
        conn = self._leases.get(name)
        try:
            if conn is None or conn.is_closed():
                self._held.discard(name)  # a new session holds nothing yet
                conn = await asyncpg.connect(self._url, server_settings={"application_name": APPLICATION})
                self._leases[name] = conn  # kept, held or not: the next round asks again on it
            if name in self._held:
                await conn.execute("SELECT 1")  # still ours while the session lives
                return True
            if await conn.fetchval(TAKE_LEASE, name):
                self._held.add(name)
                return True
        except UNAVAILABLE:
            self._held.discard(name)
            if conn is not None:
                self._leases.pop(name, None)
                with contextlib.suppress(*UNAVAILABLE):
                    await conn.close()
        return False

    def lock_stats(self) -> tuple[float, float]:
        return self._waited, self._ran

    def pool_stats(self) -> tuple[int, int] | None:
        return self._pool.get_size(), self._pool.get_idle_size()

    async def close(self) -> None:
        for conn in self._leases.values():
            with contextlib.suppress(*UNAVAILABLE):
                await conn.close()
        if self._replica is not None:
            await self._replica.close()
        await self._pool.close()
