"""The tenant settlement: per tenant, what each tender took and what the mall owes it (stored value, points,
the discounts the mall bears), less what it owes the mall (top-ups, its share of points), equal to the fen to
the day report."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.settlement import by_counter, settle
from offline_queue.ids import uuid7
from protocols.business_day import business_day, minute_of_day
from protocols.pricing import BasketLine, price, with_earning
from protocols.pricing.earning import payments_of
from protocols.pricing.record import sale_record
from protocols.records import Benefit, RecordLine, Tender, TransactionRecord
from protocols.refunds import plan_refund
from protocols.rulebook import MemberEntry, Rulebook
from protocols.stored_value import TOPUP_SKU
from tests.gateway.records import draft
from tests.harness import LedgerHandle, ledger_cli

SUPREME, CLASSIC = MemberEntry("M0002", "supreme"), MemberEntry("M0001", "classic")
DRESS = BasketLine(1, "6900000000017", "Dress", "fashion", 2, 40_000)
CAKE = BasketLine(1, "6909876543212", "Birthday cake", "bakery", 1, 20_000)


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sold(
    book: Rulebook, line: BasketLine, member: MemberEntry, merchant: str, wallet: int = 0, codes: tuple[str, ...] = ()
) -> TransactionRecord:
    at = datetime.now(UTC)
    day, minute = business_day(at, book.zone), minute_of_day(at, book.zone)
    priced = price([line], member, book, merchant, day=day, minute=minute, promo_codes=codes)
    tenders = tuple(
        t for t in (Tender("wallet", wallet, "pay-w"), Tender("cash", priced.total_due - wallet)) if t.amount
    )
    paid = payments_of([(t.kind, t.amount) for t in tenders], 0)
    priced = with_earning(priced, member, book, merchant, day=day, payments=paid)
    return sale_record(
        priced, txn_id=str(uuid7()), terminal_id="", store_id="S-1", merchant_id=merchant, currency="CNY",
        created_at=now_text(), tenders=tenders, change=0, member_id=member.member_id, member_via="qr",
        member_tier=member.tier, offline=True, coupons=(), promo_codes=codes,
    )  # fmt: skip


def topup(book: Rulebook, amount: int) -> TransactionRecord:
    line = BasketLine(1, TOPUP_SKU, "Stored value", TOPUP_SKU, 1, amount)
    priced = price([line], None, book, "M-BAKERY", day=business_day(datetime.now(UTC), book.zone))
    record = sale_record(
        priced, txn_id=str(uuid7()), terminal_id="", store_id="S-1", merchant_id="M-BAKERY", currency="CNY",
        created_at=now_text(), tenders=(Tender("cash", amount),), change=0, member_id="M0001", member_via="qr",
        member_tier=None, offline=False, coupons=(),
    )  # fmt: skip
    assert book.stored_value is not None
    return dataclasses.replace(record, kind="topup", bonus=book.stored_value.bonus_for(amount))


@pytest.mark.ledger
async def test_two_tenants_settle_to_the_fen_and_come_to_the_day_report(ledger: LedgerHandle) -> None:
    book = await ledger.rulebook()
    fashion = await ledger.terminal("T-FASHION", store="S-1", merchant="M-FASHION")
    bakery = await ledger.terminal("T-BAKERY", store="S-1", merchant="M-BAKERY")
    # Two dresses for a supreme member: 90 % (¥80 off), then 满500减100 borne by the mall; ¥100 from the wallet.
    dresses = sold(book, DRESS, SUPREME, "M-FASHION", wallet=10_000)
    assert [(b.kind, b.amount) for b in dresses.benefits] == [("tier", 8_000), ("promotion", 10_000)]
    (sale,) = fashion.seal([dresses])
    status, _ = await fashion.post_batch([sale])
    assert status == 200
    refund = plan_refund(
        sale, [], {1: 1}, rulebook=book, today=business_day(datetime.now(UTC), book.zone),
        draft_fields={"txn_id": str(uuid7()), "terminal_id": "T-FASHION", "seq": 0, "created_at": now_text(),
                      "offline": True},
    )  # fmt: skip
    cake = sold(book, CAKE, CLASSIC, "M-BAKERY", codes=("SPRING20",))  # 85 %, then the flyer's ¥20, the mall's
    results = [*await fashion.send(refund), *await bakery.send(cake, topup(book, 50_000))]
    assert [r.status for r in results] == ["accepted"] * 3, results
    done = ledger_cli("report", "settlement", "--json", *ledger.store_args())
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["reconciles"] is True
    tenants = {t["merchant_id"]: t for t in report["tenants"]}
    dress_day, cake_day = tenants["M-FASHION"], tenants["M-BAKERY"]
    assert dress_day["sales_net"] == 62_000 - refund.total_due == 31_000
    assert dress_day["discounts"] == {"promotion": 5_000, "tier": 4_000}  # half given back with one dress
    assert dress_day["mall_funded_discounts"] == 5_000
    assert sum(dress_day["tenders"].values()) == 31_000
    assert dress_day["owed_by_mall"] == dress_day["tenders"].get("wallet", 0) + 5_000
    assert cake_day["mall_funded_discounts"] == 2_000
    assert (cake_day["topups"], cake_day["tenders"]["cash"]) == (50_000, 15_000 + 50_000)
    assert cake_day["points_issued"] == 1
    points = dress_day["points_issued"]
    assert dress_day["tenant_points_cost"] == points * 5_000 // 10_000  # 100 points = ¥1: a point is 1 fen
    assert cake_day["net_due_to_tenant"] == 2_000 - 50_000 - cake_day["tenant_points_cost"]


def test_a_sale_refunded_in_pieces_gives_back_exactly_what_it_gave_rule_by_rule() -> None:
    """Each refund's share is counted on the refunds so far: three thirds of 100 fen are 33, 33, 34, never 99."""
    sale = TransactionRecord(
        str(uuid7()), "T", 1, "sale", now_text(), "S", "M", "CNY", (), 3_000, 100, 2_900, (Tender("cash", 2_900),),
        0, None, None, 0, 0, False, version=2, benefits=(Benefit("promotion", "P", 100),),
    )  # fmt: skip
    sale = dataclasses.replace(sale, lines=(RecordLine("X", "x", "fashion", 3, 1_000, 3_000, 100, 2_900),))
    thirds = [
        dataclasses.replace(
            sale,
            txn_id=str(uuid7()),
            kind="refund",
            refund_of=sale.txn_id,
            benefits=(),
            tenders=(Tender("cash", n),),
            lines=(RecordLine("X", "x", "fashion", 1, 1_000, 1_000, d, 1_000 - d, refund_line=1),),
            total_gross=1_000,
            total_discount=d,
            total_due=1_000 - d,
        )
        for d, n in ((33, 967), (33, 967), (34, 966))
    ]
    book = Rulebook(1, "CNY", {}, frozenset(), {})
    day = settle([sale, *thirds], {sale.txn_id: sale}, {sale.txn_id: thirds}, {}, lambda v: book, book)
    assert day["M"].discounts == {"promotion": 0}
    assert day["M"].sales_net == 0


@given(
    nets=st.lists(st.tuples(st.integers(0, 50_000), st.integers(0, 3_000), st.sampled_from(["M-A", "M-B", None])),
                  min_size=1, max_size=6),
    wechat_share=st.integers(0, 100),
    change=st.integers(0, 5_000),
    issued=st.integers(0, 500),
)  # fmt: skip
def test_a_central_checkouts_record_splits_by_counter_and_every_figure_adds_up(
    nets: list[tuple[int, int, str | None]], wechat_share: int, change: int, issued: int
) -> None:
    lines = tuple(
        RecordLine("SKU", "x", "general", 1, net + discount, net + discount, discount, net, merchant=m)
        for net, discount, m in nets
    )
    due = sum(x.net for x in lines)
    wechat = due * wechat_share // 100
    tenders = (Tender("wechat", wechat), Tender("cash", due - wechat + change))
    record = dataclasses.replace(
        draft(), lines=lines, total_gross=sum(x.gross for x in lines), total_discount=sum(x.discount for x in lines),
        total_due=due, tenders=tenders, change=change,
    )  # fmt: skip
    given = [Benefit("tier", "classic", record.total_discount)] if record.total_discount else []
    parts = by_counter(record, given, issued)
    assert sum(p.total_due for p, _, _ in parts) == due
    for p, _, _ in parts:
        assert sum(t.amount for t in p.tenders) - p.change == p.total_due  # each counter's tenders are its due
    assert sum(t.amount for p, _, _ in parts for t in p.tenders if t.kind == "wechat") == wechat
    assert (
        sum(t.amount for p, _, _ in parts for t in p.tenders if t.kind == "cash") - sum(p.change for p, _, _ in parts)
        == due - wechat
    )
    assert sum(b.amount for _, bs, _ in parts for b in bs) == record.total_discount
    assert sum(n for _, _, n in parts) == issued
    if any(m for _, _, m in nets):
        assert {p.merchant_id for p, _, _ in parts} == {m or record.merchant_id for _, _, m in nets}
    else:
        assert [p for p, _, _ in parts] == [record]
