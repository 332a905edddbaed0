"""Which database engine a ledger runs on: PostgreSQL when a URL names one, else the embedded SQLite file.

Kept apart from ``ledger/database.py`` (the contract both engines keep) so that
the contract imports neither engine.
"""

from __future__ import annotations

from pathlib import Path

from ledger.database import SQLITE_FILE, Database, StorageError


async def open_database(data_dir: Path, url: str | None = None, replica: str | None = None) -> Database:
    """PostgreSQL when ``url`` names one (``replica``: a read replica of it), otherwise the embedded SQLite
    file in ``data_dir``."""
    # Each engine is imported only when chosen: a SQLite ledger never loads the PostgreSQL driver.
    if url is None or url == "" or url.startswith("sqlite:"):
        from ledger.sqlite_database import SqliteDatabase

        if replica:
            raise StorageError("a read replica (--read-database) is for a PostgreSQL ledger: SQLite has none")
        return SqliteDatabase(Path(url[len("sqlite:") :]) if url else data_dir / SQLITE_FILE)
    if not url.startswith(("postgresql://", "postgres://")):
        raise StorageError(f"ledger database {url!r}: expected postgresql://… or sqlite:PATH")
    from ledger.postgres_database import PostgresDatabase

    if replica and not replica.startswith(("postgresql://", "postgres://")):
        raise StorageError(f"read replica {replica!r}: expected postgresql://…")
    return await PostgresDatabase.connect(url, replica=replica)
