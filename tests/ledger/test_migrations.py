"""One schema for both engines: a new database, and one brought up from before the baseline, hold the same tables.

The baseline (``ledger/migrations.py``) is what a new ledger gets; files and
databases made earlier come to it by their old steps (``sqlite_legacy.py``,
``postgres_legacy.py``). These tests read the schema each path leaves and
compare them, and both engines' baselines with each other.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from ledger.database import StorageError
from ledger.migrations import MIGRATIONS
from ledger.postgres_database import PostgresDatabase
from ledger.postgres_legacy import LEGACY_STEPS
from ledger.sqlite_database import SqliteDatabase
from ledger.sqlite_legacy import SCHEMA as LEGACY_SQLITE_SCHEMA
from tests.pg import fresh_schema

Schema = dict[str, object]
TYPES = {"integer": "int", "bigint": "int", "text": "text", "real": "real", "double precision": "real"}
OWN = ("schema_migrations", "sqlite_sequence")  # each engine's bookkeeping, compared by its versions


def sqlite_schema(path: Path) -> Schema:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'") if r[0] not in OWN]
        columns = {
            t: {(c[1], TYPES[c[2].lower()], bool(c[3] or c[5])) for c in conn.execute(f"PRAGMA table_info({t})")}
            for t in tables
        }
        indexes = {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        }
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        conn.close()
    return {"columns": columns, "indexes": indexes, "versions": versions}


async def postgres_schema(url: str) -> Schema:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable = 'NO' OR k.column_name IS NOT NULL "
            "FROM information_schema.columns c LEFT JOIN information_schema.key_column_usage k "
            "ON k.table_schema = c.table_schema AND k.table_name = c.table_name AND k.column_name = c.column_name "
            "AND k.constraint_name LIKE '%_pkey' WHERE c.table_schema = current_schema()"
        )
        columns: dict[str, set[tuple[str, str, bool]]] = {}
        for table, column, kind, required in rows:
            if table in OWN:
                continue
            columns.setdefault(table, set()).add((column, TYPES[kind], bool(required)))
        indexes = {
            r[0]
            for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
            if not r[0].endswith(("_pkey", "_key"))
        }
        versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        await conn.close()
    return {"columns": columns, "indexes": indexes, "versions": versions}


def sqlite_file(path: Path) -> Path:
    SqliteDatabase(path)  # opened, migrated; its connections close with the object
    return path


def test_an_old_sqlite_file_is_brought_to_the_same_tables_as_a_new_one(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(old)
    conn.executescript(LEGACY_SQLITE_SCHEMA)  # a file as the first releases left it: no versions table
    conn.execute("INSERT INTO members (member_id, tier, points) VALUES ('M1', 'classic', 7)")
    conn.commit()
    conn.close()
    upgraded, new = sqlite_schema(sqlite_file(old)), sqlite_schema(sqlite_file(tmp_path / "new.sqlite3"))
    assert upgraded == new
    assert new["versions"] == [m.version for m in MIGRATIONS]
    assert len(new["columns"]) >= 20  # type: ignore[arg-type]
    assert ("wallet", "int", True) in new["columns"]["members"]  # type: ignore[index]
    kept = sqlite3.connect(old).execute("SELECT points FROM members WHERE member_id = 'M1'").fetchone()
    assert kept == (7,)


def test_a_file_from_a_newer_ledger_is_refused(tmp_path: Path) -> None:
    path = sqlite_file(tmp_path / "l.sqlite3")
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="newer than this posgw-ledger"):
        SqliteDatabase(path)


@pytest.mark.postgres
async def test_postgres_old_and_new_and_sqlite_hold_the_same_tables(tmp_path: Path) -> None:
    async with fresh_schema() as old_url, fresh_schema() as new_url:
        conn = await asyncpg.connect(old_url)
        try:  # a database as the steps before the baseline left it
            await conn.execute(
                "CREATE TABLE schema_migrations (version INT PRIMARY KEY, name TEXT NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for version, name, sql in LEGACY_STEPS[:2]:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
        finally:
            await conn.close()
        for url in (old_url, new_url):
            db = await PostgresDatabase.connect(url)
            await db.close()
        old, new = await postgres_schema(old_url), await postgres_schema(new_url)
    assert old["columns"] == new["columns"]
    assert old["indexes"] == new["indexes"]
    assert new["versions"] == [m.version for m in MIGRATIONS]
    lite = sqlite_schema(sqlite_file(tmp_path / "l.sqlite3"))
    assert lite["columns"] == new["columns"]
    assert lite["indexes"] == new["indexes"]
