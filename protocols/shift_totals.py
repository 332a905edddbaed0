"""A shift's totals worked out from its records (``protocols/shifts.py``): by the till for its X and Z reports,
by the ledger to check a Z report against the chain. Sans I/O."""

from __future__ import annotations

from collections.abc import Iterable

from protocols.records import TransactionRecord
from protocols.shifts import POINT_KEYS, UNNAMED, ShiftTotals


def shift_totals(records: Iterable[TransactionRecord]) -> ShiftTotals:
    """The totals of a shift's records (its open and close excluded: they move nothing)."""
    kinds: dict[str, list[int]] = {}
    tenders: dict[str, int] = {}
    discounts: dict[str, int] = {}
    points = dict.fromkeys(POINT_KEYS, 0)
    for r in records:
        if r.kind in ("shift_open", "shift_close"):
            continue
        count = kinds.setdefault(r.kind, [0, 0])
        count[0] += 1
        count[1] += r.total_due
        sign = -1 if r.kind in ("refund", "void") else 1
        for t in r.tenders:
            tenders[t.kind] = tenders.get(t.kind, 0) + sign * t.amount
        if r.change:
            tenders["cash"] = tenders.get("cash", 0) - sign * r.change
        if r.kind == "sale":
            named = 0
            for b in r.benefits:
                discounts[b.kind] = discounts.get(b.kind, 0) + b.amount
                named += b.amount
            if r.total_discount > named:
                discounts[UNNAMED] = discounts.get(UNNAMED, 0) + r.total_discount - named
        points["earned"] += r.points_earned
        points["spent"] += r.points_redeemed
        points["clawed_back"] += r.points_clawback
        points["returned"] += r.points_returned
    return ShiftTotals(
        kinds,
        {k: v for k, v in tenders.items() if v},
        discounts,
        {k: v for k, v in points.items() if v},
    )
