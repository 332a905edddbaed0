"""systemd's notify protocol, without a dependency: readiness, stopping, the watchdog.

With ``Type=notify`` systemd passes ``NOTIFY_SOCKET``; the daemon sends
``READY=1`` once it serves, ``STOPPING=1`` when it drains, and, when the unit
sets ``WatchdogSec=``, ``WATCHDOG=1`` at half that interval — but only while
its own check passes (the journal answers), so a wedged daemon is restarted.
Outside systemd every call is a no-op.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger("posgw.systemd")


def notify(message: str) -> bool:
    """Send one notification; False when not under systemd (or the socket is gone)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as err:
        log.warning("systemd_notify_failed", error=str(err))
        return False
    return True


def watchdog_seconds() -> float | None:
    """Half the watchdog interval systemd asked for, if any (and if it is meant for this process)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


async def watchdog(healthy: Callable[[], Awaitable[bool]]) -> None:
    """Pet the watchdog while ``healthy()`` says so; stop petting (and let systemd act) when it does not."""
    interval = watchdog_seconds()
    if interval is None:
        return
    while True:
        if await healthy():
            notify("WATCHDOG=1")
        else:
            log.error("watchdog_withheld", reason="the daemon's own check failed")
        await asyncio.sleep(interval)
