"""Every ledger test runs on both storage engines: embedded SQLite and the real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.pg import fresh_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def ledger_database(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """None for the SQLite file in the ledger's data directory, or a URL of a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        return
    async with fresh_schema() as url:
        yield url
