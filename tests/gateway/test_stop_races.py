"""A wait that ends in the same loop turn as its task is asked to stop still stops the task.

On Python 3.11 ``asyncio.wait_for`` returns the awaited result and drops the
caller's cancellation when both land in one turn (fixed in 3.12). A background
loop waiting that way (the sync worker's backoff, cut short when the ledger
comes back) carried on after the daemon cancelled it and the gateway never
stopped (seen in CI: the rules refresher found the ledger as the daemon
stopped). Every wait in the product uses ``asyncio.timeout``, which keeps it.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from gateway.events import EventHub
from gateway.ledger_link.link import LedgerLink

ROOT = Path(__file__).resolve().parents[2]


async def stops_when_woken_as_cancelled(wait: Callable[[], Awaitable[None]], wake: Callable[[], None]) -> bool:
    """Whether a task looping on ``wait()`` ends when ``wake()`` and its cancel land in the same turn."""
    rounds = 0

    async def loop_on_wait() -> None:
        nonlocal rounds
        while True:
            await wait()
            rounds += 1

    task = asyncio.create_task(loop_on_wait())
    await asyncio.sleep(0)  # waiting now
    wake()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=0.5)
    task.cancel()  # a loop that carried on is ended here, so the test never hangs
    return bool(done) and task.cancelled() and rounds == 0


async def test_a_backoff_cut_short_by_the_ledger_coming_back_still_stops() -> None:
    link = LedgerLink(EventHub())
    assert await stops_when_woken_as_cancelled(lambda: link.pause(30), lambda: link.set_online(True))


async def test_waiting_for_records_as_one_is_journaled_still_stops() -> None:
    link = LedgerLink(EventHub())
    assert await stops_when_woken_as_cancelled(lambda: link.wait_for_records(30), link.records_waiting)


def _wait_for_calls(folder: str) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Attribute) and node.attr == "wait_for"):
                continue
            if isinstance(node.value, ast.Name) and node.value.id == "asyncio":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@pytest.mark.parametrize("folder", ["gateway", "drivers", "offline_queue", "ledger", "simulators"])
def test_no_wait_that_can_drop_a_stop(folder: str) -> None:
    assert _wait_for_calls(folder) == [], "use `async with asyncio.timeout(...)`: wait_for drops a cancel on 3.11"
