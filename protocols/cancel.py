"""A cancellation that must not be lost.

On Python 3.11, ``asyncio.wait_for`` returns its result and drops the
caller's cancellation when the awaited call completes in the same loop turn
as the cancel (fixed in 3.12). aiomqtt waits for every SUBACK and PUBACK
that way, so a task cancelled just as the broker answered carries on as if
nothing happened and waits for the next message forever: a gateway that
never stops (seen in the tests, one stop in two around a subscribe).
Loops that talk to the broker call :func:`raise_if_cancelled` after each
such call.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` if the current task was asked to stop and the request got lost."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
