"""When a terminal that cannot reach the ledger may still let a member spend.

Shared by points and the stored-value wallet: both need a ledger contact and
a member snapshot recent enough for the rulebook's risk limits.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.ledger_link.link import LedgerLink
from gateway.members.directory import MemberDirectory


def stale_reason(link: LedgerLink, directory: MemberDirectory, what: str) -> str | None:
    """Why offline spending of ``what`` is refused outright (too long offline, snapshot too old), or None."""
    risk = directory.rulebook.risk
    last = link.state.last_contact
    now = link.clock()
    if last is None or now - last > risk.max_offline_hours * 3600:
        return (
            f"the ledger has been out of reach for over {risk.max_offline_hours:g} h: "
            f"no {what} may be spent until it is back"
        )
    snapshot = datetime.fromisoformat(directory.loaded_at.replace("Z", "+00:00"))
    if (datetime.fromtimestamp(now, UTC) - snapshot).total_seconds() > risk.max_snapshot_hours * 3600:
        return (
            f"the member list here is over {risk.max_snapshot_hours:g} h old: {what} cannot "
            "be spent until it is refreshed (discounts still apply)"
        )
    return None
