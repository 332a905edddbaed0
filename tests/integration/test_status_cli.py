"""``posgw status`` and ``posgw devices`` against a running daemon (processes, real config file)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.processes import Stack, demo_env

pytestmark = [pytest.mark.ledger, pytest.mark.pty]


async def posgw(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "gateway.cli", *args, "-c", str(stack.workdir / "gateway.toml")]
    env = demo_env(*(stack.tokens[k] for k in ("api", "operator", "app")))
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, env=env, timeout=30)


async def test_status_and_devices_read_as_tables(tmp_path: Path) -> None:
    stack = Stack.create(tmp_path)
    try:
        stopped = await posgw(stack, "status")
        assert stopped.returncode == 1
        assert "the daemon does not answer" in stopped.stdout
        stack.ledger.start()
        await stack.ledger.wait_healthy()
        stack.gateway.start()
        await stack.gateway.wait_healthy()
        async with stack.pos() as pos:
            await pos.wait_status(lambda s: s["ledger"]["online"] and s["devices"][0]["state"] == "idle")
        shown = await posgw(stack, "status")
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines[0].split() == ["terminal", "T-DEMO-01"]
        assert lines[1].split() == ["ledger", "online"]
        assert "0 pending (¥0.00)" in shown.stdout
        devices = await posgw(stack, "devices")
        assert devices.stdout.splitlines()[0].split() == ["DEVICE", "STATE", "ERROR", "RETRY", "IN"]
        assert devices.stdout.splitlines()[1].split() == ["scanner", "idle"]
    finally:
        stack.shutdown()


async def test_following_a_backlog_drain_with_a_progress_bar(tmp_path: Path) -> None:
    stack = Stack.create(tmp_path)
    try:
        await stack.enrol()  # installed and enrolled; later the ledger is away
        stack.gateway.start()  # the ledger is not there yet: sales wait in the journal
        await stack.gateway.wait_healthy()
        async with stack.pos() as pos:
            for _ in range(30):
                basket = (await pos.new_basket())["basket_id"]
                await pos.add_line(basket, sku="X1", unit_price=100)
                await pos.complete_cash(basket, 100)
            assert (await pos.status())["journal"]["pending"] == 30
        following = asyncio.create_task(posgw(stack, "status", "--wait-drained"))
        await asyncio.sleep(1.0)
        stack.ledger.start()
        await stack.ledger.wait_healthy()
        done = await following
        assert done.returncode == 0, done.stderr
        assert "left" in done.stderr
        assert "drained: the queue is empty (30 records synced)" in done.stderr
    finally:
        stack.shutdown()
