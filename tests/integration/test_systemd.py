"""The daemon under systemd's notify protocol: ready, watchdog, stopping (a real unix socket)."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from simulators.processes import Stack

pytestmark = [pytest.mark.ledger, pytest.mark.pty]


async def test_ready_then_watchdog_then_stopping(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = tmp_path / "notify.sock"
    listener.bind(str(address))
    listener.setblocking(False)
    stack = Stack.create(tmp_path)
    stack.gateway.env = {**stack.gateway.env, "NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "400000"}
    heard: list[str] = []
    news = asyncio.Event()

    async def listen() -> None:
        loop = asyncio.get_running_loop()
        while True:
            heard.append((await loop.sock_recv(listener, 4096)).decode())
            news.set()

    async def until_heard(prefix: str, count: int = 1) -> None:
        async with asyncio.timeout(20):
            while sum(m.startswith(prefix) for m in heard) < count:
                news.clear()
                await news.wait()

    listening = asyncio.create_task(listen())

    try:
        stack.ledger.start()
        await stack.ledger.wait_healthy()
        stack.gateway.start()
        await until_heard("READY=1")
        await stack.gateway.wait_healthy()  # ready was sent once it served
        await until_heard("WATCHDOG=1", count=3)  # every 0.2 s while the journal answers
        assert stack.gateway.stop(signal.SIGTERM) == 0
        await until_heard("STOPPING=1")
        assert heard[0].startswith("READY=1")  # nothing before ready
        assert all(not m.startswith("READY=1") for m in heard[1:])  # ready once
    finally:
        listening.cancel()
        stack.shutdown()
        listener.close()


def test_the_unit_file_passes_systemds_own_check(tmp_path: Path) -> None:
    unit = (Path(__file__).resolve().parents[2] / "config" / "posgw.service").read_text()
    assert "Type=notify" in unit
    assert "WatchdogSec=" in unit
    # The binary is not installed under /opt here: check the unit with a stand-in for it.
    checked = tmp_path / "posgw.service"
    checked.write_text(unit.replace("/opt/posgw/.venv/bin/posgw", "/bin/true"))
    result = subprocess.run(["systemd-analyze", "verify", str(checked)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""  # no warnings either


@pytest.mark.parametrize(
    "name",
    [
        "posgw-ledger.service",
        "posgw-ledger-points-expiry.service",
        "posgw-ledger-points-expiry.timer",
        "posgw-ledger-tier-review.service",
        "posgw-ledger-tier-review.timer",
        "posgw-ledger-wallet-expiry.service",
        "posgw-ledger-wallet-expiry.timer",
        "posgw-ledger-tier-lapse.service",
        "posgw-ledger-tier-lapse.timer",
        "posgw-ledger-giftcard-expiry.service",
        "posgw-ledger-giftcard-expiry.timer",
    ],
)
def test_the_ledgers_units_pass_systemds_own_check(tmp_path: Path, name: str) -> None:
    config = Path(__file__).resolve().parents[2] / "config"
    for unit in config.glob("posgw-ledger*"):  # the timer is checked with the service it starts
        text = unit.read_text().replace("/opt/posgw/.venv/bin/posgw-ledger", "/bin/true")
        (tmp_path / unit.name).write_text(text.replace("/etc/posgw-ledger/environment", "/dev/null"))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""  # no warnings either
