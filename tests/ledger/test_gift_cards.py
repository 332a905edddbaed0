"""Gift cards at the ledger (Wangfujing's 购物卡): issued as stock with signed codes, loaded by a believed sale,
spent as a tender on a hold or within the offline limit, given back by a refund, lapsing on their day; what a
till cannot do with them is quarantined, and the books hold throughout."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from offline_queue.ids import uuid7
from protocols.business_day import business_day
from protocols.gift_cards import GIFT_CARD_CATEGORY, GIFT_CARD_PREFIX, card_sku, is_number
from protocols.pricing import BasketLine, price
from protocols.pricing.record import sale_record
from protocols.records import Tender, TransactionRecord
from protocols.refunds import plan_refund
from protocols.rulebook import Rulebook
from protocols.tokens import verify_token
from tests.harness import LedgerHandle, TestTerminal, ledger_cli

pytestmark = [pytest.mark.ledger]

CAKE = BasketLine(1, "6909876543212", "Birthday cake", "bakery", 1, 30_000)


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def load_line(number: str, amount: int) -> BasketLine:
    return BasketLine(1, card_sku(number), "Gift card", GIFT_CARD_CATEGORY, 1, amount)


def sale(book: Rulebook, lines: list[BasketLine], tenders: list[Tender]) -> TransactionRecord:
    priced = price(lines, None, book, "M-BAKERY", day=business_day(datetime.now(UTC), book.zone))
    assert sum(t.amount for t in tenders) == priced.total_due
    return sale_record(
        priced, txn_id=str(uuid7()), terminal_id="", store_id="S-1", merchant_id="M-BAKERY", currency="CNY",
        created_at=now_text(), tenders=tuple(tenders), change=0, member_id=None, member_via=None, member_tier=None,
        offline=False, coupons=(),
    )  # fmt: skip


def cli(ledger: LedgerHandle, *args: str) -> str:
    done = ledger_cli(*args, *ledger.store_args())
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def card(ledger: LedgerHandle, till: TestTerminal, number: str) -> dict[str, object]:
    status, shown = await till.call("GET", f"/v1/giftcards/{number}")
    assert status == 200, shown
    return dict(shown)


@pytest.fixture
async def till(ledger: LedgerHandle) -> TestTerminal:
    return await ledger.terminal("T-WFJ", store="S-1", merchant="M-BAKERY")


async def test_a_card_is_loaded_spent_given_back_and_lapses_with_the_books_holding(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book = await ledger.rulebook()
    issued = [json.loads(line) for line in cli(ledger, "giftcards", "issue", "--count", "2", "--json").splitlines()]
    a, b = issued[0]["number"], issued[1]["number"]
    assert is_number(a)
    assert is_number(b)
    claims = verify_token(
        issued[0]["code"], GIFT_CARD_PREFIX, book.public_keys(), now=int(datetime.now(UTC).timestamp())
    )
    assert claims.subject == a  # the code on the card: its number, signed by the ledger's issuer key
    assert (await card(ledger, till, a))["state"] == "stock"
    # Sold: ¥500 loaded, paid cash; the card active for three years from today.
    (loaded,) = await till.send(sale(book, [load_line(a, 50_000)], [Tender("cash", 50_000)]))
    assert loaded.status == "accepted", loaded
    shown = await card(ledger, till, a)
    today = business_day(datetime.now(UTC), book.zone)
    assert (shown["state"], shown["balance"]) == ("active", 50_000)
    assert shown["expires_on"] == (today + timedelta(days=1_095)).isoformat()
    # Online: held first, then the sale's tender takes it.
    status, held = await till.call("POST", "/v1/giftcards/holds", {"number": a, "amount": 20_000, "ref": "gc-pay-1"})
    assert status == 201, held
    assert (await card(ledger, till, a))["available"] == 30_000
    paid = sale(book, [CAKE], [Tender("giftcard", 20_000, "gc-pay-1", card=a), Tender("cash", 10_000)])
    (spent,) = till.seal([paid])
    status, _ = await till.post_batch([spent])
    assert status == 200
    assert (await card(ledger, till, a))["balance"] == 30_000
    # Offline: within the limit a sale may take with no hold (¥300 in the demo), believed; past it, not.
    offline = sale(book, [CAKE], [Tender("giftcard", 25_000, "gc-off-1", card=a), Tender("cash", 5_000)])
    too_much = sale(book, [CAKE, CAKE], [Tender("giftcard", 35_000, "gc-off-2", card=a), Tender("cash", 25_000)])
    twice = sale(book, [CAKE], [Tender("giftcard", 10_000, "gc-off-3", card=a), Tender("cash", 20_000)])
    results = await till.send(offline, too_much, twice)
    assert [r.status for r in results] == ["accepted", "quarantined", "accepted"], results
    assert "the offline limit is 30000 fen a sale" in (results[1].reason or "")
    assert f"gift card {a} overdrawn by ¥50.00" in (results[2].reason or "")
    assert (await card(ledger, till, a))["balance"] == 0
    # The cake paid online is given back: to the card that paid it.
    refund = plan_refund(
        spent, [], None, rulebook=book, today=today,
        draft_fields={"txn_id": str(uuid7()), "terminal_id": "T-WFJ", "seq": 0, "created_at": now_text(),
                      "offline": False},
    )  # fmt: skip
    assert [(t.kind, t.card) for t in refund.tenders] == [("giftcard", a), ("cash", None)]
    (back,) = await till.send(refund)
    assert back.status == "accepted", back
    assert (await card(ledger, till, a))["balance"] == 20_000
    # What a till cannot do: load a card never issued, past a load's bound, or pay with a card never loaded.
    never = "GC" + "0" * 11 + "0"
    refused = await till.send(
        sale(book, [load_line(never, 10_000)], [Tender("cash", 10_000)]),
        sale(book, [load_line(b, 600_000)], [Tender("cash", 600_000)]),
        sale(book, [CAKE], [Tender("giftcard", 30_000, "gc-b", card=b)]),
    )
    assert [r.status for r in refused] == ["quarantined"] * 3, refused
    assert "never issued" in (refused[0].reason or "")
    assert "a load is 5000 to 500000 fen" in (refused[1].reason or "")
    assert "cannot pay" in (refused[2].reason or "")
    status, stock = await till.call("POST", "/v1/giftcards/holds", {"number": b, "amount": 100, "ref": "gc-b-1"})
    assert (status, stock["title"]) == (409, "card-refused")
    # Its day comes: what is left lapses to the mall, once.
    after = (today + timedelta(days=1_096)).isoformat()
    assert "¥200.00 in all" in cli(ledger, "giftcards", "expire", "--day", after)
    assert "¥0.00 in all" in cli(ledger, "giftcards", "expire", "--day", after)
    assert "books hold" in cli(ledger, "check")


async def test_a_till_loads_no_more_in_a_day_than_its_cap(ledger: LedgerHandle, till: TestTerminal) -> None:
    book = await ledger.rulebook()
    assert book.gift_cards is not None
    cap = book.gift_cards.terminal_daily_cap
    numbers = [
        json.loads(x)["number"] for x in cli(ledger, "giftcards", "issue", "--count", "5", "--json").splitlines()
    ]
    loads = [sale(book, [load_line(n, 500_000)], [Tender("cash", 500_000)]) for n in numbers]
    results = await till.send(*loads)
    accepted = cap // 500_000
    assert [r.status for r in results] == ["accepted"] * accepted + ["quarantined"] * (5 - accepted), results
    assert "daily cap" in (results[-1].reason or "")


async def test_a_till_cannot_drain_a_card_it_knows_the_number_of_by_many_small_offline_sales(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    """A record names a card by its number alone: with no hold, what one till takes from a card in sales the
    ledger has not seen is bounded as a member wallet's is (demo: ¥300 a sale, ¥500 in all)."""
    book = await ledger.rulebook()
    (number,) = [json.loads(x)["number"] for x in cli(ledger, "giftcards", "issue", "--json").splitlines()]
    assert (await till.send(sale(book, [load_line(number, 500_000)], [Tender("cash", 500_000)])))[
        0
    ].status == "accepted"
    takes = [
        sale(book, [CAKE], [Tender("giftcard", fen, f"gc-drain-{i}", card=number), Tender("cash", 30_000 - fen)])
        for i, fen in enumerate((30_000, 20_000, 10_000))
    ]
    results = await till.send(*takes)
    assert [r.status for r in results] == ["accepted", "accepted", "quarantined"], results
    assert "past the offline limit of 50000 fen" in (results[2].reason or "")
    assert (await card(ledger, till, number))["balance"] == 500_000 - 50_000
