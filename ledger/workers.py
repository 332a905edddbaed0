"""``posgw-ledger serve --workers N``: N ledger processes listening on one port, the kernel spreading them.

One ledger process spends most of a request in Python under one interpreter lock (``docs/protocols/sync.md``,
the figures): on a machine with more cores, more processes serve more. Each worker is a node of its own (the
many-nodes design: keyed writes, duties under leases, notices announced once), named ``<node>-w<i>``, and
listens on the port with ``SO_REUSEPORT``: the kernel gives each new connection to one of them by its
address, so a fleet's kept-alive connections spread evenly (one socket shared by all would go to whichever
worker woke first, which can be the same one every time). This process only finds the port (free, or the
system's choice for 0), starts the workers and watches them:

* a worker that dies is started again (after 1 s, doubling to 30 s while it keeps dying young), with an
  error in the log; the others serve meanwhile, and what the dead one held was never answered, so the
  terminals send it again (a duplicate if it had committed);
* SIGTERM or SIGINT stops every worker (SIGTERM, then SIGKILL after 30 s) and then this process;
* a worker whose supervisor is gone (SIGKILLed) stops by itself (``--worker-of``: it watches its parent);
* if every worker fails while starting (a bad flag, the database refusing), this process stops with the
  first one's exit status rather than starting them for ever;
* the workers keep their metrics in one directory of this process's (``ledger/metrics.py``): a scrape of
  ``/metrics``, whichever worker answers it, counts them all, a dead worker's counts included (its gauges
  not); the directory goes when this process stops.

PostgreSQL only: SQLite has one writer, a second process would only wait for it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import structlog
from prometheus_client.multiprocess import mark_process_dead

from ledger.metrics import MULTIPROC_ENV

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


def free_port(host: str, port: int) -> int:
    """``port`` if nothing listens on it yet (else the ``OSError`` saying why), or the system's choice for 0.

    Bound without ``SO_REUSEPORT`` and let go: a port another program holds is refused here, not shared."""
    with socket.create_server((host, port)) as probe:
        return int(probe.getsockname()[1])


def supervise(argv: list[str], workers: int, host: str, port: int, node: str) -> int:
    """Run ``workers`` copies of ``posgw-ledger serve`` (``argv``: its arguments, without ``--workers`` and
    ``--port``) on ``port`` (:func:`free_port`), until SIGTERM or SIGINT."""
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("ledger_workers_started", address=f"{host}:{port}", workers=workers, node=node)
    pool = [_Worker(i) for i in range(1, workers + 1)]
    metrics = tempfile.mkdtemp(prefix="posgw-ledger-metrics-")
    try:
        while not stopping:
            now = time.monotonic()
            for w in pool:
                if w.popen is None and now >= w.due:
                    try:
                        w.popen = _start(argv, port, f"{node}-w{w.index}", metrics)
                    except OSError as err:  # no process to be had now (limits, memory): later, as for a death
                        w.delay = min(w.delay * 2, MAX_DELAY)
                        w.due = now + w.delay
                        log.error("ledger_worker_not_started", worker=w.index, error=str(err), again_in_s=w.delay)
                        continue
                    w.started = now
                elif w.popen is not None and (code := w.popen.poll()) is not None:
                    try:  # its live gauges go; a file that will not, stays (the supervisor goes on)
                        mark_process_dead(w.popen.pid, metrics)  # type: ignore[no-untyped-call]
                    except OSError as err:
                        log.warning("ledger_worker_metrics_kept", worker=w.index, error=str(err))
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
        shutil.rmtree(metrics, ignore_errors=True)
        log.info("ledger_workers_stopped")


def _start(argv: list[str], port: int, name: str, metrics: str) -> subprocess.Popen[bytes]:
    extra = ["--port", str(port), "--reuse-port", "--node", name, "--worker-of", str(os.getpid())]
    env = {**os.environ, MULTIPROC_ENV: metrics}
    return subprocess.Popen([sys.executable, "-m", "ledger.cli", *argv, *extra], env=env)  # noqa: S603 - its own command


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
    """``argv`` without ``--workers N`` and ``--port P`` (either also as ``--x=v``): the workers' own command
    line, their port given apart."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--workers", "--port"):
            skip = True
        elif not arg.startswith(("--workers=", "--port=")):
            out.append(arg)
    return out
