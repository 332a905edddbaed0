"""Paid tiers at the ledger (``protocols/paid_tiers.py`` has the rules): bought, held until a day, lapsed, revoked.

Each accepted sale of a tier is a row of ``paid_tiers``: the member, the tier,
the tier they held before buying (what they go back to, or higher if their
growth reached it), the last business day it runs, and its state (``active``,
``replaced`` by a later purchase, ``lapsed``, ``revoked`` by a refund). The
member's tier is set at once, in the batch's transaction, so terminals hear
of it with the member's next cache delta; every move is a ``tier_changes``
row with its reason. A paid tier has no growth threshold, so growth never
moves a member out of it and the yearly review leaves them in it; the lapse
run (``posgw-ledger tiers lapse``, daily) ends what has run its days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from ledger.database import Tx, marks
from ledger.tiers import INSERT_CHANGE, Ladder
from protocols.business_day import business_day


@dataclass
class PaidTier:
    txn_id: str
    member_id: str
    tier: str
    previous: str  # the tier held before buying: never lapsed below
    until: str  # the last business day it runs, YYYY-MM-DD
    state: str = "active"
    new: bool = False  # bought in this group
    terminal_id: str = ""
    sold_on: str = ""


def back_to(ladder: Ladder, previous: str, growth: int) -> str:
    """The tier a member goes back to when a paid tier ends: what their growth reached this year, never below
    what they held before buying."""
    return ladder.highest(previous, ladder.reached(growth)) or previous


@dataclass
class PaidTierBook:
    """The paid tiers a group of records buys or refunds, decided in memory, written at the end."""

    active: dict[str, PaidTier] = field(default_factory=dict)  # member -> their running paid tier
    by_sale: dict[str, PaidTier] = field(default_factory=dict)  # the sale that bought it -> the row
    ended: list[tuple[str, str]] = field(default_factory=list)  # (state, txn) of rows this group ended
    sold: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (terminal, day, tier) -> sold there

    async def load(
        self, tx: Tx, members: list[str], sales: list[str], days: set[tuple[str, str]] | None = None
    ) -> None:
        """The members' running paid tiers, the rows of the tier sales the group's refunds refund, and what the
        group's tills sold of each tier on its days (``days``: (terminal, business day))."""
        for terminal_id, day in sorted(days or ()):
            for tier, n in await tx.all(
                "SELECT tier, COUNT(*) FROM paid_tiers WHERE terminal_id = $1 AND sold_on = $2 GROUP BY tier",
                terminal_id,
                day,
            ):
                self.sold[(terminal_id, day, str(tier))] = int(n)
        if not members and not sales:
            return
        clauses, args = [], []
        if members:
            clauses.append(f"(member_id IN ({marks(len(members))}) AND state = 'active')")
            args += members
        if sales:
            clauses.append(f"txn_id IN ({marks(len(sales), len(args))})")
            args += sales
        for txn_id, member_id, tier, previous, until, state in await tx.all(
            "SELECT txn_id, member_id, tier, previous_tier, valid_until, state FROM paid_tiers "  # noqa: S608
            f"WHERE {' OR '.join(clauses)}",
            *args,
        ):
            row = PaidTier(str(txn_id), str(member_id), str(tier), str(previous), str(until), str(state))
            self.by_sale[row.txn_id] = row
            if row.state == "active":
                self.active[row.member_id] = row

    def sold_before(self, terminal_id: str, day: date, tier: str) -> int:
        return self.sold.get((terminal_id, day.isoformat(), tier), 0)

    def buy(
        self, txn_id: str, member_id: str, tier: str, current: str, day: date, days: int, terminal_id: str
    ) -> PaidTier:
        """A tier bought on ``day`` for ``days``: bought again while it runs, it runs on from its last day; another
        paid tier running is replaced (the tier before it stays the floor)."""
        running = self.active.get(member_id)
        start, previous = day, current
        if running is not None:
            previous = running.previous
            if running.tier == tier:
                start = max(day, date.fromisoformat(running.until) + timedelta(days=1))
            running.state = "replaced"
            self.ended.append(("replaced", running.txn_id))
        until = (start + timedelta(days=days - 1)).isoformat()
        row = PaidTier(
            txn_id, member_id, tier, previous, until, new=True, terminal_id=terminal_id, sold_on=day.isoformat()
        )
        self.active[member_id] = self.by_sale[txn_id] = row
        key = (terminal_id, day.isoformat(), tier)
        self.sold[key] = self.sold.get(key, 0) + 1
        return row

    def revoke(self, sale_id: str) -> PaidTier | None:
        """The paid tier a refunded sale bought, ended now; None when it is not running (lapsed, replaced)."""
        row = self.by_sale.get(sale_id)
        if row is None or row.state != "active":
            return None
        row.state = "revoked"
        self.active.pop(row.member_id, None)
        self.ended.append(("revoked", row.txn_id))
        return row

    async def write(self, tx: Tx, now: str) -> None:
        await tx.many(
            "INSERT INTO paid_tiers (txn_id, member_id, tier, previous_tier, valid_until, state, changed_at, "
            "terminal_id, sold_on) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                (r.txn_id, r.member_id, r.tier, r.previous, r.until, r.state, now, r.terminal_id, r.sold_on)
                for r in self.by_sale.values()
                if r.new
            ],
        )
        old = [(state, now, txn) for state, txn in self.ended if not self.by_sale[txn].new]
        await tx.many("UPDATE paid_tiers SET state = $1, changed_at = $2 WHERE txn_id = $3", old)


async def lapse(tx: Tx, ladder: Ladder, zone: str, now: str, day: date | None = None) -> list[tuple[str, str, str]]:
    """End every paid tier whose last day is before ``day`` (default: the mall's today); (member, from, to) moved.

    Running it again moves nobody. A member whose tier is no longer the paid one
    (an operator moved them) keeps what they have.
    """
    day = day or business_day(now, zone)
    rows = await tx.all(
        "SELECT p.txn_id, p.member_id, p.tier, p.previous_tier, m.tier, CAST(COALESCE(g.growth, 0) AS BIGINT) "
        "FROM paid_tiers p JOIN members m ON m.member_id = p.member_id "
        "LEFT JOIN member_growth g ON g.member_id = p.member_id AND g.year = $2 "
        "WHERE p.state = 'active' AND p.valid_until < $1 ORDER BY p.member_id",
        day.isoformat(),
        str(day.year),
    )
    moves = [
        (str(m), str(held), back_to(ladder, str(previous), int(growth)))
        for _, m, tier, previous, held, growth in rows
        if held == tier
    ]
    await tx.many(
        "UPDATE paid_tiers SET state = 'lapsed', changed_at = $1 WHERE txn_id = $2", [(now, t) for t, *_ in rows]
    )
    await tx.many("UPDATE members SET tier = $1 WHERE member_id = $2", [(to, m) for m, _, to in moves])
    await tx.many(INSERT_CHANGE, [(m, old, to, 0, f"lapsed {old}", now) for m, old, to in moves])
    return moves
