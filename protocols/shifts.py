"""A till's shift: opened with a float, read at any time (X report), closed with the cash counted (Z report).

Sans I/O. A shift is the drawer's session on one till: its ``shift_open``
record names the float, every record made until its ``shift_close`` names the
shift, and the close carries the Z report: the totals of those records and
the cash counted. The totals are a pure function of the records
(``protocols/shift_totals.py``), so the ledger, which holds the same chain, computes
them again and quarantines a close whose report differs by a fen; only the
count of the drawer is the till's word, and the over/short shows it.

Cash in the drawer: the float, plus cash taken (less change given), less cash
paid out by refunds and voids. Tenders are net the same way: what a shift's
sales took less what its refunds gave back, by kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocols.money import format_cny
from protocols.schema import Fields

MAX_FEN = 10**15
# Records that move no money: a shift's ends, and a drawer opened without a sale.
EVENT_KINDS = ("shift_open", "shift_close", "no_sale")
MAX_SHIFT_RECORDS = 100_000  # records a shift may span: the ledger works a Z report out again from all of them
COUNTED_KINDS = ("sale", "refund", "void", "topup", "join", "no_sale")  # what a Z report counts, by kind
POINT_KEYS = ("earned", "spent", "clawed_back", "returned")
UNNAMED = "unnamed"  # the discount of a sale that does not name its benefits (a version 1 record)


@dataclass(frozen=True, slots=True)
class ShiftTotals:
    """What a shift's records add up to: per kind ``[count, fen]``, tenders net by kind, discounts by benefit
    kind, and points earned, spent, clawed back and returned."""

    kinds: dict[str, list[int]] = field(default_factory=dict)  # kind -> [count, fen]
    tenders: dict[str, int] = field(default_factory=dict)
    discounts: dict[str, int] = field(default_factory=dict)
    points: dict[str, int] = field(default_factory=dict)

    @property
    def cash(self) -> int:
        """Cash the shift's records put in the drawer (negative: more paid out than taken)."""
        return self.tenders.get("cash", 0)

    def to_wire(self) -> dict[str, Any]:
        return {
            "kinds": {k: list(v) for k, v in sorted(self.kinds.items())},  # a copy: the record stays as it is
            "tenders": dict(sorted(self.tenders.items())),
            "discounts": dict(sorted(self.discounts.items())),
            "points": dict(sorted(self.points.items())),
        }


@dataclass(frozen=True, slots=True)
class ShiftReport:
    """On a ``shift_open``: the float. On a ``shift_close``: the float, the seq of the open, the totals and the
    cash counted (the Z report)."""

    float_amount: int
    opened_seq: int = 0
    counted: int | None = None
    totals: ShiftTotals | None = None

    @property
    def expected_cash(self) -> int:
        return self.float_amount + (self.totals.cash if self.totals else 0)

    @property
    def over_short(self) -> int:
        """Counted less expected: positive over, negative short (0 before the count)."""
        return 0 if self.counted is None else self.counted - self.expected_cash

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"float_amount": self.float_amount}
        if self.totals is not None:
            wire.update(opened_seq=self.opened_seq, counted=self.counted, totals=self.totals.to_wire())
        return wire


def read_report(f: Fields) -> ShiftReport:
    """Read a record's ``shift_report``; problems go to ``f.problems``."""
    float_amount = f.integer("float_amount", minimum=0, maximum=MAX_FEN)
    if not f.has("totals"):
        f.done()
        return ShiftReport(float_amount)
    opened_seq = f.integer("opened_seq", minimum=1, maximum=2**53)
    counted = f.integer("counted", minimum=0, maximum=MAX_FEN)
    tf = f.table("totals", required=True)
    kinds: dict[str, list[int]] = {}
    kf = tf.table("kinds")
    for kind in kf.names():
        pair = kf.integer_list(kind, minimum=0, maximum=MAX_FEN)
        if kind not in COUNTED_KINDS or len(pair) != 2:
            f.problems.add(f"{kf.path}.{kind[:32]}", f"expected one of {', '.join(COUNTED_KINDS)}: [count, fen]")
            continue
        kinds[kind] = pair
    totals = ShiftTotals(
        kinds,
        tf.int_map("tenders", minimum=-MAX_FEN, maximum=MAX_FEN),
        tf.int_map("discounts", maximum=MAX_FEN),
        tf.int_map("points", maximum=10**12),
    )
    tf.done()
    f.done()
    return ShiftReport(float_amount, opened_seq, counted, totals)


def report_lines(report: ShiftReport, title: str) -> list[str]:
    """An X or Z report as text lines (fen as ¥), for the till's screen and printer."""
    totals = report.totals or ShiftTotals()
    out = [title, f"float  {format_cny(report.float_amount)}"]
    for kind, [count, amount] in sorted(totals.kinds.items()):
        out.append(f"{kind}  {count}  {format_cny(amount)}")
    out.extend(f"tender {kind}  {format_cny(amount)}" for kind, amount in sorted(totals.tenders.items()))
    out.extend(f"discount {kind}  {format_cny(amount)}" for kind, amount in sorted(totals.discounts.items()))
    out.extend(f"points {key}  {n}" for key, n in sorted(totals.points.items()))
    out.append(f"cash expected  {format_cny(report.expected_cash)}")
    if report.counted is not None:
        out.append(f"cash counted  {format_cny(report.counted)}")
        out.append(f"over/short  {format_cny(report.over_short)}")
    return out
