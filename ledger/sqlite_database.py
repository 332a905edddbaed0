"""The ledger on embedded SQLite: the demo's and a single shop's storage.

Two connections (one writes, one reads), WAL with ``synchronous=FULL``,
each used from one worker thread at a time. The shared logic is written as coroutines (``database.py``); here
they never wait on anything, so each transaction is stepped to its end
inside the worker thread without an event loop of its own.

The schema is ``migrations.py``'s, applied version by version; a file made
before versioned migrations is first brought to the baseline in place
(``sqlite_legacy.py``).
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import threading
from collections.abc import Awaitable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ledger.database import Gate, GateClosedError, Row, StorageError, StorageUnavailableError, Work
from ledger.migrations import BASELINE, LATEST, MIGRATIONS
from ledger.sqlite_legacy import upgrade_in_place

T = TypeVar("T")


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this file lacks, each in one transaction; return how many were applied."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_migrations" not in tables:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')))"
        )
        if "members" in tables:  # made before versioned migrations: brought to the baseline as it always was
            upgrade_in_place(conn)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                (BASELINE.version, "brought to the baseline in place"),
            )
    done = {int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations")}
    if done and max(done) > LATEST:
        raise StorageError(
            f"the ledger file is at schema version {max(done)}, newer than this posgw-ledger knows ({LATEST}): "
            "upgrade posgw-ledger"
        )
    applied = 0
    for m in MIGRATIONS:
        if m.version in done:
            continue
        name = m.name.replace("'", "''")
        try:  # one script, one transaction: a failure leaves the version before
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{m.render('sqlite')}\n"
                f"INSERT INTO schema_migrations (version, name) VALUES ({m.version}, '{name}');\nCOMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        applied += 1
    return applied


@functools.lru_cache(maxsize=512)
def _dialect(sql: str) -> str:
    """PostgreSQL's ``$n`` placeholders as SQLite's ``?n``."""
    return re.sub(r"\$(\d+)", r"?\1", sql)


class SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def one(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = self._conn.execute(_dialect(sql), args).fetchone()
        return row

    async def all(self, sql: str, *args: Any) -> list[Row]:
        return self._conn.execute(_dialect(sql), args).fetchall()

    async def run(self, sql: str, *args: Any) -> None:
        self._conn.execute(_dialect(sql), args)

    async def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._conn.executemany(_dialect(sql), rows)

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._conn.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",  # noqa: S608
                rows,
            )

    async def lock(self, keys: Sequence[str]) -> None:
        return None  # one writer: nothing to lock

    async def pause(self) -> None:
        return None  # stepped on its own thread: it never suspends (``_step``)


def _step(work: Awaitable[T]) -> T:
    """Run a coroutine that never suspends (SQLite calls are synchronous) to its result."""
    steps = work.__await__()
    try:
        next(steps)
    except StopIteration as done:
        result: T = done.value
        return result
    steps.close()
    raise RuntimeError("a SQLite transaction waited on something other than the database")


class _Connection:
    """One SQLite connection, used by one worker thread at a time."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.tx = SqliteTx(self.conn)
        self.lock = threading.Lock()

    def call(self, fn: Work[T], begin: str, gate: Gate | None = None) -> T:
        with self.lock:
            self.conn.execute(begin)
            try:
                result = _step(fn(self.tx))
                if gate is not None and not gate.result():  # this worker thread waits; the API's loop does not
                    raise GateClosedError("the transaction's gate said no: rolled back")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")
            return result

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class SqliteDatabase:
    """A writer connection and a reader connection: in WAL mode reads see the last commit and never
    wait for a write in progress (a terminal's key or the member list while a batch is applied)."""

    engine = "sqlite"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = _Connection(path)
            conn = self._writer.conn
            migrate(conn)
            self._reader = _Connection(path)
        except sqlite3.DatabaseError as err:
            raise StorageError(f"ledger database {path}: {err}") from err

    async def write(self, fn: Work[T], gate: Gate | None = None, *, keys: Sequence[str] | None = None) -> T:
        try:  # one writer whatever the keys
            return await asyncio.to_thread(self._writer.call, fn, "BEGIN IMMEDIATE", gate)
        except sqlite3.OperationalError as err:  # disk full, an I/O error, locked by another process
            raise StorageUnavailableError(f"the ledger's database file: {err}") from err

    async def read(self, fn: Work[T], *, replica: bool = False) -> T:
        try:
            return await asyncio.to_thread(self._reader.call, fn, "BEGIN")
        except sqlite3.OperationalError as err:
            raise StorageUnavailableError(f"the ledger's database file: {err}") from err

    def pool_stats(self) -> tuple[int, int] | None:
        return None  # two connections of its own, always open

    async def lease(self, name: str) -> bool:
        return True  # one process owns the file: every job is its

    def lock_stats(self) -> tuple[float, float]:
        return 0.0, 0.0  # no keyed writes: one writer, and nothing to wait for inside the process but it

    async def close(self) -> None:
        self._reader.close()
        self._writer.close()
