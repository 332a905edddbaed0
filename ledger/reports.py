"""Reports for the mall's operators, from the ledger's records (and a terminal's journal export).

All money is integer fen, summed exactly. A *day* is the records' UTC date
(``created_at``), as terminals stamp them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]


@dataclass
class Totals:
    """One terminal's day, to the fen."""

    sales: int = 0
    sales_due: int = 0
    refunds: int = 0
    refunds_due: int = 0
    by_tender: Counter[str] = field(default_factory=Counter)  # net of change, refunds negative
    txn_ids: set[str] = field(default_factory=set)

    def add(self, r: Record) -> None:
        self.txn_ids.add(r["txn_id"])
        sign = 1 if r["kind"] == "sale" else -1
        if sign > 0:
            self.sales += 1
            self.sales_due += r["total_due"]
        else:
            self.refunds += 1
            self.refunds_due += r["total_due"]
        for t in r["tenders"]:
            self.by_tender[t["kind"]] += sign * t["amount"]
        self.by_tender["cash"] -= sign * r.get("change", 0)

    def figures(self) -> dict[str, int]:
        return {
            "sales": self.sales,
            "sales_due": self.sales_due,
            "refunds": self.refunds,
            "refunds_due": self.refunds_due,
            **{f"tender:{k}": v for k, v in sorted(self.by_tender.items()) if v},
        }


def totals_by_terminal(records: Iterable[Record], day: str) -> dict[str, Totals]:
    out: dict[str, Totals] = defaultdict(Totals)
    for r in records:
        if r["created_at"][:10] == day:
            out[r["terminal_id"]].add(r)
    return dict(out)


@dataclass(frozen=True, slots=True)
class Difference:
    terminal_id: str
    what: str
    terminal: int | str
    ledger: int | str


def reconcile(terminal: dict[str, Totals], ledger: dict[str, Totals]) -> list[Difference]:
    """Every figure where a terminal's journal and the ledger disagree, and the records behind it."""
    found: list[Difference] = []
    for terminal_id in sorted(set(terminal) | set(ledger)):
        mine, theirs = terminal.get(terminal_id, Totals()), ledger.get(terminal_id, Totals())
        a, b = mine.figures(), theirs.figures()
        found += [
            Difference(terminal_id, key, a.get(key, 0), b.get(key, 0))
            for key in sorted(set(a) | set(b))
            if a.get(key, 0) != b.get(key, 0)
        ]
        found += [
            Difference(terminal_id, "not at the ledger (not synced, or rejected)", txn_id, "-")
            for txn_id in sorted(mine.txn_ids - theirs.txn_ids)
        ]
        found += [
            Difference(terminal_id, "at the ledger only (not in this journal)", "-", txn_id)
            for txn_id in sorted(theirs.txn_ids - mine.txn_ids)
        ]
    return found


def day_summary(records: Iterable[Record], day: str) -> dict[str, Any]:
    """Member share of sales, points issued/redeemed/taken back, coupons redeemed, stored value."""
    sales = member_sales = 0
    points: Counter[str] = Counter()
    coupons: Counter[str] = Counter()
    wallet = 0
    for r in records:
        if r["created_at"][:10] != day:
            continue
        sign = 1 if r["kind"] == "sale" else -1
        sales += sign * r["total_due"]
        if r.get("member_id"):
            member_sales += sign * r["total_due"]
        points["earned"] += r.get("points_earned", 0)
        points["redeemed"] += r.get("points_redeemed", 0)
        points["clawed_back"] += r.get("points_clawback", 0)
        points["returned"] += r.get("points_returned", 0)
        for c in r.get("coupons", []):
            coupons[c.partition(":")[0]] += 1
        wallet += sum(sign * t["amount"] for t in r["tenders"] if t["kind"] == "wallet")
    return {
        "day": day,
        "sales_net": sales,
        "member_sales_net": member_sales,
        "member_share": member_sales / sales if sales else 0.0,
        "points": dict(points),
        "coupons_redeemed": dict(sorted(coupons.items())),
        "wallet_paid_net": wallet,
    }
