"""A fleet of terminals with offline spells against one ledger: nothing lost, nothing twice, to the fen."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from ledger.reports import totals_by_terminal
from simulators.fleet import run_fleet
from tests.harness import LedgerHandle, fleet_differences

pytestmark = [pytest.mark.ledger]


async def test_a_fleet_with_offline_spells_reconciles_to_the_fen(ledger: LedgerHandle) -> None:
    result, fleet = await run_fleet(
        ledger.url, ledger.tokens["ledger"], terminals=40, records_each=30, offline_share=0.5
    )
    assert result.accepted == result.records == 1200
    assert result.rejected == 0
    assert sum(1 for t in fleet if any(r.offline for r in t.made)) >= 5  # some really went offline
    assert await fleet_differences(ledger, [r for t in fleet for r in t.made]) == []
    today = datetime.now(UTC).date().isoformat()
    made = totals_by_terminal((r.to_wire() for t in fleet for r in t.made), today)
    assert sum(t.sales_due for t in made.values()) == sum(r.total_due for t in fleet for r in t.made)


async def test_the_fleet_command(ledger: LedgerHandle) -> None:
    argv = [sys.executable, "-m", "simulators.cli", "fleet", "-n", "5", "--records", "4", "--ledger", ledger.url]
    env = {**os.environ, "POSGW_LEDGER_TOKEN": ledger.tokens["ledger"]}
    done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "5 terminals, 20 records" in done.stdout
    assert "accepted 20, duplicate 0, rejected 0" in done.stdout


async def test_the_ledger_killed_mid_batch_accepts_nothing_twice_and_loses_nothing(ledger: LedgerHandle) -> None:
    """SIGKILL the ledger (its database mid-transaction) three times while a fleet syncs; then reconcile."""
    fleet_run = asyncio.create_task(
        run_fleet(ledger.url, ledger.tokens["ledger"], terminals=30, records_each=40, pace_seconds=0.01)
    )
    for _ in range(3):
        await asyncio.sleep(0.3)
        ledger.proc.stop(signal.SIGKILL)
        await ledger.start()
    result, fleet = await fleet_run
    assert result.failed_posts > 0  # the kills really cut batches off
    assert result.rejected == 0
    # Every record once: none lost, none doubled.
    assert await fleet_differences(ledger, [r for t in fleet for r in t.made]) == []
