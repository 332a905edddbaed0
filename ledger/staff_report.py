"""The day by who did it: per cashier and per till, what was sold, discounted, refunded, voided and approved,
and each shift closed with its over/short. Read from the records alone (their signed ``cashier``,
``approved_by`` and ``shift``), believed or in quarantine, the latter counted apart."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from protocols.business_day import business_day

NOBODY = "(nobody signed in)"  # records made where the till held no staff list


@dataclass
class Figures:
    sales: int = 0
    sales_due: int = 0
    discounts: int = 0
    refunds: int = 0
    refunds_due: int = 0
    voids: int = 0
    voids_due: int = 0
    topups: int = 0
    topups_due: int = 0
    joins: int = 0
    no_sales: int = 0
    approved: int = 0  # acts this one approved as supervisor
    quarantined: int = 0
    by_tender: dict[str, int] = field(default_factory=dict)

    def add(self, r: dict[str, Any]) -> None:
        kind, due = r["kind"], r["total_due"]
        if r.get("state", "applied") != "applied":
            self.quarantined += 1
            return
        if kind in ("sale", "refund", "void", "topup"):
            name = f"{kind}s"
            setattr(self, name, getattr(self, name) + 1)
            setattr(self, f"{name}_due", getattr(self, f"{name}_due") + due)
        elif kind in ("join", "no_sale"):
            setattr(self, f"{kind}s", getattr(self, f"{kind}s") + 1)
        if kind == "sale":
            self.discounts += r["total_discount"]
        sign = -1 if kind in ("refund", "void") else 1
        for t in r.get("tenders", []):
            self.by_tender[t["kind"]] = self.by_tender.get(t["kind"], 0) + sign * t["amount"]
        if r.get("change"):
            self.by_tender["cash"] = self.by_tender.get("cash", 0) - sign * r["change"]

    def to_wire(self) -> dict[str, Any]:
        wire = {k: v for k, v in self.__dict__.items() if k != "by_tender" and v}
        wire["by_tender"] = {k: v for k, v in sorted(self.by_tender.items()) if v}
        return wire


def staff_day(records: Iterable[dict[str, Any]], day: str, zone: str) -> dict[str, Any]:
    """Per cashier and per till, the figures of ``day``; the shifts closed that day with their over/short."""
    cashiers: dict[str, Figures] = {}
    tills: dict[str, Figures] = {}
    shifts: list[dict[str, Any]] = []
    for r in records:
        if business_day(r["created_at"], zone).isoformat() != day:
            continue
        who = r.get("cashier") or NOBODY
        if r["kind"] not in ("shift_open", "shift_close"):
            cashiers.setdefault(who, Figures()).add(r)
            tills.setdefault(r["terminal_id"], Figures()).add(r)
        if (by := r.get("approved_by")) and r.get("state", "applied") == "applied":
            cashiers.setdefault(by, Figures()).approved += 1
        if r["kind"] == "shift_close":
            report = r["shift_report"]
            expected = report["float_amount"] + report["totals"]["tenders"].get("cash", 0)
            shifts.append(
                {
                    "terminal_id": r["terminal_id"],
                    "shift": r["shift"],
                    "closed_by": who,
                    "closed_at": r["created_at"],
                    "expected_cash": expected,
                    "counted": report["counted"],
                    "over_short": report["counted"] - expected,
                    "state": r.get("state", "applied"),
                }
            )
    return {
        "day": day,
        "zone": zone,
        "cashiers": {k: v.to_wire() for k, v in sorted(cashiers.items())},
        "tills": {k: v.to_wire() for k, v in sorted(tills.items())},
        "shifts": shifts,
    }
