"""Refunds: give back exactly what a sale took, unit by unit.

Every unit of every line of the original sale gets a fixed share of the
line's net, of the points it earned and of the points it spent, each by the
largest-remainder method over the whole sale (points only over the lines in
categories that take benefits, as the rulebook in force names them). A refund takes the next
unrefunded units of the lines asked for; so any set of partial refunds adds
up, to the fen and the point, to a full refund. Coupons come back (if their
definition is still valid) when the sale is refunded in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from gateway.errors import ConflictError
from protocols.money import allocate
from protocols.records import RecordLine, Tender, TransactionRecord
from protocols.rulebook import Rulebook
from protocols.schema import Problems


@dataclass(frozen=True, slots=True)
class _Unit:
    line_index: int
    net: int
    clawback: int
    returned: int
    growth: int


def _units(sale: TransactionRecord, excluded: frozenset[str]) -> list[_Unit]:
    nets: list[tuple[int, int]] = []
    for i, line in enumerate(sale.lines):
        nets += [(i, n) for n in allocate(line.net, [1] * line.quantity)]
    # Points were earned and spent only on lines that take benefits: an excluded
    # category (gift cards…) carries no share of them.
    weights = [0 if sale.lines[i].category in excluded else n for i, n in nets]
    if sum(weights) == 0:
        weights = [1] * len(nets)
    clawback = allocate(sale.points_earned, weights)
    returned = allocate(sale.points_redeemed, weights)
    growth = allocate(sale.growth_earned, weights)
    return [_Unit(i, n, c, r, g) for (i, n), c, r, g in zip(nets, clawback, returned, growth, strict=True)]


def plan_refund(
    sale: TransactionRecord,
    earlier: list[TransactionRecord],
    wanted: dict[int, int] | None,
    *,
    rulebook: Rulebook,
    today: date,
    draft_fields: dict[str, object],
    void: bool = False,
) -> TransactionRecord:
    """The refund record for ``wanted`` (line number from 1 → quantity; ``None`` = all that is left).

    A ``void`` cancels a sale of today in full, before any refund of it; it is
    recorded as kind ``void`` and gives back exactly what a full refund would.
    """
    if sale.kind != "sale":
        raise ConflictError("only a sale can be refunded or voided")
    if void and (earlier or wanted is not None or sale.created_at[:10] != today.isoformat()):
        raise ConflictError("only a sale of today with no refund yet can be voided; refund it instead")
    done = [0] * len(sale.lines)
    for refund in earlier:
        for line in refund.lines:
            done[line.refund_line - 1] += line.quantity
    left = [line.quantity - d for line, d in zip(sale.lines, done, strict=True)]
    if wanted is None:
        wanted = {i + 1: n for i, n in enumerate(left) if n}
    problems = Problems("refund")
    for number, quantity in wanted.items():
        if not 1 <= number <= len(sale.lines):
            problems.add(f"lines[{number}]", f"the sale has lines 1..{len(sale.lines)}")
        elif quantity > left[number - 1]:
            problems.add(f"lines[{number}]", f"only {left[number - 1]} left to refund, asked for {quantity}")
    problems.raise_if_any()
    if not any(wanted.values()):
        raise ConflictError("nothing is left to refund on this sale")

    units = _units(sale, rulebook.excluded_categories)
    lines, clawback, returned, growth = [], 0, 0, 0
    for number, quantity in sorted(wanted.items()):
        index = number - 1
        mine = [u for u in units if u.line_index == index][done[index] : done[index] + quantity]
        original = sale.lines[index]
        net = sum(u.net for u in mine)
        gross = original.unit_price * quantity
        lines.append(
            RecordLine(
                original.sku,
                original.name,
                original.category,
                quantity,
                original.unit_price,
                gross,
                gross - net,
                net,
                number,
            )
        )
        clawback += sum(u.clawback for u in mine)
        returned += sum(u.returned for u in mine)
        growth += sum(u.growth for u in mine)
    full = all(left[i] - wanted.get(i + 1, 0) == 0 for i in range(len(sale.lines)))
    restored = tuple(c for c in sale.coupons if full and _still_valid(c, rulebook, today))
    total_gross = sum(x.gross for x in lines)
    total_due = sum(x.net for x in lines)
    return TransactionRecord(
        **draft_fields,  # type: ignore[arg-type]
        kind="void" if void else "refund",
        store_id=sale.store_id,
        merchant_id=sale.merchant_id,
        currency=sale.currency,
        lines=tuple(lines),
        total_gross=total_gross,
        total_discount=total_gross - total_due,
        total_due=total_due,
        tenders=refund_tenders(sale, earlier, total_due),
        change=0,
        member_id=sale.member_id,
        member_via=sale.member_via,
        points_earned=0,
        rulebook_version=rulebook.version,
        refund_of=sale.txn_id,
        points_clawback=clawback,
        points_returned=returned,
        growth_clawback=growth,
        coupons_restored=restored,
    )


def refund_tenders(sale: TransactionRecord, earlier: list[TransactionRecord], total: int) -> tuple[Tender, ...]:
    """The money goes back the way it came: to each non-cash tender of the sale in the order it
    paid, up to what it paid less what earlier refunds gave it back, then cash. Exact by construction:
    the parts add up to ``total``, which earlier refunds leave room for."""
    given_back: dict[tuple[str, str | None], int] = {}
    for refund in earlier:
        for t in refund.tenders:
            given_back[(t.kind, t.ref)] = given_back.get((t.kind, t.ref), 0) + t.amount
    cash_paid = sum(t.amount for t in sale.tenders if t.kind == "cash") - sale.change
    order = [t for t in sale.tenders if t.kind != "cash"]
    parts: list[Tender] = []
    left = total
    for t in order:
        share = min(left, t.amount - given_back.get((t.kind, t.ref), 0))
        if share > 0:
            parts.append(Tender(t.kind, share, t.ref))
            left -= share
    if left > 0:
        if left > cash_paid - given_back.get(("cash", None), 0):
            raise ConflictError("this refund is more than the sale's tenders can give back")
        parts.append(Tender("cash", left))
    return tuple(parts) or (Tender("cash", 0),)


def _still_valid(key: str, rulebook: Rulebook, today: date) -> bool:
    """A coupon (``<coupon id>:<instance>``) comes back only while its definition is still valid."""
    definition = rulebook.coupons.get(key.partition(":")[0])
    return definition is not None and (not definition.valid_to or definition.valid_to >= today.isoformat())
