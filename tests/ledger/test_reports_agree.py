"""The day report and the points books count the same things the same way, and points are conserved.

Before, ``report points`` netted earning and spending inside each record while
``report day`` counted them apart (issued 354 / spent 288 against earned 187 /
redeemed 291 for the same data).
"""

from __future__ import annotations

import json
from datetime import date

import pytest

from offline_queue.ids import uuid7
from protocols.pricing import BasketLine, price, with_earning
from protocols.pricing.earning import payments_of
from protocols.pricing.record import record_lines
from protocols.records import RECORD_VERSION, Tender, TransactionRecord
from protocols.refunds import plan_refund
from protocols.rulebook import MemberEntry, Rulebook
from tests.harness import LedgerHandle, ledger_cli

pytestmark = [pytest.mark.ledger]

TUESDAY = date(2026, 12, 1)  # an offset day at the demo mall
CLASSIC = MemberEntry("M0001", "classic")


def sale(book: Rulebook, lines: list[BasketLine], at: str, **kw: object) -> TransactionRecord:
    priced = price(lines, CLASSIC, book, "M-BAKERY", day=TUESDAY, **kw)  # type: ignore[arg-type]
    tenders = [Tender("cash", priced.total_due)]
    priced = with_earning(
        priced, CLASSIC, book, "M-BAKERY", day=TUESDAY, payments=payments_of([("cash", priced.total_due)], 0)
    )
    return TransactionRecord(
        str(uuid7()), "", 0, "sale", at, "S-1", "M-BAKERY", "CNY", record_lines(priced), priced.total_gross,
        priced.total_discount, priced.total_due, tuple(tenders), 0, "M0001", "qr", priced.points_earned, book.version,
        True, points_redeemed=priced.points_redeemed, growth_earned=priced.growth_earned, version=RECORD_VERSION,
        member_tier="classic", coupons=tuple(f"{c}:{'0' * 15}{i}" for i, c in enumerate(priced.coupons_applied)),
    )  # fmt: skip


async def test_the_day_report_and_the_points_books_agree_and_points_are_conserved(ledger: LedgerHandle) -> None:
    book = await ledger.rulebook()
    till = await ledger.terminal("T-BOOKS", store="S-1", merchant="M-BAKERY")
    cake = BasketLine(1, "CAKE", "Cake", "bakery", 1, 1_000_000)  # ¥10,000: 85 points at 85 %
    earn = sale(book, [cake], "2026-12-01T02:00:00.000Z")
    tart = BasketLine(1, "6901234567892", "Egg tart", "bakery", 1, 800)
    roll = BasketLine(2, "ROLL", "Matcha roll", "bakery", 2, 3_800)
    spend = sale(
        book, [tart, roll], "2026-12-01T03:00:00.000Z", coupons=[book.coupons["C-TART-2PTS"]],
        points_to_redeem=50, points_balance=85,
    )  # fmt: skip
    assert (spend.points_redeemed, spend.points_earned) == (52, 0)  # 50 offset, 2 for the tart
    fields = {"txn_id": str(uuid7()), "terminal_id": "T-BOOKS", "seq": 0, "created_at": "2026-12-01T04:00:00.000Z",
              "offline": True}  # fmt: skip
    back = plan_refund(spend, [], {2: 1}, rulebook=book, today=TUESDAY, draft_fields=fields)  # one roll back
    results = await till.send(earn, spend, back)
    assert [r.status for r in results] == ["accepted"] * 3, results
    day = json.loads(ledger_cli("report", "day", "--day", "2026-12-01", "--json", *ledger.store_args()).stdout)
    books = json.loads(ledger_cli("report", "points", "--json", *ledger.store_args()).stdout)
    for figure in ("issued", "redeemed", "offset", "exchanged", "clawed_back", "returned"):
        assert day["points"][figure] == books[figure], figure
    assert (books["issued"], books["offset"], books["exchanged"]) == (85, 50, 2)
    assert books["returned"] == back.points_returned > 0
    assert books["outstanding"] == 85 - 52 + back.points_returned == await ledger.points("M0001")
    checked = ledger_cli("check", *ledger.store_args())
    assert checked.returncode == 0, checked.stdout
