"""Throw-away PostgreSQL schemas on a real server, for tests and benchmarks of the ledger.

``.ci/services`` creates the ``posgw`` role and ``posgw_test`` database on the
machine's server; ``POSGW_TEST_POSTGRES`` points elsewhere.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

POSTGRES_URL = os.environ.get("POSGW_TEST_POSTGRES", "postgresql://posgw:posgw@127.0.0.1:5432/posgw_test")


@asynccontextmanager
async def fresh_schema(prefix: str = "t_") -> AsyncIterator[str]:
    """A new, empty schema; yields a URL whose connections use it, and drops it afterwards."""
    name = prefix + secrets.token_hex(6)
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
        yield f"{POSTGRES_URL}?search_path={name}"
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        await conn.close()
