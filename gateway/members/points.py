"""Spending a member's points at the till: what is available, who may spend, who says yes.

Online the ledger holds the points before the sale (two-phase: the sale record
consumes the hold). Offline the rulebook's risk limits decide, counted per
member at this till. The balance the till offers is the member snapshot's,
less what this till has spent since the snapshot was asked for.
"""

from __future__ import annotations

from typing import Protocol

from gateway.errors import ConflictError, LedgerError, LedgerRefusedError, PointsRefusedError, RiskLimitError
from gateway.ledger_link.link import LedgerLink
from gateway.members.directory import MemberDirectory
from gateway.members.match import MemberMatch
from gateway.members.risk import stale_reason
from protocols.rulebook import MemberEntry


class PointsLedger(Protocol):
    """The ledger's points holds (``LedgerClient``)."""

    async def reserve_points(self, member_id: str, points: int, txn_id: str, terminal_id: str) -> str: ...


class PointsSpent(Protocol):
    """What this terminal already spent (the journal)."""

    async def points_spent_since(self, member_id: str, since: str) -> int: ...

    async def offline_spending(self, member_id: str) -> tuple[int, int]: ...


class PointsSpending:
    def __init__(
        self,
        terminal_id: str,
        directory: MemberDirectory,
        journal: PointsSpent,
        link: LedgerLink,
        client: PointsLedger,
    ) -> None:
        self.terminal_id = terminal_id
        self.directory = directory
        self.journal = journal
        self.link = link
        self.client = client

    async def reserve(self, member_id: str, points: int, txn_id: str) -> str | None:
        """Online, hold the points at the ledger first; unreachable, the offline risk limits decide."""
        if self.link.online:
            try:
                return await self.client.reserve_points(member_id, points, txn_id, self.terminal_id)
            except LedgerRefusedError as err:
                raise PointsRefusedError(f"the ledger refused the points: {err}") from err
            except LedgerError as err:
                self.link.set_online(False, str(err))
        await self.check_offline(member_id, points)
        return None

    async def check_offline(self, member_id: str, points: int) -> None:
        """Online, the ledger is the judge; offline, the rulebook's risk limits are."""
        if self.link.online:
            return
        risk = self.directory.rulebook.risk
        if points > risk.max_points_per_sale:
            raise RiskLimitError(f"offline, at most {risk.max_points_per_sale} points may be spent on one sale")
        if reason := stale_reason(self.link, self.directory, "points"):
            raise RiskLimitError(reason)
        spent, sales = await self.journal.offline_spending(member_id)
        if spent + points > risk.max_member_points:
            raise RiskLimitError(
                f"offline, this member may spend {max(0, risk.max_member_points - spent)} more points at this till"
            )
        if sales + 1 > risk.max_member_sales:
            raise RiskLimitError(f"offline, this member may spend points on at most {risk.max_member_sales} sales")

    async def available(self, member: MemberEntry | None) -> int:
        """The member's balance: the snapshot's, less what this terminal spent since it was taken."""
        if member is None:
            return 0
        spent = await self.journal.points_spent_since(member.member_id, self.directory.loaded_at)
        return max(0, member.points - spent)

    async def check_spend(self, match: MemberMatch | None, points: int) -> int:
        """May this member spend ``points`` here now? Return their balance as this till knows it."""
        if match is None:
            raise ConflictError("identify the member before spending points")
        if match.weak and points:
            raise ConflictError("a card read by its UID alone may not spend points; ask for the app's member code")
        available = await self.available(match.member)
        if points:
            await self.check_offline(match.member.member_id, min(points, available))
        return available
