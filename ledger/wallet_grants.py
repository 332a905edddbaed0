"""Top-up bonuses (充500送50): stored value given, not bought, which lapses.

A top-up's bonus is credited to the member's wallet with its own posting
(kind ``bonus``) and kept as a *grant*: its amount, what is left of it, and
the business day it lapses on. The member's wallet is one balance; what is
spent from it is taken from the grants first, the one lapsing soonest first,
then from the member's own money, so a bonus is used before it can lapse.
Each payment's share of each grant is kept (``grant_uses``): a refund of that
payment gives the grant back first, never turning a bonus into money of the
member's own; a refund of the top-up itself takes back what is left of its
bonus (``bonus-back``). The expiry run (``posgw-ledger wallet expire``) takes
back what is left of each grant past its day (no more than the wallet holds),
with a posting of kind ``expiry``; running it again takes nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from ledger import postings
from ledger.database import Tx, marks


@dataclass
class Grant:
    txn_id: str
    member_id: str
    remaining: int
    expires_on: str
    new: int = 0  # the amount, for a grant made in this group (0: already on the books)


@dataclass
class GrantBook:
    """The grants a group of records may spend or give back, decided in memory, written at the end."""

    live: dict[str, list[Grant]] = field(default_factory=dict)  # member -> grants with something left
    uses: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # sale -> (grant, net amount spent)
    grants: dict[str, Grant] = field(default_factory=dict)  # every grant read or made, by its top-up
    rows: list[tuple[str, str, str, int]] = field(default_factory=list)  # (txn, sale, grant, amount)
    taken: set[str] = field(default_factory=set)  # grants a refund of their top-up took back

    async def load(self, tx: Tx, members: list[str], sales: list[str]) -> None:
        """The members' grants with something left; the grant uses of the sales whose refunds are here."""
        if members:
            for txn_id, member_id, remaining, expires_on in await tx.all(
                "SELECT txn_id, member_id, remaining, expires_on FROM wallet_grants "  # noqa: S608
                f"WHERE member_id IN ({marks(len(members))}) AND remaining > 0 ORDER BY expires_on, txn_id",
                *members,
            ):
                grant = Grant(str(txn_id), str(member_id), int(remaining), str(expires_on))
                self.grants[grant.txn_id] = grant
                self.live.setdefault(grant.member_id, []).append(grant)
        if sales:
            for sale_id, grant_id, amount in await tx.all(
                "SELECT sale_id, grant_id, CAST(SUM(amount) AS BIGINT) FROM grant_uses "  # noqa: S608
                f"WHERE sale_id IN ({marks(len(sales))}) GROUP BY sale_id, grant_id ORDER BY MIN(id)",
                *sales,
            ):
                self.uses.setdefault(str(sale_id), []).append((str(grant_id), int(amount)))
            missing = sorted({g for used in self.uses.values() for g, _ in used} - self.grants.keys())
            if missing:  # spent to nothing: a refund may give them back
                for txn_id, member_id, remaining, expires_on in await tx.all(
                    "SELECT txn_id, member_id, remaining, expires_on FROM wallet_grants "  # noqa: S608
                    f"WHERE txn_id IN ({marks(len(missing))})",
                    *missing,
                ):
                    self.grants[str(txn_id)] = Grant(str(txn_id), str(member_id), int(remaining), str(expires_on))

    def grant(self, txn_id: str, member_id: str, amount: int, expires_on: date) -> None:
        grant = Grant(txn_id, member_id, amount, expires_on.isoformat(), new=amount)
        self.grants[txn_id] = grant
        mine = self.live.setdefault(member_id, [])
        mine.append(grant)
        mine.sort(key=lambda g: (g.expires_on, g.txn_id))

    def spend(self, txn_id: str, member_id: str, amount: int) -> None:
        """A payment of ``amount`` from the member's wallet: taken from the grants first, soonest to lapse first."""
        for grant in self.live.get(member_id, []):
            if amount <= 0:
                break
            taken = min(amount, grant.remaining)
            if taken:
                grant.remaining -= taken
                amount -= taken
                self._use(txn_id, txn_id, grant.txn_id, taken)

    def give_back(self, txn_id: str, sale_id: str, amount: int) -> None:
        """A refund of ``amount`` to the wallet: first to the grants its sale spent, in the order it spent them."""
        for i, (grant_id, spent) in enumerate(self.uses.get(sale_id, [])):
            back = min(amount, spent)
            if back <= 0:
                continue
            grant = self.grants[grant_id]
            grant.remaining += back
            if grant not in self.live.setdefault(grant.member_id, []):
                self.live[grant.member_id].append(grant)
                self.live[grant.member_id].sort(key=lambda g: (g.expires_on, g.txn_id))
            amount -= back
            self.uses[sale_id][i] = (grant_id, spent - back)
            self.rows.append((txn_id, sale_id, grant_id, -back))

    def take_back(self, grant_id: str) -> int:
        """A refund of the top-up that was given ``grant_id``: what is left of that bonus goes; return it."""
        grant = self.grants.get(grant_id)
        if grant is None or not grant.remaining:
            return 0
        taken, grant.remaining = grant.remaining, 0
        self.taken.add(grant_id)
        return taken

    def _use(self, txn_id: str, sale_id: str, grant_id: str, amount: int) -> None:
        self.rows.append((txn_id, sale_id, grant_id, amount))
        used = self.uses.setdefault(sale_id, [])
        for i, (g, spent) in enumerate(used):
            if g == grant_id:
                used[i] = (g, spent + amount)
                return
        used.append((grant_id, amount))

    async def write(self, tx: Tx) -> None:
        made = [g for g in self.grants.values() if g.new]
        await tx.many(
            "INSERT INTO wallet_grants (txn_id, member_id, amount, remaining, expires_on) VALUES ($1, $2, $3, $4, $5)",
            [(g.txn_id, g.member_id, g.new, g.remaining, g.expires_on) for g in made],
        )
        touched = ({grant_id for _, _, grant_id, _ in self.rows} | self.taken) - {g.txn_id for g in made}
        await tx.many(
            "UPDATE wallet_grants SET remaining = $1 WHERE txn_id = $2",
            [(self.grants[g].remaining, g) for g in sorted(touched)],
        )
        await tx.many("INSERT INTO grant_uses (txn_id, sale_id, grant_id, amount) VALUES ($1, $2, $3, $4)", self.rows)


async def expire(tx: Tx, today: str) -> dict[str, int]:
    """Take back what is left of every grant whose day has come (``expires_on`` ≤ ``today``, the mall's
    business day), never more than the member's wallet holds; return what lapsed, by member."""
    lapsed: dict[str, int] = {}
    for txn_id, member_id, remaining in await tx.all(
        "SELECT txn_id, member_id, remaining FROM wallet_grants WHERE expires_on <= $1 AND remaining > 0 "
        "ORDER BY expires_on, txn_id",
        today,
    ):
        row = await tx.one("SELECT wallet FROM members WHERE member_id = $1", member_id)
        taking = min(int(remaining), int(row[0]) if row else 0)
        if taking:
            _, _, rows = postings.plan(f"wallet-expiry:{txn_id}", str(member_id), "fen", taking, -taking, "expiry")
            await tx.many(postings.INSERT, rows)
            await tx.run("UPDATE members SET wallet = wallet - $1 WHERE member_id = $2", taking, member_id)
            lapsed[str(member_id)] = lapsed.get(str(member_id), 0) + taking
        await tx.run("UPDATE wallet_grants SET remaining = 0, lapsed = lapsed + $1 WHERE txn_id = $2", taking, txn_id)
    return lapsed
