"""The staff list this till holds: the ledger's, signed, cached on disk beside the member cache.

Believed only once its signature holds for the ledger key the till pinned,
and never for a version older than the one held (a replayed list cannot bring
back a changed PIN or a disabled cashier). A cache that fails either check on
start is reported and ignored. While the till holds no staff, nobody signs in
and nothing asks for a cashier: the mall has not registered its staff yet.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocols.errors import GatewayError
from protocols.staff import Policy, StaffEntry, StaffList, StaffListRefusedError, open_staff
from protocols.untrusted_json import read_json

log = structlog.get_logger("posgw.staff")

MAX_CACHE_BYTES = 32 * 1024 * 1024


class Roster:
    def __init__(self, path: Path, pinned: Callable[[], Ed25519PublicKey]) -> None:
        self.path = path
        self._pinned = pinned
        self.held: StaffList | None = None
        self._envelope: object = None

    @property
    def required(self) -> bool:
        """Whether this till's work needs a cashier signed in (it holds the mall's staff)."""
        return self.held is not None and bool(self.held.staff)

    @property
    def version(self) -> int:
        return self.held.version if self.held else 0

    @property
    def policy(self) -> Policy:
        return self.held.policy if self.held else Policy()

    def get(self, staff_id: str) -> StaffEntry | None:
        return self.held.staff.get(staff_id) if self.held else None

    def accept(self, envelope: object) -> bool:
        """A signed list from the ledger; True if it changed what the till holds. Refused (and what is held
        stays): :class:`~protocols.staff.StaffListRefusedError`."""
        listing = open_staff(envelope, self._pinned())
        if self.held is not None and listing.version < self.held.version:
            raise StaffListRefusedError(f"staff list v{listing.version} is older than v{self.held.version} held")
        changed = self.held is None or listing.version != self.held.version
        self.held, self._envelope = listing, envelope
        return changed

    def save(self) -> None:
        """Write the signed list as sent, atomically (temp file, fsync, rename)."""
        if self._envelope is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(self._envelope, fh)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise

    def load(self) -> bool:
        """The list a previous run saved, checked again against the pinned key; False if none or refused."""
        try:
            self.accept(read_json(self.path.read_bytes(), str(self.path), max_bytes=MAX_CACHE_BYTES))
        except FileNotFoundError:
            return False
        except (OSError, ValueError, RecursionError, GatewayError) as err:
            log.warning("staff_cache_unreadable", path=str(self.path), error=str(err)[:300])
            self.held, self._envelope = None, None
            return False
        return True
