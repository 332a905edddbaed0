"""Growth value as a group of batches earns it and refunds take it back (the rules: ``ledger/tiers.py``).

Part of a group's plan (``ledger/plan_state.py``): read with the members' balances,
decided in memory record by record, written with the rest. Growth is tier
progress, not money: no postings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger.database import Tx, marks
from ledger.tiers import ADD_GROWTH, INSERT_CHANGE, TAKE_GROWTH, Ladder
from protocols.business_day import DEFAULT_ZONE, business_year
from protocols.records import TransactionRecord

Key = tuple[str, str]  # (member, calendar year)


@dataclass
class GrowthBook:
    ladder: Ladder
    zone: str = DEFAULT_ZONE  # the mall's: a record's growth counts toward its business year
    tiers: dict[str, str] = field(default_factory=dict)  # each known member's tier, as moved here
    held: dict[Key, int] = field(default_factory=dict)  # growth per member and year, with this group's
    changed: dict[Key, int] = field(default_factory=dict)  # what this group adds (or takes back)
    moves: list[tuple[str, str, str, int, str, str]] = field(default_factory=list)  # tier_changes rows
    # For refunds: the year of each refunded sale, and per (member, year) the tier held
    # before that year's growth first moved the member up.
    sale_years: dict[str, str] = field(default_factory=dict)
    floors: dict[Key, str] = field(default_factory=dict)

    def years(self, records: Sequence[TransactionRecord]) -> list[str]:
        """The years whose growth the group touches: its records' and the sales its refunds refund."""
        return sorted({business_year(r.created_at, self.zone) for r in records} | set(self.sale_years.values()))

    def hold(self, member_id: str, tier: str, year: str | None, growth: int) -> None:
        """A row of the members' read: the member's tier, and their growth in ``year`` if any."""
        self.tiers[member_id] = tier
        if year is not None:
            self.held[(member_id, year)] = growth

    async def load_refunded(self, tx: Tx, records: Sequence[TransactionRecord]) -> None:
        """What refunds taking growth back need (no round trip for a group without any)."""
        refunds = [r for r in records if r.growth_clawback and r.refund_of and r.member_id]
        if not refunds:
            return
        sales = sorted({str(r.refund_of) for r in refunds})
        rows = await tx.all(
            f"SELECT txn_id, created_at FROM transactions WHERE txn_id IN ({marks(len(sales))})",  # noqa: S608
            *sales,
        )
        self.sale_years = {str(t): business_year(str(created), self.zone) for t, created in rows}
        in_group = {r.txn_id: business_year(r.created_at, self.zone) for r in records if r.txn_id in sales}
        self.sale_years |= in_group
        members = sorted({str(r.member_id) for r in refunds})
        for member_id, from_tier, reason in await tx.all(
            "SELECT member_id, from_tier, reason FROM tier_changes "  # noqa: S608
            f"WHERE member_id IN ({marks(len(members))}) AND reason LIKE 'growth %' ORDER BY id",
            *members,
        ):
            self.floors.setdefault((member_id, str(reason).removeprefix("growth ")), from_tier)

    def apply(self, r: TransactionRecord, now: str) -> int:
        """The record's growth for its (known) member; the change to their lifetime growth."""
        assert r.member_id is not None
        change = 0
        if r.growth_earned:
            change += self._earn(r.member_id, business_year(r.created_at, self.zone), r.growth_earned, now)
        if r.growth_clawback:
            year = self.sale_years.get(r.refund_of or "", business_year(r.created_at, self.zone))
            change -= self._take_back(r.member_id, year, r.growth_clawback, now)
        return change

    def _earn(self, member_id: str, year: str, growth: int, now: str) -> int:
        key = (member_id, year)
        self.changed[key] = self.changed.get(key, 0) + growth
        self.held[key] = total = self.held.get(key, 0) + growth
        tier = self.tiers[member_id]
        if (up := self.ladder.upgrade(tier, total)) is not None:
            self.moves.append((member_id, tier, up, total, f"growth {year}", now))
            self.tiers[member_id] = up
            self.floors.setdefault(key, tier)
        return growth

    def _take_back(self, member_id: str, year: str, growth: int, now: str) -> int:
        """A refund takes back what its lines had earned (never below zero), and a tier it no longer holds."""
        key = (member_id, year)
        held = self.held.get(key, 0)
        taken = min(growth, held)
        if not taken:
            return 0
        self.held[key] = left = held - taken
        self.changed[key] = self.changed.get(key, 0) - taken
        tier, before = self.tiers[member_id], self.floors.get(key)
        if before is not None and (down := self.ladder.undo(tier, left, before)) is not None:
            self.moves.append((member_id, tier, down, left, f"refund {year}", now))
            self.tiers[member_id] = down
        return taken

    async def write(self, tx: Tx) -> None:
        """Growth by year and the tier moves (the members' rows carry their tier: the plan writes those)."""
        changed = sorted(self.changed.items())
        await tx.many(ADD_GROWTH, [(m, year, g) for (m, year), g in changed if g > 0])
        await tx.many(TAKE_GROWTH, [(m, year, -g) for (m, year), g in changed if g < 0])  # held, so a row
        await tx.many(INSERT_CHANGE, self.moves)
