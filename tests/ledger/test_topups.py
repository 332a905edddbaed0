"""Stored value sold at a till (充值): credited only when the ledger accepts the top-up, the bonus a separate
grant spent first and lapsing on its day, refunds giving it back first; and what a till may not sell."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.demo_data import DEMO_BENEFITS
from offline_queue.ids import uuid7
from protocols.business_day import business_day
from protocols.records import RECORD_VERSION, RecordLine, Tender, TransactionRecord
from protocols.refunds import plan_topup_refund
from protocols.rulebook import MemberEntry, Rulebook
from protocols.stored_value import TOPUP_SKU
from tests.harness import LedgerHandle, TestTerminal, ledger_cli
from tests.ledger.test_hostile_terminal import honest_sale, now, refund_of

pytestmark = [pytest.mark.ledger]


def topup(book: Rulebook, member_id: str, amount: int, tender: str = "cash", **changes: Any) -> TransactionRecord:
    """A top-up as a genuine till records it."""
    assert book.stored_value is not None
    line = RecordLine(TOPUP_SKU, "Stored value", TOPUP_SKU, 1, amount, amount, 0, amount)
    record = TransactionRecord(
        str(uuid7()), "", 0, "topup", now(), "S-1", "M-BAKERY", "CNY", (line,), amount, 0, amount,
        (Tender(tender, amount, None if tender == "cash" else f"pay-{uuid7().hex[:12]}"),), 0, member_id, "qr", 0,
        book.version, True, version=RECORD_VERSION, bonus=book.stored_value.bonus_for(amount),
    )  # fmt: skip
    return dataclasses.replace(record, **changes)


async def grants(ledger: LedgerHandle, member_id: str) -> list[tuple[int, int, str]]:
    store = await ledger.open_store()
    try:
        rows = await store.db.read(
            lambda tx: tx.all(
                "SELECT amount, remaining, expires_on FROM wallet_grants WHERE member_id = $1 ORDER BY txn_id",
                member_id,
            )
        )
    finally:
        await store.close()
    return [(int(a), int(r), str(e)) for a, r, e in rows]


async def wallet(ledger: LedgerHandle, member_id: str) -> int:
    value = (await ledger.account(member_id))["wallet"]
    assert isinstance(value, int)
    return value


@pytest.fixture
async def till(ledger: LedgerHandle) -> TestTerminal:
    return await ledger.terminal("T-TOPUP", store="S-1", merchant="M-BAKERY")


async def test_a_top_up_credits_the_wallet_and_its_bonus_is_spent_first_and_lapses(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book = await ledger.rulebook()
    before = await wallet(ledger, "M0003")
    (result,) = await till.send(topup(book, "M0003", 500_00, "wechat"))
    assert result.status == "accepted", result
    assert await wallet(ledger, "M0003") == before + 500_00 + 50_00  # 充500送50
    ((amount, remaining, expires_on),) = await grants(ledger, "M0003")
    today = business_day(datetime.now(UTC), book.zone)
    assert (amount, remaining, expires_on) == (50_00, 50_00, (today + timedelta(days=365)).isoformat())
    # ¥30 paid from the wallet (offline, within the limits): taken from the bonus first.
    member = MemberEntry("M0003", "radiant")
    sale = honest_sale(book, member, 30_00, [Tender("wallet", 30_00, "pay-sv-1")])
    sale = dataclasses.replace(sale, tenders=(Tender("wallet", sale.total_due, "pay-sv-1"),))
    (sealed,) = till.seal([sale])
    status, _ = await till.post_batch([sealed])
    assert status == 200
    assert (await grants(ledger, "M0003"))[0][1] == 50_00 - sale.total_due
    # Refunded: the bonus gets it back, not the member's own money.
    (result,) = await till.send(refund_of(book, sealed))
    assert result.status == "accepted", result
    assert (await grants(ledger, "M0003"))[0][1] == 50_00
    # The bonus's day comes: what is left of it lapses, once.
    day = (today + timedelta(days=365)).isoformat()
    run = ledger_cli("wallet", "expire", "--day", day, *ledger.store_args())
    assert run.returncode == 0, run.stderr
    assert "¥50.00 of top-up bonus lapsed" in run.stdout
    assert await wallet(ledger, "M0003") == before + 500_00
    again = ledger_cli("wallet", "expire", "--day", day, *ledger.store_args())
    assert "¥0.00 of top-up bonus lapsed" in again.stdout
    assert await ledger.books_problems() == []
    report = ledger_cli("report", "day", "--json", *ledger.store_args())
    assert json.loads(report.stdout)["topups"] == 500_00


async def test_the_member_at_the_counter_sees_their_stored_value_with_their_code(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book = await ledger.rulebook()
    (result,) = await till.send(topup(book, "M0001", 1_000_00))
    assert result.status == "accepted", result
    body = {"member_id": "M0001", "code": await ledger.member_qr("M0001")}
    status, statement = await till.call("POST", "/v1/wallet/statement", body)
    assert status == 200, statement
    assert statement["balance"] == (await ledger.account("M0001"))["wallet"]
    assert [b["remaining"] for b in statement["bonus"]] == [120_00]  # 充1000送120
    assert [(h["kind"], h["amount"]) for h in statement["history"][:2]] == [("bonus", 120_00), ("topup", 1_000_00)]
    for code in ("", await ledger.member_qr("M0002"), await ledger.member_qr("M0001") + "x"):
        status, _ = await till.call("POST", "/v1/wallet/statement", {"member_id": "M0001", "code": code})
        assert status == 422  # a till's credentials alone read nobody's stored value


async def test_what_a_till_may_not_sell(ledger: LedgerHandle, till: TestTerminal) -> None:
    """Stored value is money: a till's credentials alone sell none beyond what the rulebook allows."""
    book = await ledger.rulebook()
    assert book.stored_value is not None
    before = [await wallet(ledger, m) for m in ("M0001", "M0002", "M0003")]
    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    attempts = [
        topup(book, "M0001", 500_00, bonus=500_00),  # a bonus the rulebook never gives
        topup(book, "M0001", 5_000_00 + 1),  # above the most one top-up may be
        topup(book, "M0001", 500_00, created_at=three_days_ago),  # backdated, to spread over other days' caps
        topup(book, "M9999", 500_00),  # nobody's
    ]
    results = await till.send(*attempts)
    assert [r.status for r in results] == ["quarantined"] * 4, results
    assert "gives 5000 fen" in (results[0].reason or "")
    assert "¥100.00 to ¥5000.00" in (results[1].reason or "")
    assert "offline" in (results[2].reason or "")
    assert "does not know" in (results[3].reason or "")
    # The daily cap: ¥20,000 a till a day, then quarantined, even within one batch.
    results = await till.send(*[topup(book, "M0002", 5_000_00) for _ in range(5)])
    assert [r.status for r in results] == ["accepted"] * 4 + ["quarantined"], results
    assert "daily cap" in (results[4].reason or "")
    assert [await wallet(ledger, m) for m in ("M0001", "M0003")] == [before[0], before[2]]
    assert await wallet(ledger, "M0002") == before[1] + 4 * (5_000_00 + 120_00)
    assert await ledger.books_problems() == []


def test_stored_value_never_buys_stored_value() -> None:
    book = Rulebook.from_wire(json.loads(json.dumps(_demo_book())))
    record = topup(book, "M0001", 500_00, "wallet")
    wire = dataclasses.replace(record, terminal_id="T-1", seq=1).to_wire()
    with pytest.raises(Exception, match="stored value does not buy stored value"):
        TransactionRecord.from_wire(wire)


def _demo_book() -> dict[str, Any]:
    return {
        "version": 1, "currency": "CNY", "tiers": {"classic": {}}, "excluded_categories": [], "issuer_keys": {},
        **{k: v for k, v in DEMO_BENEFITS.items() if k in ("earn", "stored_value", "risk")},
    }  # fmt: skip


async def hold(ledger: LedgerHandle, till: TestTerminal, member_id: str, amount: int) -> str:
    """A stored-value hold for giving a top-up back, made with the member's wallet code (they are there)."""
    ref = uuid7().hex
    body = {"member_id": member_id, "amount": amount, "ref": ref, "code": await ledger.wallet_code(member_id)}
    status, answer = await till.call("POST", "/v1/wallet/holds", body)
    assert status == 201, answer
    return ref


def given_back(book: Rulebook, topup_record: TransactionRecord, amount: int, ref: str) -> TransactionRecord:
    fields = {"txn_id": str(uuid7()), "terminal_id": topup_record.terminal_id, "seq": 0, "created_at": now(),
              "offline": False}  # fmt: skip
    return plan_topup_refund(topup_record, [], amount, ref, rulebook_version=book.version, draft_fields=fields)


async def test_a_top_up_given_back_takes_its_bonus_back_and_never_a_bonus_as_money(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book = await ledger.rulebook()
    before = await wallet(ledger, "M0003")
    (sold,) = till.seal([topup(book, "M0003", 500_00, "wechat")])
    status, _ = await till.post_batch([sold])
    assert status == 200
    # Given back in part, on a hold the member's wallet code made: ¥200 back to WeChat Pay, the ¥50 bonus goes.
    (result,) = await till.send(given_back(book, sold, 200_00, await hold(ledger, till, "M0003", 200_00)))
    assert result.status == "accepted", result
    assert await wallet(ledger, "M0003") == before + 300_00
    assert (await grants(ledger, "M0003"))[0][1] == 0
    assert await ledger.books_problems() == []
    # What a till may not give back: more than is left of the top-up; without a hold; a bonus as money.
    more = given_back(book, sold, 200_00, await hold(ledger, till, "M0003", 200_00))
    more = dataclasses.replace(more, lines=(dataclasses.replace(more.lines[0], unit_price=400_00, gross=400_00,
                               net=400_00),), total_gross=400_00, total_due=400_00,
                               tenders=(Tender("cash", 400_00),))  # fmt: skip
    unheld = given_back(book, sold, 100_00, uuid7().hex)
    (second,) = till.seal([topup(book, "M0003", 500_00)])  # ¥50 more bonus, then a bonus grown behind the ledger
    status, _ = await till.post_batch([second])
    assert status == 200
    await ledger.tamper(f"UPDATE wallet_grants SET remaining = 70000 WHERE txn_id = '{second.txn_id}'")
    as_money = given_back(book, second, 500_00, await hold(ledger, till, "M0003", 500_00))
    results = await till.send(more, unheld, as_money)
    assert [r.status for r in results] == ["quarantined"] * 3, results
    assert "left to give back" in (results[0].reason or "")
    assert "on a hold the ledger did not make" in (results[1].reason or "")
    assert "a bonus is never given back as money" in (results[2].reason or "")
