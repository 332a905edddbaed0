"""One writer thread with group commit.

Every change to the journal is a job run on this thread. The thread takes
all the jobs waiting at that moment, runs each inside its own SAVEPOINT of one
transaction, and commits once: one fsync for the whole group. A job that
fails rolls back alone; a commit that fails fails the whole group, and no
caller is told "done" about anything that is not on disk.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

MAX_GROUP = 512


@dataclass
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: Future[Any]


class GroupCommitWriter:
    def __init__(
        self, connect: Callable[[], sqlite3.Connection], on_error: Callable[[sqlite3.Error], Exception]
    ) -> None:
        self._connect = connect
        self._on_error = on_error
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="posgw-journal-writer", daemon=True)
        self._started = False
        self.groups = 0  # commits made; groups < jobs means fsyncs were shared

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, fn: Callable[[sqlite3.Connection], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put(_Job(fn, future))
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
                # A job whose caller gave up before it started is skipped; once
                # running it can no longer be cancelled, so its outcome always lands.
                group = [job for job in group if job.future.set_running_or_notify_cancel()]
                if group:
                    self._commit(conn, group)
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, group: list[_Job]) -> None:
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in group:
                conn.execute("SAVEPOINT job")
                try:
                    result = job.fn(conn)
                except Exception as err:  # undone alone and handed to its own caller
                    if not conn.in_transaction:
                        # SQLite rolled the whole transaction back by itself (disk full,
                        # I/O error): nothing of this group is on disk, so all of it fails.
                        raise err if isinstance(err, sqlite3.Error) else sqlite3.OperationalError(str(err)) from err
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((job, None, err))
                else:
                    outcomes.append((job, result, None))
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
            self.groups += 1
        except sqlite3.Error as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = self._on_error(err)
            for job in group:
                job.future.set_exception(failure)
            return
        for job, result, error in outcomes:
            if error is None:
                job.future.set_result(result)
            elif isinstance(error, sqlite3.Error):
                job.future.set_exception(self._on_error(error))
            else:
                job.future.set_exception(error)
