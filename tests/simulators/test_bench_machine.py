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
    assert s["ledger"] * wall >= 0.2  # the child's: a descendant counts as the ledger
    assert set(s) == {"ledger", "generator", "postgres", "rest", "idle"}
    assert all(v >= 0 for v in s.values())
    assert machine.line(s).endswith(f"of {os.cpu_count()} cores")


def test_a_process_that_ends_between_samples_takes_nothing_back() -> None:
    """PostgreSQL's backends (and a ledger's workers) come and go: one gone by the second sample is not
    counted, never subtracted; one started since counts whole."""
    before = machine.Sample(at=0.0, busy=10.0, idle=10.0, ledger={1: 5.0, 2: 3.0}, generator=1.0,
                            postgres={7: 4.0, 8: 9.0})  # fmt: skip
    after = machine.Sample(at=2.0, busy=12.0, idle=9.95, ledger={1: 5.5, 3: 0.25}, generator=1.5,
                           postgres={7: 4.5})  # fmt: skip  # 2 and 8 ended; 3 started; idle stepped back
    s = machine.shares(before, after)
    assert s["ledger"] == (0.5 + 0.25) / 2
    assert s["postgres"] == 0.5 / 2
    assert s["generator"] == 0.5 / 2
    assert s["rest"] == (2.0 - 0.75 - 0.5 - 0.5) / 2
    assert s["idle"] == 0.0
