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

from gateway.errors import LedgerAuthError
from gateway.events import EventHub, LedgerStatus
from protocols.errors import GatewayError

log = structlog.get_logger("posgw.ledger_link")


@dataclass
class LinkState:
    online: bool = False
    last_sync: str | None = None
    last_error: str | None = None
    synced_total: int = 0
    rejected_total: int = 0
    quarantined_total: int = 0
    resent_total: int = 0  # records the ledger turned out to lack, sent again
    refused: str | None = None  # the ledger answered, and refused this terminal (its key): until it accepts again
    cache_error: str | None = None  # the member cache could not be saved: until it is
    revocations_error: str | None = None  # the revocation list could not be fetched or applied: until it is
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
        self._back = asyncio.Event()  # set (and replaced) each time the ledger comes back

    @property
    def online(self) -> bool:
        return self.state.online

    def set_online(self, online: bool, error: str | None = None) -> None:
        """How the last call to the ledger went; a change is announced to the till.

        Online is only ever said after an answer the ledger signed for this
        terminal's own request (``client.py``): the ledger is there *and*
        accepts this terminal.
        """
        if online:
            self.state.last_contact = self.clock()
            self.state.refused = None
        changed = online != self.state.online
        self.state.online = online
        self.state.last_error = error
        if changed:
            log.info("ledger_online" if online else "ledger_offline", error=error)
            self.hub.publish(LedgerStatus(online=online, error=error))
            if online:  # whoever waits out a backoff goes now
                self._back.set()
                self._back = asyncio.Event()

    def failed(self, err: GatewayError) -> None:
        """A call to the ledger failed; a refusal of this terminal is kept until the ledger accepts it again."""
        if isinstance(err, LedgerAuthError):
            self.state.refused = str(err)
        self.set_online(False, str(err))

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` (a backoff), or less: until the ledger is found back."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: on 3.11 it can drop the daemon's stop
                await self._back.wait()

    def records_waiting(self) -> None:
        """A record was journaled: the sync worker sends it now rather than at its next round."""
        self._waiting.set()

    async def wait_for_records(self, seconds: float) -> None:
        """Until a record is journaled, or ``seconds`` have passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._waiting.wait()
        self._waiting.clear()
