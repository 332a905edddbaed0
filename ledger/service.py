"""The running ledger's state: its store, issuer key, rulebook in force, principals, news and workers.

``ledger/app.py`` serves it over HTTP; ``ledger/cli.py`` builds and runs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.auth import Authenticator
from ledger.database import StorageUnavailableError
from ledger.metrics import LedgerMetrics
from ledger.notices import NoticePublisher
from ledger.rulebooks import assemble
from ledger.store import LedgerStore
from protocols.rulebook import Rulebook
from protocols.tokens import key_id

log = structlog.get_logger("posgw.ledger")

POLL_SECONDS = 2.0  # how soon a running ledger notices a rulebook version loaded by an operator


@dataclass
class Pacing:
    """A token bucket per terminal: ``rate`` a second, ``burst`` at once (per ledger node)."""

    rate: float
    burst: int
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # terminal -> (tokens, at)

    def take(self, who: str, now: float) -> float:
        """0 if ``who`` may go now (a token taken), else the seconds until it may."""
        tokens, at = self.buckets.get(who, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1:
            self.buckets[who] = (tokens, now)
            return (1 - tokens) / self.rate
        self.buckets[who] = (tokens - 1, now)
        return 0.0


@dataclass
class LedgerService:
    store: LedgerStore
    issuer: Ed25519PrivateKey
    rulebook: Rulebook
    app_token: str | None
    operator_token: str | None = None
    notices: NoticePublisher | None = None  # MQTT news for terminals, when a broker is configured
    # Worker processes for signature checks, and how to make them again if one dies (OOM killer, a crash).
    verifier: Executor | None = None
    new_verifier: Callable[[], Executor] | None = None
    auth: Authenticator = field(init=False)
    metrics: LedgerMetrics = field(default_factory=LedgerMetrics)
    lookups: Pacing = field(default_factory=lambda: Pacing(rate=10.0, burst=30))  # identifier lookups per terminal

    def __post_init__(self) -> None:
        self.use_rulebook(self.rulebook)
        self.auth = Authenticator(self.store.terminals.signing_key, self.app_token, self.operator_token)

    def use_rulebook(self, book: Rulebook) -> None:
        """Put ``book`` in force: served to terminals, re-checked against, its ladder and time zone used."""
        self.rulebook = book
        self.store.rules.use(book)

    @property
    def kid(self) -> str:
        return key_id(self.issuer.public_key())


async def follow(svc: LedgerService, phone_salt: str) -> None:
    """Keep ``svc.rulebook`` the newest loaded version (loaded by an operator's command, or another ledger)."""
    while True:
        await asyncio.sleep(POLL_SECONDS)
        try:
            body = await svc.store.get_meta("rulebook")
        except StorageUnavailableError as err:  # the database is away: the version in force stays, ask again
            log.warning("rulebook_check_failed", error=str(err))
            continue
        if body is None or int(body["version"]) <= svc.rulebook.version:
            continue
        svc.use_rulebook(assemble(body, phone_salt, svc.issuer))
        log.info("rulebook_in_force", version=svc.rulebook.version)
        if svc.notices is not None:
            svc.notices.rulebook(svc.rulebook.version)
