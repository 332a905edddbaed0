"""Background work that cannot end the daemon: each task is supervised, its failures told and retried.

The daemon's tasks (sync, rules refresh, scans, MQTT, the watchdog, and the
payments and refunds a previous run left open) run under :func:`supervised`.
An error escaping one of them — a bug, or an input no parser foresaw — is
logged with its traceback, raised to the till as an ``alert``
(``task-failed``) and counted in the metrics, and the task starts again
after a capped backoff. The till keeps selling meanwhile: a sale needs only
the journal. Cancellation (the daemon stopping) passes through untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from gateway.events import Alert, EventHub
from protocols.backoff import Backoff

log = structlog.get_logger("posgw.tasks")


async def supervised(
    name: str,
    work: Callable[[], Awaitable[None]],
    hub: EventHub,
    *,
    backoff: Backoff | None = None,
    once: bool = False,
) -> None:
    """Run ``work()`` until it returns; when it raises, tell and run it again after a backoff.

    ``once``: work that is done when it returns (settling what a previous run left open); it is
    still retried after a failure, as it is safe to run again.
    """
    backoff = backoff or Backoff(base=1.0, cap=60.0)
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            delay = backoff.next_delay()
            log.exception("task_failed", task=name, retry_in=round(delay, 1))
            hub.publish(Alert(code="task-failed", message=f"{name} failed ({type(err).__name__}: {err}); retrying"))
            await asyncio.sleep(delay)
            continue
        if once:
            return
        # A loop that returned on its own stopped working: start it again (it is not meant to end).
        delay = backoff.next_delay()
        log.error("task_returned", task=name, retry_in=round(delay, 1))
        await asyncio.sleep(delay)
