"""SIGKILL the gateway at random moments during sales and drains: nothing lost, nothing doubled."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.chaos import run_chaos

pytestmark = [pytest.mark.ledger, pytest.mark.pty]


@pytest.mark.timeout(300)
async def test_fifty_sigkills_lose_and_double_nothing(tmp_path: Path) -> None:
    report = await run_chaos(tmp_path, kills=50, producers=4, seed=50)
    print(report.summary())
    assert report.acked > 50  # the kills really landed among completed sales
    assert report.lost == []
    assert report.duplicated == []
    assert report.unexpected == []
