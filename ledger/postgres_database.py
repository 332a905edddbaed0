"""The ledger on PostgreSQL through asyncpg: a mall group's storage.

A small connection pool; every write transaction first takes a
transaction-scoped advisory lock (one per schema), which gives the same
"one writer at a time" the SQLite engine has, so the shared logic needs no
retry loops for serialisation failures. Reads run in repeatable-read
snapshots beside the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterable, Sequence
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


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresTx:
    def __init__(self, conn: asyncpg.Connection | PoolConnectionProxy) -> None:
        self._conn = conn

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


class PostgresDatabase:
    engine = "postgres"

    def __init__(self, pool: asyncpg.Pool, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self._pool, self._loop, self._thread = pool, loop, thread

    @classmethod
    async def connect(cls, url: str, *, pool_size: int = 4) -> PostgresDatabase:
        """Connect and bring the schema up to date; an unreachable or newer database is a :class:`StorageError`."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="ledger-postgres", daemon=True)
        thread.start()

        async def create() -> asyncpg.Pool:
            return await asyncpg.create_pool(url, min_size=1, max_size=pool_size, command_timeout=60)

        try:
            pool = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(create(), loop))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            _stop(loop, thread)
            raise StorageError(f"ledger database {redacted(url)}: cannot connect: {err}") from err
        db = cls(pool, loop, thread)
        try:
            await db._on(db.migrate())
        except BaseException:
            await db.close()
            raise
        return db

    async def _on(self, work: Coroutine[Any, Any, T]) -> T:
        """Run on the database's own thread and loop: a transaction's round trips never wait for a busy API loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

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

    async def write(self, fn: Work[T], gate: Gate | None = None) -> T:
        return await self._on(self._write(fn, gate))

    async def read(self, fn: Work[T]) -> T:
        return await self._on(self._read(fn))

    async def _write(self, fn: Work[T], gate: Gate | None) -> T:
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(BEGIN_WRITE)
                try:
                    result = await fn(PostgresTx(conn))
                    if gate is not None and not await asyncio.wrap_future(gate):
                        raise GateClosedError("the transaction's gate said no: rolled back")
                except BaseException:
                    with contextlib.suppress(*UNAVAILABLE):
                        await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
                return result
        except UNAVAILABLE as err:
            # Whether a cut-off COMMIT landed is unknown; a batch sent again is answered "duplicate" if it did.
            raise StorageUnavailableError(f"the ledger's database did not answer: {type(err).__name__}: {err}") from err

    async def _read(self, fn: Work[T]) -> T:
        try:
            async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                return await fn(PostgresTx(conn))
        except UNAVAILABLE as err:
            raise StorageUnavailableError(f"the ledger's database did not answer: {type(err).__name__}: {err}") from err

    def pool_stats(self) -> tuple[int, int] | None:
        return self._pool.get_size(), self._pool.get_idle_size()

    async def close(self) -> None:
        await self._on(self._pool.close())
        _stop(self._loop, self._thread)


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()
