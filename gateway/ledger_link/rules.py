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
from gateway.errors import LedgerError
from gateway.events import Alert
from gateway.ledger_link.client import LedgerClient
from gateway.ledger_link.link import LedgerLink
from protocols.backoff import Backoff
from protocols.errors import GatewayError
from protocols.pacing import RefreshPacer
from protocols.revocations import RevocationsRefusedError
from protocols.rulebook import Rulebook

log = structlog.get_logger("posgw.rules")


class RulesCache(Protocol):
    """Where signed rules and members are checked and kept (``gateway/members/directory.py``)."""

    @property
    def members_version(self) -> int: ...

    def has_members(self) -> bool: ...

    def wants_full_snapshot(self) -> bool: ...

    def member_count(self) -> int: ...

    def accept_signed(
        self, envelope: object, members: object, loaded_at: str = "", *, delta: bool = False
    ) -> Rulebook: ...

    def save(self, path: Path) -> None: ...

    @property
    def revocations_version(self) -> int: ...

    @property
    def revoked_coupons(self) -> frozenset[str]: ...

    @property
    def revocations_due(self) -> int: ...

    @revocations_due.setter
    def revocations_due(self, version: int) -> None: ...

    def wants_full_revocations(self) -> bool: ...

    def accept_revocations(self, envelope: object) -> int: ...


class StaffCache(Protocol):
    """The staff list the till holds (``gateway/staff/roster.py``): checks and keeps what the ledger signs."""

    @property
    def version(self) -> int: ...

    def accept(self, envelope: object) -> bool: ...

    def save(self) -> None: ...


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
    roster: StaffCache | None = None  # the staff list, refreshed with the rules (``gateway/staff/roster.py``)
    _kick: asyncio.Event = field(default_factory=asyncio.Event)
    _now: asyncio.Event = field(default_factory=asyncio.Event)

    def kick(self) -> None:
        """Refresh soon (a newer rulebook or member revision was announced), paced by ``pacer``."""
        self._kick.set()

    def revocations_announced(self, version: int) -> None:
        """MQTT says the revocation list is at ``version``: fetched soon (paced) if this till is behind.

        Only a fetch: what the till must hold is said by the ledger's signed member list, never by a
        broker (anyone on a permissive one could announce a version that never comes).
        """
        if version > self.directory.revocations_version:
            self.kick()

    def kick_now(self) -> None:
        """Refresh at once, unpaced: an operator's command to this terminal alone."""
        self._now.set()
        self._kick.set()

    async def refresh_once(self) -> None:
        self.pacer.refreshed(time.monotonic())
        asked_at = utc_now()  # sales acknowledged after this may be missing from the snapshot
        since = 0 if self.directory.wants_full_snapshot() else self.directory.members_version
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
        log.info("rules_loaded", rulebook=rulebook.version, members=self.directory.member_count())
        await self._refresh_revocations()
        await self._refresh_staff()
        try:
            await asyncio.to_thread(self.directory.save, self.cache_path)
        except OSError as err:  # a full disk: the rules are in force; only a restart offline would miss them
            log.error("member_cache_not_saved", path=str(self.cache_path), error=err.strerror or str(err))
            message = (
                f"the member cache could not be written ({err.strerror or err}): the till sells on, but a restart "
                "while the ledger is away would start without members"
            )
            if self.link.state.cache_error is None:
                self.link.hub.publish(Alert(code="member-cache-not-saved", message=message))
            self.link.state.cache_error = message
        else:
            self.link.state.cache_error = None

    async def _refresh_revocations(self) -> None:
        """The withdrawn coupon copies: a delta from the version held, or the full list when none is held,
        too many deltas are kept, or a delta cannot apply (one was missed)."""
        directory = self.directory
        try:
            since = 0 if directory.wants_full_revocations() else directory.revocations_version
            try:
                directory.accept_revocations(await self.client.fetch_revocations(since))
            except RevocationsRefusedError as err:
                log.warning("revocations_delta_refused", error=str(err))
                directory.accept_revocations(await self.client.fetch_revocations(0))
        except GatewayError as err:
            message = f"the coupon revocation list could not be brought up to date: {err}"
            if self.link.state.revocations_error is None:
                log.error("revocations_behind", error=str(err))
                self.link.hub.publish(Alert(code="revocations-behind", message=message))
            self.link.state.revocations_error = message
            if isinstance(err, LedgerError):
                raise
            return
        self.link.state.revocations_error = None
        log.info("revocations_loaded", version=directory.revocations_version, copies=len(directory.revoked_coupons))

    async def _refresh_staff(self) -> None:
        """The mall's staff list: refused (and the one held kept) unless signed by the pinned key and no older."""
        if self.roster is None:
            return
        try:
            changed = self.roster.accept(await self.client.fetch_staff())
        except LedgerError:
            raise
        except GatewayError as err:
            log.error("staff_list_refused", error=str(err))
            self.link.hub.publish(Alert(code="staff-list-refused", message=f"{err}; the staff list held stays"))
            return
        if changed:
            log.info("staff_loaded", version=self.roster.version)
            try:
                await asyncio.to_thread(self.roster.save)
            except OSError as err:
                log.error("staff_cache_not_saved", error=err.strerror or str(err))

    async def run(self) -> None:
        backoff = Backoff(base=1.0, cap=self.interval)
        while True:
            try:
                await self.refresh_once()
            except LedgerError as err:  # the link: offline, or refused
                log.warning("rules_refresh_failed", error=str(err))
                self.link.failed(err)
                await self.link.pause(backoff.next_delay())
                continue
            except GatewayError as err:  # the ledger answered; what it sent was refused (said in refresh_once)
                log.warning("rules_refresh_failed", error=str(err))
                await self.link.pause(backoff.next_delay())
                continue
            backoff.reset()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._kick.wait()
                # A notice: paced, as the whole mall hears it; a command cuts the wait short.
                async with asyncio.timeout(self.pacer.wait(time.monotonic())):
                    await self._now.wait()
            self._kick.clear()  # notices heard while waiting are answered by this refresh
            self._now.clear()
