"""The gateway's clock: records carry UTC instants to the millisecond, written one way everywhere.

Kept apart from the ledger link so that a module needing the time does not
import the sync worker (it did, and that made ``sync.py`` a hidden hub).
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    """Now, as records carry it."""
    return instant(datetime.now(UTC))


def instant(at: datetime) -> str:
    """An aware moment as records carry it: UTC, to the millisecond, ``Z``."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
