"""Group commit: shared fsyncs, a refusing job fails alone, a spoiled group fails whole."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from offline_queue.rows import sqlite_error
from offline_queue.writer import GroupCommitWriter
from protocols.errors import GatewayError


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
    return conn


def rows(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [v for (v,) in conn.execute("SELECT v FROM t ORDER BY v")]
    finally:
        conn.close()


class RefusedError(GatewayError):
    pass


async def test_jobs_share_commits_and_a_refusal_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite3"
    writer = GroupCommitWriter(lambda: connect(path), sqlite_error)
    writer.start()

    def insert(v: int) -> Callable[[sqlite3.Connection], int]:
        def job(conn: sqlite3.Connection) -> int:
            if v == 13:
                raise RefusedError("thirteen is refused before writing")
            conn.execute("INSERT INTO t VALUES (?)", (v,))
            return v

        return job

    results = await asyncio.gather(*(writer.submit(insert(v)) for v in range(30)), return_exceptions=True)
    writer.stop()
    assert [r for r in results if isinstance(r, BaseException)] == [results[13]]
    assert isinstance(results[13], RefusedError)
    assert rows(path) == [v for v in range(30) if v != 13]
    assert writer.groups < 30


async def test_a_job_that_fails_after_writing_spoils_its_group(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite3"
    writer = GroupCommitWriter(lambda: connect(path), sqlite_error)

    def good(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (1)")

    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (2)")
        raise RefusedError("changed its mind after writing")

    first, second = writer.submit(good), writer.submit(half_done)
    writer.start()  # both are already queued: they form one group
    with pytest.raises(RefusedError):
        await second
    with pytest.raises(GatewayError, match="retry"):  # the neighbour is told to retry, not refused
        await first
    writer.stop()
    assert rows(path) == []
