"""One writer thread with group commit.

Every change to the journal is a job run on this thread. The thread takes
all the jobs waiting at that moment, runs them in one transaction and commits
once: one fsync for the whole group. Jobs validate before they write, so a
job that fails has changed nothing and fails alone; a job that fails after
writing (seen by SQLite's change counter), or a commit that fails, fails the
whole group, and no caller is told "done" about anything that is not on disk. Results go back to
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
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in group:
                changes = conn.total_changes
                try:
                    result = job.fn(conn)
                except sqlite3.Error:
                    raise  # the database itself failed: the whole group fails
                except Exception as err:  # the job refused before writing: it alone fails
                    if conn.total_changes != changes or not conn.in_transaction:
                        raise _GroupSpoiledError(job, err) from err
                    outcomes.append((job, None, err))
                else:
                    outcomes.append((job, result, None))
            conn.execute("COMMIT")
            self.groups += 1
        except (sqlite3.Error, _GroupSpoiledError) as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._on_rollback()
            if isinstance(err, _GroupSpoiledError):
                others = self._on_error(sqlite3.OperationalError("rolled back with a failed neighbour; retry"))
                return [(job, None, err.cause if job is err.job else others) for job in group]
            failure = self._on_error(err)
            return [(job, None, failure) for job in group]
        return outcomes


class _GroupSpoiledError(GatewayError):
    """A job failed after it had written: nothing of its group may be committed."""

    def __init__(self, job: _Job, cause: Exception) -> None:
        super().__init__(str(cause))
        self.job = job
        self.cause = cause
