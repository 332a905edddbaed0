"""Journal limits: past one, new non-cash sales are refused; nothing stored is dropped.

Cash is always taken (the till must be able to sell), and only a truly full
disk stops it. Card and wallet payments made offline are money the mall is
owed by a third party, so their exposure is capped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from offline_queue.rows import JournalStats
from protocols.errors import RetryableError


class JournalLimitError(RetryableError):
    """The journal is past a limit: take cash, or wait until the ledger is reachable."""

    code = "journal-limit"


@dataclass(frozen=True, slots=True)
class JournalLimits:
    max_records: int
    max_bytes: int
    max_pending_age: float  # seconds

    def breaches(self, stats: JournalStats, now: datetime | None = None) -> list[str]:
        found = []
        if stats.pending >= self.max_records:
            found.append(f"{stats.pending} records wait to be synced (limit {self.max_records})")
        if stats.file_bytes >= self.max_bytes:
            found.append(f"the journal uses {stats.file_bytes} bytes (limit {self.max_bytes})")
        if stats.oldest_pending:
            oldest = datetime.fromisoformat(stats.oldest_pending.replace("Z", "+00:00"))
            age = ((now or datetime.now(UTC)) - oldest).total_seconds()
            if age >= self.max_pending_age:
                found.append(
                    f"the oldest unsynced sale is {age / 3600:.1f} h old (limit {self.max_pending_age / 3600:.1f} h)"
                )
        return found
