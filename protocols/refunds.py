"""Refunds: give back exactly what a sale took, unit by unit, the same at the till and at the ledger.

Every unit of every line of the original sale gets a fixed share of what its
line took and gave: its money (``net``), the fen paid with points, the points
and growth it earned and the points it consumed. A version 2 sale carries
those per line (``protocols/records.py``); each line's figures are shared
over its units by the largest-remainder method. A version 1 sale carries only
totals: they are shared over every unit of the lines that take benefits (as
the rulebook names them), pro rata by each unit's net, as posgw always did
for them. A refund takes the next unrefunded units of the lines asked for, so
any set of partial refunds adds up, to the fen and the point, to a full
refund. Coupons come back (if their definition is still valid) when the sale
is refunded in full.

The till plans its refunds with :func:`plan_refund`; the ledger re-checks a
refund record by planning it again from the sale and the earlier refunds it
holds (:func:`expected_refund`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from protocols.business_day import business_day
from protocols.errors import FinalError
from protocols.money import allocate
from protocols.paid_tiers import tier_sold
from protocols.records import RECORD_VERSION, RecordLine, Tender, TransactionRecord
from protocols.rulebook import Rulebook
from protocols.schema import Problems
from protocols.stored_value import TOPUP_SKU


class RefundRefusedError(FinalError):
    """This refund cannot be made: nothing left, a void of another day, more than the tenders can give back."""

    code = "refund-refused"


@dataclass(frozen=True, slots=True)
class Unit:
    """One unit of a sale's line and its fixed share of everything the line took and gave."""

    line_index: int
    net: int
    offset: int
    points: int  # earned
    growth: int
    spent: int  # points consumed


def units(sale: TransactionRecord, excluded: frozenset[str]) -> list[Unit]:
    """Every unit of the sale, line by line, with its shares."""
    if sale.version >= 2:
        out: list[Unit] = []
        for i, line in enumerate(sale.lines):
            each = [1] * line.quantity
            nets = allocate(line.net, each)
            # The fen paid with points follow each unit's discount, so no unit's exceeds its discount.
            discounts = [line.unit_price - n for n in nets]
            shares = zip(
                nets,
                allocate(line.offset, discounts) if line.offset else [0] * line.quantity,
                allocate(line.points, each),
                allocate(line.growth, each),
                allocate(line.points_spent, each),
                strict=True,
            )
            out += [Unit(i, *share) for share in shares]
        return out
    unit_nets: list[tuple[int, int]] = []
    for i, line in enumerate(sale.lines):
        unit_nets += [(i, n) for n in allocate(line.net, [1] * line.quantity)]
    # Version 1: points were earned and spent only on lines that take benefits: an
    # excluded category (gift cards…) carries no share of them.
    weights = [0 if sale.lines[i].category in excluded else n for i, n in unit_nets]
    if sum(weights) == 0:
        weights = [1] * len(unit_nets)
    clawback = allocate(sale.points_earned, weights)
    returned = allocate(sale.points_redeemed, weights)
    growth = allocate(sale.growth_earned, weights)
    return [Unit(i, n, 0, c, g, r) for (i, n), c, r, g in zip(unit_nets, clawback, returned, growth, strict=True)]


def refunded_so_far(sale: TransactionRecord, earlier: Sequence[TransactionRecord]) -> list[int]:
    """Per line of the sale, the units earlier refunds gave back."""
    done = [0] * len(sale.lines)
    for refund in earlier:
        for line in refund.lines:
            if 1 <= line.refund_line <= len(done):
                done[line.refund_line - 1] += line.quantity
    return done


def plan_refund(
    sale: TransactionRecord,
    earlier: list[TransactionRecord],
    wanted: dict[int, int] | None,
    *,
    rulebook: Rulebook,
    today: date,
    draft_fields: Mapping[str, object],
    void: bool = False,
) -> TransactionRecord:
    """The refund record for ``wanted`` (line number from 1 → quantity; ``None`` = all that is left).

    ``today`` is the mall's business day. A ``void`` cancels a sale of today in
    full, before any refund of it; it is recorded as kind ``void`` and gives
    back exactly what a full refund would.
    """
    if sale.kind != "sale":
        raise RefundRefusedError("only a sale can be refunded or voided")
    if void and (earlier or wanted is not None or business_day(sale.created_at, rulebook.zone) != today):
        raise RefundRefusedError("only a sale of today with no refund yet can be voided; refund it instead")
    if (tier := tier_sold(sale)) is not None:
        days = rulebook.tiers[tier].refund_days if tier in rulebook.tiers else 0
        last = business_day(sale.created_at, rulebook.zone) + timedelta(days=days)
        if today > last:
            raise RefundRefusedError(f"the {tier} membership could be refunded until {last} ({days} days after it)")
    done = refunded_so_far(sale, earlier)
    left = [line.quantity - d for line, d in zip(sale.lines, done, strict=True)]
    if wanted is None:
        wanted = {i + 1: n for i, n in enumerate(left) if n}
    problems = Problems("refund")
    for number, quantity in wanted.items():
        if not 1 <= number <= len(sale.lines):
            problems.add(f"lines[{number}]", f"the sale has lines 1..{len(sale.lines)}")
        elif not 0 <= quantity <= left[number - 1]:
            problems.add(f"lines[{number}]", f"only {left[number - 1]} left to refund, asked for {quantity}")
    problems.raise_if_any()
    if not any(wanted.values()):
        raise RefundRefusedError("nothing is left to refund on this sale")

    shares = units(sale, rulebook.no_benefit)
    lines: list[RecordLine] = []
    for number, quantity in sorted(wanted.items()):
        if not quantity:
            continue
        index = number - 1
        mine = [u for u in shares if u.line_index == index][done[index] : done[index] + quantity]
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
                offset=sum(u.offset for u in mine),
                points=sum(u.points for u in mine),
                growth=sum(u.growth for u in mine),
                points_spent=sum(u.spent for u in mine),
                merchant=original.merchant,
            )
        )
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
        points_clawback=sum(x.points for x in lines),
        points_returned=sum(x.points_spent for x in lines),
        growth_clawback=sum(x.growth for x in lines),
        coupons_restored=restored,
        version=RECORD_VERSION,
        member_tier=sale.member_tier,
    )


def plan_topup_refund(
    topup: TransactionRecord,
    earlier: Sequence[TransactionRecord],
    give_back: int,
    hold: str,
    *,
    rulebook_version: int,
    draft_fields: Mapping[str, object],
) -> TransactionRecord:
    """The refund record giving back ``give_back`` fen of a top-up (``protocols/stored_value.py``): taken
    from the member's wallet on the ledger's hold ``hold``, paid back the way the top-up was paid.

    At most what is left of the top-up after ``earlier`` refunds; how much of it the member still holds
    as their own money (not bonus) is the ledger's to say, and the till asks it first. The top-up's
    bonus, what is left of it, is taken back with any refund of it (``ledger/wallet_grants.py``)."""
    if topup.kind != "topup":
        raise RefundRefusedError("only a top-up is given back this way")
    left = topup.total_due - sum(r.total_due for r in earlier)
    if not 0 < give_back <= left:
        raise RefundRefusedError(f"{left} fen of this top-up is left to give back, not {give_back}")
    line = RecordLine(TOPUP_SKU, "Stored value", TOPUP_SKU, 1, give_back, give_back, 0, give_back, 1)
    return TransactionRecord(
        **draft_fields,  # type: ignore[arg-type]
        kind="refund",
        store_id=topup.store_id,
        merchant_id=topup.merchant_id,
        currency=topup.currency,
        lines=(line,),
        total_gross=give_back,
        total_discount=0,
        total_due=give_back,
        tenders=refund_tenders(topup, earlier, give_back),
        change=0,
        member_id=topup.member_id,
        member_via=topup.member_via,
        points_earned=0,
        rulebook_version=rulebook_version,
        refund_of=topup.txn_id,
        reservation=hold,
        version=RECORD_VERSION,
    )


def refund_tenders(sale: TransactionRecord, earlier: Sequence[TransactionRecord], total: int) -> tuple[Tender, ...]:
    """The money goes back the way it came: to each non-cash tender of the sale in the order it
    paid, up to what it paid less what earlier refunds gave it back, then cash. Exact by construction:
    the parts add up to ``total``, which earlier refunds leave room for."""
    given_back = tenders_given_back(earlier)
    cash_paid = sum(t.amount for t in sale.tenders if t.kind == "cash") - sale.change
    parts: list[Tender] = []
    left = total
    for t in (t for t in sale.tenders if t.kind != "cash"):
        share = min(left, t.amount - given_back.get((t.kind, t.ref), 0))
        if share > 0:
            parts.append(Tender(t.kind, share, t.ref, card=t.card))  # a gift card is given back to its card
            left -= share
    if left > 0:
        if left > cash_paid - given_back.get(("cash", None), 0):
            raise RefundRefusedError("this refund is more than the sale's tenders can give back")
        parts.append(Tender("cash", left))
    return tuple(parts) or (Tender("cash", 0),)


def tenders_given_back(refunds: Sequence[TransactionRecord]) -> dict[tuple[str, str | None], int]:
    """What refunds gave back, per ``(kind, ref)`` of tender."""
    given: dict[tuple[str, str | None], int] = {}
    for refund in refunds:
        for t in refund.tenders:
            given[(t.kind, t.ref)] = given.get((t.kind, t.ref), 0) + t.amount
    return given


def _still_valid(key: str, rulebook: Rulebook, today: date) -> bool:
    """A coupon (``<coupon id>:<instance>``) comes back only while its definition is still valid."""
    definition = rulebook.coupons.get(key.partition(":")[0])
    return definition is not None and (not definition.valid_to or definition.valid_to >= today.isoformat())
