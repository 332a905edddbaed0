"""Supervised background work: an error is told and retried, the daemon goes on; a stop passes through."""

from __future__ import annotations

import asyncio

import pytest

from gateway.events import Alert, EventHub
from gateway.ops.supervise import supervised
from protocols.backoff import Backoff


def alerts_of(hub: EventHub) -> list[Alert]:
    found: list[Alert] = []
    hub.listeners.append(lambda e: found.append(e) if isinstance(e, Alert) else None)
    return found


async def test_a_task_that_raises_is_told_and_run_again_until_it_is_done() -> None:
    hub = EventHub()
    alerts = alerts_of(hub)
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RecursionError("a payload nobody foresaw")

    await asyncio.wait_for(supervised("mqtt", flaky, hub, backoff=Backoff(base=0.001, cap=0.01), once=True), 5)
    assert runs == [0, 1, 2]
    assert [a.code for a in alerts] == ["task-failed", "task-failed"]
    assert "mqtt failed (RecursionError: a payload nobody foresaw)" in alerts[0].message


async def test_a_loop_that_stops_on_its_own_is_started_again() -> None:
    runs: list[int] = []
    third = asyncio.Event()

    async def loop_that_returns() -> None:
        runs.append(1)
        if len(runs) == 3:
            third.set()
            await asyncio.sleep(3600)  # the third run keeps working

    task = asyncio.create_task(supervised("scans", loop_that_returns, EventHub(), backoff=Backoff(0.001, 0.01)))
    await asyncio.wait_for(third.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(runs) == 3


async def test_stopping_the_daemon_cancels_the_task_and_is_not_retried() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    hub = EventHub()
    alerts = alerts_of(hub)
    task = asyncio.create_task(supervised("sync", forever, hub))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert alerts == []
