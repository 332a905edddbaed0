"""The harness stops what it started: a child that never came up, and any a test left behind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from simulators.processes import STARTED, Proc, free_port, stop_leftovers


def _sleeper(tmp_path: Path) -> Proc:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    return Proc("sleeper", argv, {}, tmp_path / "sleeper.log", f"http://127.0.0.1:{free_port()}/healthz")


async def test_a_child_that_never_becomes_healthy_is_stopped(tmp_path: Path) -> None:
    proc = _sleeper(tmp_path)
    proc.start()
    assert proc.popen is not None
    pid, popen = proc.popen.pid, proc.popen
    with pytest.raises(TimeoutError, match="did not become healthy"):
        await proc.wait_healthy(within=0.3)
    assert popen.poll() is not None  # ended, not left running
    assert pid not in STARTED


def test_leftovers_are_stopped_and_named(tmp_path: Path) -> None:
    proc = _sleeper(tmp_path)
    proc.start()
    assert proc.popen is not None
    popen = proc.popen
    left = stop_leftovers({popen.pid})  # only its own: other tests' children are theirs
    assert left == [f"sleeper (pid {popen.pid})"]
    assert popen.poll() is not None
    assert stop_leftovers({popen.pid}) == []
