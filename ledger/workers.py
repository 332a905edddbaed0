"""``posgw-ledger serve --workers N``: one listening socket, N ledger processes accepting on it.

One ledger process spends most of a request in Python under one interpreter lock (``docs/protocols/sync.md``,
the figures): on a machine with more cores, more processes serve more. Each worker is a node of its own (the
many-nodes design: keyed writes, duties under leases, notices announced once), named ``<node>-w<i>``; this
process only holds the socket, starts the workers and watches them:

* a worker that dies is started again (after 1 s, doubling to 30 s while it keeps dying young), with an
  error in the log; the others serve meanwhile, and what the dead one held was never answered, so the
  terminals send it again (a duplicate if it had committed);
* SIGTERM or SIGINT stops every worker (SIGTERM, then SIGKILL after 30 s) and then this process;
* a worker whose supervisor is gone (SIGKILLed) stops by itself (``--worker-of``: it watches its parent);
* if every worker fails while starting (a bad flag, the database refusing), this process stops with the
  first one's exit status rather than starting them for ever.

PostgreSQL only: SQLite has one writer, a second process would only wait for it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import structlog

log = structlog.get_logger("posgw.ledger.workers")

YOUNG_SECONDS = 10.0  # a worker that dies sooner than this after its start is "dying young"
FIRST_DELAY, MAX_DELAY = 1.0, 30.0
STOP_SECONDS = 30.0


@dataclass
class _Worker:
    index: int
    popen: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = FIRST_DELAY
    due: float = 0.0  # when to start it again (monotonic)
    served: bool = False  # lived past YOUNG_SECONDS at least once
    first_exit: int | None = None  # its status the first time it ended


def listen(host: str, port: int) -> socket.socket:
    """The socket every worker accepts on (inherited; port 0: the system's choice, the same for all)."""
    sock = socket.create_server((host, port), backlog=1024)
    sock.set_inheritable(True)
    return sock


def supervise(argv: list[str], workers: int, sock: socket.socket, node: str) -> int:
    """Run ``workers`` copies of ``posgw-ledger serve`` (``argv``: its arguments, without ``--workers``) on
    ``sock`` (:func:`listen`), until SIGTERM or SIGINT."""
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, bound = sock.getsockname()[:2]
    log.info("ledger_workers_started", address=f"{host}:{bound}", workers=workers, node=node)
    pool = [_Worker(i) for i in range(1, workers + 1)]
    try:
        while not stopping:
            now = time.monotonic()
            for w in pool:
                if w.popen is None and now >= w.due:
                    try:
                        w.popen = _start(argv, sock, f"{node}-w{w.index}")
                    except OSError as err:  # no process to be had now (limits, memory): later, as for a death
                        w.delay = min(w.delay * 2, MAX_DELAY)
                        w.due = now + w.delay
                        log.error("ledger_worker_not_started", worker=w.index, error=str(err), again_in_s=w.delay)
                        continue
                    w.started = now
                elif w.popen is not None and (code := w.popen.poll()) is not None:
                    w.popen = None
                    lived = now - w.started
                    w.served = w.served or lived >= YOUNG_SECONDS
                    w.delay = FIRST_DELAY if lived >= YOUNG_SECONDS else min(w.delay * 2, MAX_DELAY)
                    w.due = now + w.delay
                    w.first_exit = code if w.first_exit is None else w.first_exit
                    log.error(
                        "ledger_worker_died", worker=w.index, code=code, lived_s=round(lived, 1), again_in_s=w.delay
                    )
            if all(w.popen is None and w.first_exit is not None and not w.served for w in pool):  # a fault
                first = pool[0].first_exit
                log.error("ledger_workers_failed", code=first, detail="every worker failed while starting")
                return first or 70
            time.sleep(0.2)
        return 0
    finally:
        _stop_all(pool)
        sock.close()
        log.info("ledger_workers_stopped")


def _start(argv: list[str], sock: socket.socket, name: str) -> subprocess.Popen[bytes]:
    fd = sock.fileno()
    extra = ["--listen-fd", str(fd), "--node", name, "--worker-of", str(os.getpid())]
    return subprocess.Popen([sys.executable, "-m", "ledger.cli", *argv, *extra], pass_fds=(fd,))  # noqa: S603 - its own


def _stop_all(pool: list[_Worker]) -> None:
    running = [w.popen for w in pool if w.popen is not None and w.popen.poll() is None]
    for p in running:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for p in running:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def child_argv(argv: list[str]) -> list[str]:
    """``argv`` without ``--workers N`` / ``--workers=N`` (the workers' own command line)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out
