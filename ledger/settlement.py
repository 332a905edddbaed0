"""The tenant settlement (Joy Pay settles to shops T+1): per tenant and business day, what each tender took and
what the mall owes the tenant, to the fen, reconciling with the day report.

For each tenant (the record's ``merchant_id``; at a department store's central
checkout, each line's counter: :func:`by_counter`), over the records it made on
the day that the ledger applied (a refund counted on the day it was made):

- **tenders**: what each way of paying took at its tills, sales and top-ups
  less refunds (cash net of change);
- **discounts by kind**: from each sale's ``benefits`` (tier, promotion,
  coupon, exchange; the points offset apart); a refund gives back each rule's
  share of the discount it returns, counted on the refunds so far, so a sale
  refunded in full gives back exactly what it gave; a sale that names no
  benefits counts as ``unitemized``;
- **what the mall owes the tenant**: the stored value members paid with and
  the gift cards customers paid with (the mall holds both), the fen paid with points (the mall's points), and the
  discounts the mall bears: promotions by their ``funded_by``, coupons and
  exchanges by the rulebook's ``settlement.coupons_funded_by`` (default the
  mall: its coupons are its marketing); tier discounts are the tenant's own;
- **what the tenant owes the mall**: stored value its tills sold (top-ups and
  gift card loads, net of those given back) and its share (``settlement.tenant_points_share``,
  basis points) of the points its sales issued, valued at what the offset pays
  for a point (``100 / points_per_yuan`` fen), rounded down.

``net_due_to_tenant`` is the first less the second. Summed over tenants,
sales, stored value paid, top-ups and points issued are the day report's.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.benefit_check import mall_bears
from protocols.gift_cards import loads
from protocols.money import FULL_RATE, allocate
from protocols.records import Benefit, RecordLine, Tender, TransactionRecord
from protocols.rulebook import Rulebook


@dataclass
class TenantDay:
    merchant_id: str
    sales: int = 0  # sales counted (refunds apart)
    refunds: int = 0
    sales_net: int = 0  # what was due, sales less refunds
    tenders: Counter[str] = field(default_factory=Counter)
    offset: int = 0  # fen paid with points
    discounts: Counter[str] = field(default_factory=Counter)  # by kind, the offset apart
    mall_funded: int = 0  # discounts the mall bears
    topups: int = 0  # stored value sold at the tenant's tills, for the mall
    gift_cards_sold: int = 0  # gift card value its tills loaded, for the mall
    points_issued: int = 0  # points its sales issued (credited), less clawed back
    points_cost: int = 0  # their value in fen
    tenant_points_cost: int = 0  # the tenant's share of it

    @property
    def owed_by_mall(self) -> int:
        return self.tenders["wallet"] + self.tenders["giftcard"] + self.offset + self.mall_funded

    @property
    def owed_to_mall(self) -> int:
        return self.topups + self.gift_cards_sold + self.tenant_points_cost

    def to_wire(self) -> dict[str, Any]:
        return {
            "merchant_id": self.merchant_id,
            "sales": self.sales,
            "refunds": self.refunds,
            "sales_net": self.sales_net,
            "tenders": dict(sorted(self.tenders.items())),
            "offset": self.offset,
            "discounts": dict(sorted(self.discounts.items())),
            "mall_funded_discounts": self.mall_funded,
            "topups": self.topups,
            "gift_cards_sold": self.gift_cards_sold,
            "points_issued": self.points_issued,
            "points_cost": self.points_cost,
            "tenant_points_cost": self.tenant_points_cost,
            "owed_by_mall": self.owed_by_mall,
            "owed_to_mall": self.owed_to_mall,
            "net_due_to_tenant": self.owed_by_mall - self.owed_to_mall,
        }


def settle(
    records: Iterable[TransactionRecord],
    sales: dict[str, TransactionRecord],
    refunds_of: dict[str, list[TransactionRecord]],
    points: dict[str, int],
    rules: Callable[[int], Rulebook | None],
    in_force: Rulebook,
) -> dict[str, TenantDay]:
    """The day's settlement by tenant. ``records``: the day's applied records; ``sales``: every sale a refund
    of the day refunds; ``refunds_of``: each such sale's applied refunds, oldest first; ``points``: the points
    each record issued less clawed back (the ledger's postings)."""
    out: dict[str, TenantDay] = {}
    for whole in records:
        if whole.kind not in ("sale", "refund", "void", "topup"):
            out.setdefault(whole.merchant_id, TenantDay(whole.merchant_id))
            continue
        given_whole = whole.benefits if whole.kind == "sale" else _given_back(whole, sales, refunds_of)
        for r, given, issued in by_counter(whole, given_whole, points.get(whole.txn_id, 0)):
            _settle(out, r, given, issued, sales, rules)
    for t in out.values():  # valued under the rulebook in force: one rounding per tenant and day
        t.points_cost, t.tenant_points_cost = points_cost(in_force, t.points_issued)
    return dict(sorted(out.items()))


def _settle(
    out: dict[str, TenantDay],
    r: TransactionRecord,
    given: Sequence[Benefit],
    issued: int,
    sales: dict[str, TransactionRecord],
    rules: Callable[[int], Rulebook | None],
) -> None:
    """One record's part for one tenant: ``given`` its benefits (a refund's given back), ``issued`` its points."""
    t = out.setdefault(r.merchant_id, TenantDay(r.merchant_id))
    book = rules(r.rulebook_version)
    sign = 1 if r.kind in ("sale", "topup") else -1
    for tender in r.tenders:  # what the tenant's tills took, top-ups too
        t.tenders[tender.kind] += sign * tender.amount
    if r.change:
        t.tenders["cash"] -= sign * r.change
    sale = sales.get(r.refund_of or "")
    if r.kind == "topup" or (sale is not None and sale.kind == "topup"):
        t.topups += sign * r.total_due  # taken for the mall
        return
    t.sales += r.kind == "sale"
    t.refunds += r.kind != "sale"
    t.sales_net += sign * r.total_due
    t.gift_cards_sold += sign * sum(amount for _, amount in loads(r.lines))
    t.offset += sign * sum(x.offset for x in r.lines)
    t.points_issued += issued
    if not given and (r.total_discount - sum(x.offset for x in r.lines)):
        t.discounts["unitemized"] += sign * (r.total_discount - sum(x.offset for x in r.lines))
    for b in given:
        if b.kind == "offset":
            continue
        t.discounts[b.kind] += sign * b.amount
        if mall_bears(b, book if r.kind == "sale" else rules(sales[str(r.refund_of)].rulebook_version)):
            t.mall_funded += sign * b.amount


def by_counter(
    r: TransactionRecord, given: Sequence[Benefit], issued: int
) -> list[tuple[TransactionRecord, Sequence[Benefit], int]]:
    """A central checkout's record as one part per counter its lines were sold for (a record whose lines name
    none is one part, its own merchant's). Each part has its lines and what they were due; the tenders fill
    the parts in line order, cash net of change (so each part's tenders are exactly its due); its benefits and
    points are the record's shared by the part's discount and points (largest remainder): every figure of
    the parts adds up to the record's."""
    if not any(x.merchant for x in r.lines):
        return [(r, given, issued)]
    groups: dict[str, list[RecordLine]] = {}
    for x in r.lines:
        groups.setdefault(x.merchant or r.merchant_id, []).append(x)
    net_tenders: list[list[Any]] = []  # [kind, fen left to give, ref]
    change = r.change
    for tender in r.tenders:
        amount = tender.amount
        if tender.kind == "cash" and change:
            taken = min(change, amount)
            amount, change = amount - taken, change - taken
        net_tenders.append([tender, amount])
    discounts = [sum(x.discount - x.offset for x in lines) for lines in groups.values()]
    line_points = [sum(x.points for x in lines) for lines in groups.values()]
    shared = [_share(b.amount, discounts) for b in given]
    points = _share(issued, line_points)
    parts: list[tuple[TransactionRecord, Sequence[Benefit], int]] = []
    for i, (merchant, lines) in enumerate(groups.items()):
        due, tenders = sum(x.net for x in lines), list[Tender]()
        for slot in net_tenders:
            take = min(due - sum(t.amount for t in tenders), slot[1])
            if take > 0:
                tenders.append(dataclasses.replace(slot[0], amount=take))
                slot[1] -= take
        part = dataclasses.replace(
            r,
            merchant_id=merchant,
            lines=tuple(lines),
            total_gross=sum(x.gross for x in lines),
            total_discount=sum(x.discount for x in lines),
            total_due=due,
            tenders=tuple(tenders),
            change=0,
        )
        benefits = [Benefit(b.kind, b.rule, s[i]) for b, s in zip(given, shared, strict=True) if s[i]]
        parts.append((part, benefits, points[i]))
    return parts


def _share(amount: int, weights: list[int]) -> list[int]:
    """``amount`` over ``weights`` by the largest remainder; all to the first where every weight is 0."""
    if not any(weights):
        return [amount, *[0] * (len(weights) - 1)]
    return allocate(amount, weights)


def _given_back(
    r: TransactionRecord, sales: dict[str, TransactionRecord], refunds_of: dict[str, list[TransactionRecord]]
) -> list[Benefit]:
    """A refund's share of its sale's discounts, rule by rule: counted on the refunds so far, so a sale refunded
    in full gives back exactly what it gave."""
    sale = sales.get(r.refund_of or "")
    if sale is None or not sale.benefits:
        return []
    rules = [b for b in sale.benefits if b.kind != "offset"]
    whole = sum(b.amount for b in rules)
    if not whole:
        return []
    before = 0
    for earlier in refunds_of.get(sale.txn_id, []):
        if earlier.txn_id == r.txn_id:
            break
        before += _discount(earlier)
    after = before + _discount(r)
    return [
        Benefit(b.kind, b.rule, share)
        for b in rules
        if (share := b.amount * after // whole - b.amount * before // whole)
    ]


def _discount(r: TransactionRecord) -> int:
    return sum(x.discount - x.offset for x in r.lines)


def points_cost(book: Rulebook, issued: int) -> tuple[int, int]:
    """What ``issued`` points are worth in fen (what the offset pays for them), and the tenant's share."""
    per_yuan = book.offset.points_per_yuan if book.offset is not None else 100
    cost = issued * 100 // per_yuan
    return cost, cost * book.settlement.tenant_points_share // FULL_RATE
