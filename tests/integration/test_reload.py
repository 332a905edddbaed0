"""SIGHUP: the safe parts of a changed config take effect, the rest is named as needing a restart."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from simulators.processes import Stack

pytestmark = [pytest.mark.ledger, pytest.mark.pty]


def find(log_path: Path, event: str) -> dict[str, Any] | None:
    for line in log_path.read_text().splitlines():
        if line.startswith("{") and (entry := json.loads(line)).get("event") == event:
            return dict(entry)
    return None


async def logged(log_path: Path, event: str, within: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while (entry := find(log_path, event)) is None:  # noqa: ASYNC110 another process writes the file
            await asyncio.sleep(0.05)
        return entry


async def test_sighup_applies_what_is_safe_and_names_the_rest(tmp_path: Path) -> None:
    stack = Stack.create(tmp_path)
    config = tmp_path / "gateway.toml"
    try:
        stack.ledger.start()
        await stack.ledger.wait_healthy()
        stack.gateway.start()
        await stack.gateway.wait_healthy()
        assert stack.gateway.popen is not None
        text = config.read_text()
        config.write_text(text.replace("timeout = 2.0", "timeout = 3.0") + "\n[journal]\nmax_records = 500\n")
        stack.gateway.popen.send_signal(signal.SIGHUP)
        reloaded = await logged(stack.gateway.log_path, "config_reloaded")
        assert reloaded["applied"] == ["journal limits"]
        assert reloaded["needs_restart"] == ["ledger"]

        await asyncio.to_thread(config.write_text, text.replace('id = "T-DEMO-01"', 'id = ""'))  # a broken file
        stack.gateway.popen.send_signal(signal.SIGHUP)
        refused = await logged(stack.gateway.log_path, "config_reload_refused")
        assert any("terminal.id" in p for p in refused["problems"])
        async with stack.pos() as pos:  # still running, on the configuration it had
            assert (await pos.status())["terminal_id"] == "T-DEMO-01"
    finally:
        stack.shutdown()
