"""One writer thread with group commit.

Every change to the journal is a job run on this thread. The thread takes
all the jobs waiting at that moment, runs each inside its own SAVEPOINT of one
transaction, and commits once: one fsync for the whole group. A job that
fails rolls back alone; a commit that fails fails the whole group, and no
caller is told "done" about anything that is not on disk. Results go back to
the event loop in one hop per group, not one per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocols.errors import GatewayError

MAX_GROUP = 512


@dataclass
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_Outcome = tuple[_Job, Any, BaseException | None]


def _settle(outcomes: list[_Outcome]) -> None:
    """On the event loop: hand each caller its result (a caller that gave up is skipped)."""
    for job, result, error in outcomes:
        if job.future.done():
            continue
        if error is None:
            job.future.set_result(result)
        else:
            job.future.set_exception(error)


class GroupCommitWriter:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        on_error: Callable[[sqlite3.Error], Exception],
        on_rollback: Callable[[], None] = lambda: None,
    ) -> None:
        self._connect = connect
        self._on_error = on_error
        self._on_rollback = on_rollback
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="posgw-journal-writer", daemon=True)
        self._started = False
        self.groups = 0  # commits made; fewer groups than jobs means fsyncs were shared

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, fn: Callable[[sqlite3.Connection], Any]) -> asyncio.Future[Any]:
        """Queue ``fn``; the returned future resolves once its group is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put(_Job(fn, future, loop))
        return future

    def stop(self) -> None:
        if self._started:
            self._jobs.put(None)
            self._thread.join()
            self._started = False

    def _run(self) -> None:
        conn = self._connect()
        try:
            stopping = False
            while not stopping:
                first = self._jobs.get()
                if first is None:
                    break
                group = [first]
                while len(group) < MAX_GROUP:
                    try:
                        nxt = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stopping = True
                        break
                    group.append(nxt)
                # A caller that gave up before its job started is skipped; a job
                # already running always commits (a retry then finds it).
                group = [job for job in group if not job.future.cancelled()]
                if group:
                    self._deliver(self._commit(conn, group))
        finally:
            conn.close()

    @staticmethod
    def _deliver(outcomes: list[_Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, items)

    def _commit(self, conn: sqlite3.Connection, group: list[_Job]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        isolate = len(group) > 1  # a lone job needs no savepoint of its own
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in group:
                if isolate:
                    conn.execute("SAVEPOINT job")
                try:
                    result = job.fn(conn)
                except Exception as err:  # undone alone and handed to its own caller
                    if not conn.in_transaction or not isolate:
                        # SQLite rolled the whole transaction back by itself (disk full,
                        # I/O error), or there is nothing else in it: the group fails.
                        raise err if isinstance(err, sqlite3.Error) else _LoneJobError(err) from err
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((job, None, err))
                else:
                    outcomes.append((job, result, None))
                if isolate:
                    conn.execute("RELEASE job")
            conn.execute("COMMIT")
            self.groups += 1
        except (sqlite3.Error, _LoneJobError) as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._on_rollback()
            if isinstance(err, _LoneJobError):
                return [(group[0], None, err.cause)]
            failure = self._on_error(err)
            return [(job, None, failure) for job in group]
        return [(job, result, None if error is None else self._map(error)) for job, result, error in outcomes]

    def _map(self, error: BaseException) -> BaseException:
        return self._on_error(error) if isinstance(error, sqlite3.Error) else error


class _LoneJobError(GatewayError):
    """The only job of a group failed with a non-database error."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause
