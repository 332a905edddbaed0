"""Keep the rulebook and the member cache fresh: fetched from the ledger, checked, saved on disk.

A refresh runs every ``interval``, and sooner when MQTT announces a newer
rulebook or member revision (paced, as the whole mall hears the notice at
once) or an operator commands this terminal (at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from gateway.clock import utc_now
from gateway.events import Alert
from gateway.ledger_link.client import LedgerClient
from gateway.ledger_link.link import LedgerLink
from protocols.backoff import Backoff
from protocols.errors import GatewayError
from protocols.pacing import RefreshPacer
from protocols.rulebook import Rulebook

log = structlog.get_logger("posgw.rules")


class RulesCache(Protocol):
    """Where signed rules and members are checked and kept (``gateway/members/directory.py``)."""

    @property
    def members_version(self) -> int: ...

    def has_members(self) -> bool: ...

    def member_count(self) -> int: ...

    def accept_signed(
        self, envelope: object, members: object, loaded_at: str = "", *, delta: bool = False
    ) -> Rulebook: ...

    def save(self, path: Path) -> None: ...


@dataclass
class RulesRefresher:
    """Fetch the rulebook and member snapshot from the ledger, and cache them on disk."""

    client: LedgerClient
    directory: RulesCache
    cache_path: Path
    interval: float
    link: LedgerLink
    terminal_id: str
    pacer: RefreshPacer = field(default_factory=lambda: RefreshPacer(0.0))  # how soon a notice is answered
    _kick: asyncio.Event = field(default_factory=asyncio.Event)
    _now: asyncio.Event = field(default_factory=asyncio.Event)

    def kick(self) -> None:
        """Refresh soon (a newer rulebook or member revision was announced), paced by ``pacer``."""
        self._kick.set()

    def kick_now(self) -> None:
        """Refresh at once, unpaced: an operator's command to this terminal alone."""
        self._now.set()
        self._kick.set()

    async def refresh_once(self) -> None:
        self.pacer.refreshed(time.monotonic())
        asked_at = utc_now()  # sales acknowledged after this may be missing from the snapshot
        since = self.directory.members_version if self.directory.has_members() else 0
        envelope, members = await self.client.fetch_rules(since)
        try:
            rulebook = self.directory.accept_signed(envelope, members, asked_at, delta=since > 0)
        except GatewayError as err:
            log.error("rulebook_refused", error=str(err))
            self.link.hub.publish(Alert(code="rulebook-refused", message=f"{err}; the rules in force stay"))
            raise
        # In force from here: said at once (the till's status shows the members from this moment), kept after.
        self.link.state.rules_loaded_at = time.time()
        self.link.set_online(True)
        await asyncio.to_thread(self.directory.save, self.cache_path)
        log.info("rules_loaded", rulebook=rulebook.version, members=self.directory.member_count())

    async def run(self) -> None:
        backoff = Backoff(base=1.0, cap=self.interval)
        while True:
            try:
                await self.refresh_once()
            except GatewayError as err:
                log.warning("rules_refresh_failed", error=str(err))
                self.link.set_online(False, str(err))
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.interval)
                # A notice: paced, as the whole mall hears it; a command cuts the wait short.
                await asyncio.wait_for(self._now.wait(), self.pacer.wait(time.monotonic()))
            self._kick.clear()  # notices heard while waiting are answered by this refresh
            self._now.clear()
