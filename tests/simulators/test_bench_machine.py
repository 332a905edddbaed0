"""The bench's account of a machine's CPU (``bench/machine.py``): it sees who burnt what."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from bench import machine

# A stand-in for a ledger under --workers: a parent that waits, and a child that burns a core until stopped.
_LEDGER = "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'while True: pass'])\n"


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_account_names_the_ledgers_processes_and_the_generator() -> None:
    ledger = subprocess.Popen([sys.executable, "-c", _LEDGER], start_new_session=True)
    try:
        time.sleep(0.3)  # its child is running
        before = machine.sample([ledger.pid])
        _burn(0.3)  # this process: the load generator
        time.sleep(0.3)
        after = machine.sample([ledger.pid])
    finally:
        os.killpg(ledger.pid, signal.SIGKILL)  # the stand-in and its child: its own session
        ledger.wait()
    s = machine.shares(before, after)
    wall = after.at - before.at
    assert after.generator - before.generator >= 0.25  # ticks of 10 ms
    assert after.ledger - before.ledger >= 0.2  # the child's: a descendant counts as the ledger
    assert set(s) == {"ledger", "generator", "postgres", "rest", "idle"}
    assert all(v >= 0 for v in s.values())
    assert abs(sum(s.values()) * wall - (after.busy + after.idle - before.busy - before.idle)) < 0.05
    assert machine.line(s).endswith(f"of {os.cpu_count()} cores")
