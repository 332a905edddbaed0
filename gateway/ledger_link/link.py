"""What the till knows of the ledger: reachable or not, since when, and a doorbell for the sync worker.

Points, the member wallet, refunds and sales ask the link whether the ledger
answered lately (online, the ledger judges; offline, the rulebook's risk
limits do) and ring it when a record waits to be sent. The sync worker and the
rules refresher tell it how each call went.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from gateway.events import EventHub, LedgerStatus

log = structlog.get_logger("posgw.ledger_link")


@dataclass
class LinkState:
    online: bool = False
    last_sync: str | None = None
    last_error: str | None = None
    synced_total: int = 0
    rejected_total: int = 0
    quarantined_total: int = 0
    rules_loaded_at: float | None = None
    # The journal is behind the ledger: stays until a person looks.
    integrity_error: str | None = None
    last_contact: float | None = None  # wall-clock time of the last answer from the ledger


class LedgerLink:
    def __init__(self, hub: EventHub, clock: Callable[[], float] = time.time) -> None:
        self.hub = hub
        self.clock = clock
        self.state = LinkState()
        self._waiting = asyncio.Event()

    @property
    def online(self) -> bool:
        return self.state.online

    def set_online(self, online: bool, error: str | None = None) -> None:
        """How the last call to the ledger went; a change is announced to the till."""
        if online:
            self.state.last_contact = self.clock()
        changed = online != self.state.online
        self.state.online = online
        self.state.last_error = error
        if changed:
            log.info("ledger_online" if online else "ledger_offline", error=error)
            self.hub.publish(LedgerStatus(online=online, error=error))

    def records_waiting(self) -> None:
        """A record was journaled: the sync worker sends it now rather than at its next round."""
        self._waiting.set()

    async def wait_for_records(self, seconds: float) -> None:
        """Until a record is journaled, or ``seconds`` have passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._waiting.wait(), seconds)
        self._waiting.clear()
