"""Spending a member's points at the till: what is available, who may spend, who says yes.

Online the ledger holds the points before the sale (two-phase: the sale record
consumes the hold). Offline the rulebook's risk limits decide, counted per
member at this till. The balance the till offers is the member snapshot's,
less what this till has spent since the snapshot was asked for.
"""

from __future__ import annotations

from gateway.basket import Basket
from gateway.errors import ConflictError, LedgerError, LedgerRefusedError, PointsRefusedError, RiskLimitError
from gateway.ledger_client import LedgerClient
from gateway.membership import MemberDirectory
from gateway.risk import stale_reason
from gateway.sync import SyncWorker
from offline_queue.journal import TransactionJournal


class PointsSpending:
    def __init__(
        self,
        terminal_id: str,
        directory: MemberDirectory,
        journal: TransactionJournal,
        sync: SyncWorker,
        client: LedgerClient,
    ) -> None:
        self.terminal_id = terminal_id
        self.directory = directory
        self.journal = journal
        self.sync = sync
        self.client = client

    async def reserve(self, basket: Basket, points: int, txn_id: str) -> str | None:
        """Online, hold the points at the ledger first; unreachable, the offline risk limits decide."""
        assert basket.member is not None
        if self.sync.state.online:
            try:
                return await self.client.reserve_points(
                    basket.member.member.member_id, points, txn_id, self.terminal_id
                )
            except LedgerRefusedError as err:
                raise PointsRefusedError(f"the ledger refused the points: {err}") from err
            except LedgerError as err:
                self.sync.set_online(False, str(err))
        await self.check_offline(basket, points)
        return None

    async def check_offline(self, basket: Basket, points: int) -> None:
        """Online, the ledger is the judge; offline, the rulebook's risk limits are."""
        if self.sync.state.online or basket.member is None:
            return
        risk = self.directory.rulebook.risk
        member_id = basket.member.member.member_id
        if points > risk.max_points_per_sale:
            raise RiskLimitError(f"offline, at most {risk.max_points_per_sale} points may be spent on one sale")
        if reason := stale_reason(self.sync, self.directory, "points"):
            raise RiskLimitError(reason)
        spent, sales = await self.journal.offline_spending(member_id)
        if spent + points > risk.max_member_points:
            raise RiskLimitError(
                f"offline, this member may spend {max(0, risk.max_member_points - spent)} more points at this till"
            )
        if sales + 1 > risk.max_member_sales:
            raise RiskLimitError(f"offline, this member may spend points on at most {risk.max_member_sales} sales")

    async def refresh(self, basket: Basket) -> None:
        """The member's balance: the snapshot's, less what this terminal spent since it was taken."""
        if basket.member is None:
            basket.points_available = 0
            return
        member = basket.member.member
        spent = await self.journal.points_spent_since(member.member_id, self.directory.loaded_at)
        basket.points_available = max(0, member.points - spent)

    async def redeem(self, basket: Basket, points: int) -> None:
        """Ask to pay part of the bill with points (priced by the offset rule)."""
        basket.require_open()
        if basket.member is None:
            raise ConflictError("identify the member before spending points")
        if basket.member.weak and points:
            raise ConflictError("a card read by its UID alone may not spend points; ask for the app's member code")
        await self.refresh(basket)
        if points:
            await self.check_offline(basket, min(points, basket.points_available))
        basket.points_to_redeem = points
