"""SIGKILL the gateway at random moments during sales and drains: nothing lost, nothing doubled."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.chaos import run_chaos
from simulators.network_chaos import run_network_chaos
from tests.harness import tmpfs

pytestmark = [pytest.mark.ledger, pytest.mark.pty]


@pytest.mark.timeout(300)
async def test_fifty_sigkills_lose_and_double_nothing(tmp_path: Path) -> None:
    report = await run_chaos(tmp_path, kills=50, producers=4, seed=50)
    print(report.summary())
    assert report.acked > 50  # the kills really landed among completed sales
    assert report.lost == []
    assert report.duplicated == []
    assert report.unexpected == []


@pytest.mark.timeout(300)
async def test_a_bad_network_broker_and_disk_during_sales_lose_and_double_nothing(tmp_path: Path) -> None:
    """The ledger answering garbage, hanging, faking acceptance or replaying; the broker dropping; the
    disk filling: every acknowledged sale at the ledger exactly once, none refused there, the daemon alive."""
    with tmpfs(tmp_path / "disk", "16m") as disk:
        report = await run_network_chaos(tmp_path / "run", seconds=15, producers=3, seed=17, disk=disk)
    print(report.summary())
    assert report.acked > 30  # sales really went on through the faults
    assert report.attempts > report.acked  # and the full disk really refused some
    assert report.faked > 0
    assert report.broker_drops > 0
    assert report.disk_fills > 0
    assert report.lost == []
    assert report.duplicated == []
    assert report.unexpected == []
