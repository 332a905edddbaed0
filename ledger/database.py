"""One storage interface, two engines: embedded SQLite (the default) and PostgreSQL.

The ledger's logic (``store.py``, ``ingest.py``, ``postings.py``, ``wallet.py``,
``chain_check.py``) is written once, as coroutines over a :class:`Tx`, in the
SQL both engines share: PostgreSQL's ``$1`` placeholders (rewritten to
SQLite's ``?1``), ``ON CONFLICT`` upserts, window functions, ``CAST(... AS
BIGINT)``. The schema is one versioned list for both (``migrations.py``).

A *write* transaction is serialised against every other write on both
engines (SQLite's ``BEGIN IMMEDIATE``; a transaction-scoped advisory lock on
PostgreSQL), so "read the balance, then hold it" is safe without retries.
A *keyed* write (``keys=``: what it will read and change, named — a terminal,
a member, a coupon copy) is serialised only against writes naming one of its
keys, and against the plain writes: on PostgreSQL it takes the ledger's lock
shared and one lock per key, all in one fixed order (no deadlock between two
keyed writes), so batches of different terminals commit side by side, on one
node and across nodes. SQLite has one writer whatever the keys. Reads run
concurrently, in snapshots that never wait for a write.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from protocols.errors import FinalError, RetryableError

T = TypeVar("T")


class Row(Protocol):
    """A result row: SQLite's tuple or asyncpg's Record, read by position or unpacked."""

    def __getitem__(self, index: int, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


SQLITE_FILE = "ledger.sqlite3"


def marks(n: int, after: int = 0) -> str:
    """``$1, …, $n`` placeholders (numbered from ``after + 1``), for an ``IN`` list or a row."""
    return ", ".join(f"${i}" for i in range(after + 1, after + n + 1))


DATABASE_HELP = (
    "postgresql://user@host/db for PostgreSQL (default: $POSGW_LEDGER_DATABASE, "
    "else the SQLite file ledger.sqlite3 in --data)"
)


class StorageError(FinalError):
    """The ledger's database cannot be opened or used as configured (a bad URL, a newer schema)."""

    code = "ledger-storage"


class StorageUnavailableError(RetryableError):
    """The database did not answer (down, restarting, out of disk): the request may be sent again."""

    code = "ledger-storage-unavailable"


class GateClosedError(RetryableError):
    """A write was rolled back, as asked, because its gate opened on False (see :meth:`Database.write`)."""

    code = "ledger-gate-closed"


Gate = concurrent.futures.Future[bool]


class Tx(Protocol):
    """One database transaction, as the ledger's logic sees it."""

    async def one(self, sql: str, *args: Any) -> Row | None: ...

    async def all(self, sql: str, *args: Any) -> list[Row]: ...

    async def run(self, sql: str, *args: Any) -> None: ...

    async def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Many new rows at once: ``COPY`` on PostgreSQL (for more than a few), a prepared insert on SQLite."""
        ...

    async def lock(self, keys: Sequence[str]) -> None:
        """In a keyed write, lock more keys (ones learnt from what it read); a no-op where writes are serialised."""
        ...

    async def pause(self) -> None:
        """Let the event loop's other work run a moment, where the transaction shares it (PostgreSQL); a no-op
        where it runs on a thread of its own (SQLite)."""
        ...


Work = Callable[[Tx], Awaitable[T]]


class Database(Protocol):
    engine: str  # "sqlite" or "postgres"

    async def write(self, fn: Work[T], gate: Gate | None = None, *, keys: Sequence[str] | None = None) -> T:
        """Run ``fn`` in a write transaction (serialised with every other write); rolled back if it raises.

        With a ``gate``, the transaction waits for it before committing, and rolls back with
        :class:`GateClosedError` if it says False (work done while a precondition is still being
        decided elsewhere). With ``keys``, it is serialised only with the writes that name one of
        them and with plain writes; ``fn`` may be run again (a deadlock the database broke).
        """
        ...

    async def read(self, fn: Work[T], *, replica: bool = False) -> T:
        """Run ``fn`` in a read-only snapshot; ``replica``: it may be a read replica's (a moment behind)."""
        ...

    async def lease(self, name: str) -> bool:
        """Whether this process holds (now taking it if free) the named lease: one holder among every node
        of the ledger until it stops or loses the database (a job run once however many nodes run)."""
        ...

    def lock_stats(self) -> tuple[float, float]:
        """(seconds keyed writes waited for their locks, seconds they ran in all), since start."""
        ...

    def pool_stats(self) -> tuple[int, int] | None:
        """(connections, idle) of a connection pool; None for an engine without one."""
        ...

    async def close(self) -> None: ...
