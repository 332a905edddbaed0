"""A stop request that lands as a broker call completes is not lost (the gateway's link and the ledger's notices)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import pytest

from gateway.ledger_link import mqtt as mqtt_link
from ledger import notices


async def answered_as_cancelled(check: Callable[[], None] | None) -> str:
    """A call answered in the same loop turn as its caller is cancelled (a PUBACK racing a stop)."""
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def caller() -> str:
        result = await asyncio.wait_for(answer, 5)  # how aiomqtt waits for the broker
        if check is not None:
            check()
        return result

    task = asyncio.create_task(caller())
    await asyncio.sleep(0)  # the caller is waiting now
    answer.set_result("acked")
    task.cancel()
    return await task


@pytest.mark.parametrize("check", [mqtt_link.raise_if_cancelled, notices.raise_if_cancelled])
async def test_the_lost_cancellation_is_raised_after_the_call(check: Callable[[], None]) -> None:
    with pytest.raises(asyncio.CancelledError):
        await answered_as_cancelled(check)


async def test_without_the_check_the_caller_would_carry_on_on_this_python() -> None:
    """What the check is for: on 3.11 the cancellation vanishes (3.12 raises it itself)."""
    try:
        outcome = await answered_as_cancelled(None)
    except asyncio.CancelledError:
        outcome = "cancelled"
    assert outcome == ("acked" if sys.version_info < (3, 12) else "cancelled")


async def test_a_task_not_asked_to_stop_goes_on() -> None:
    mqtt_link.raise_if_cancelled()  # nothing to raise
    notices.raise_if_cancelled()
