"""Who did it, as a hostile till would lie about it: the ledger believes a record's cashier, its approver and a
shift's Z report only as far as it can check them (``ledger/staff_check.py``). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ledger.staff_check import StaffBook
from offline_queue.ids import uuid7
from protocols.records import RECORD_VERSION, TransactionRecord
from protocols.shift_totals import shift_totals
from protocols.shifts import MAX_SHIFT_RECORDS, ShiftReport
from tests.harness import LedgerHandle, TestTerminal, add_staff, ledger_cli
from tests.ledger.test_hostile_terminal import honest_sale, now, refund_of

pytestmark = [pytest.mark.ledger]


def event(kind: str, shift: str, report: ShiftReport | None, cashier: str = "C1") -> TransactionRecord:
    return TransactionRecord(
        str(uuid7()), "", 0, kind, now(), "S-1", "M-BAKERY", "CNY", (), 0, 0, 0, (), 0, None, None, 0, 1, True,
        version=RECORD_VERSION, cashier=cashier, shift=shift, shift_report=report,
    )  # fmt: skip


def priced_by_hand(sale: TransactionRecord) -> TransactionRecord:
    """The sale with its line rung up at ¥50 and sold at its price by hand, by cashier C1."""
    return dataclasses.replace(sale, cashier="C1", lines=(dataclasses.replace(sale.lines[0], list_price=50_00),))


@pytest.fixture
async def till(ledger: LedgerHandle) -> TestTerminal:
    add_staff(ledger, "C1", "1234")
    add_staff(ledger, "SUP", "9876", role="supervisor")
    return await ledger.terminal("T-STAFF", store="S-1", merchant="M-BAKERY")


async def test_a_shift_is_believed_only_when_its_z_report_is_its_records_to_the_fen(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book = await ledger.rulebook()
    shift = uuid7().hex
    sale = dataclasses.replace(honest_sale(book, None, 3_000), cashier="C1", shift=shift)
    refund = dataclasses.replace(refund_of(book, sale), cashier="C1", shift=shift, approved_by="SUP")
    opened = event("shift_open", shift, ShiftReport(200_00))
    results = await till.send(opened, sale)
    assert [r.status for r in results] == ["accepted", "accepted"]
    totals = shift_totals([sale, refund])
    assert totals.cash == 0  # ¥30 taken, ¥30 given back
    # A Z report that hides the refund (to pocket its cash) is quarantined; the true one is believed.
    hidden = dataclasses.replace(totals, kinds={"sale": [1, 3_000]}, tenders={"cash": 3_000})
    lying = event("shift_close", shift, ShiftReport(200_00, 1, 230_00, hidden))
    results = await till.send(refund, lying)
    assert results[0].status == "accepted"
    assert results[1].status == "quarantined"
    assert "not those of the shift's records" in str(results[1].reason)
    # A close that skips a record of the shift: every record between open and close must name it.
    other = uuid7().hex
    results = await till.send(event("shift_open", other, ShiftReport(100_00)))
    stray = honest_sale(book, None, 1_000)  # names no shift: hidden from the Z report
    honest_close = event("shift_close", other, ShiftReport(100_00, results[0].seq, 100_00, shift_totals([])))
    results = await till.send(dataclasses.replace(stray, cashier="C1"), honest_close)
    assert results[1].status == "quarantined"
    assert "do not name the shift" in str(results[1].reason)
    # The float is the open's; the open is where the close says.
    third = uuid7().hex
    results = await till.send(event("shift_open", third, ShiftReport(50_00)))
    at = results[0].seq
    for report, why in (
        (ShiftReport(80_00, at, 80_00, shift_totals([])), "float"),
        (ShiftReport(50_00, at - 1, 50_00, shift_totals([])), "whose open is not at seq"),
    ):
        results = await till.send(event("shift_close", third, report))
        assert results[0].status == "quarantined"
        assert why in str(results[0].reason)
    results = await till.send(event("shift_close", third, ShiftReport(50_00, at, 49_00, shift_totals([]))))
    assert results[0].status == "accepted"  # short by ¥1: the count is the till's word, the report says it
    report = json.loads(ledger_cli("staff", "report", "--json", *ledger.store_args()).stdout)
    closed = [s for s in report["shifts"] if s["shift"] == third and s["state"] == "applied"]
    assert closed[0]["over_short"] == -100
    assert report["cashiers"]["SUP"]["approved"] == 1


async def test_cashiers_and_approvals_are_checked_against_the_staff_list(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book = await ledger.rulebook()
    sales = [dataclasses.replace(honest_sale(book, None, 1_000 + i), cashier="C1") for i in range(4)]
    assert {r.status for r in await till.send(*sales)} == {"accepted"}
    cases = [
        (dataclasses.replace(honest_sale(book, None, 500), cashier="GHOST"), "does not know"),
        (dataclasses.replace(refund_of(book, sales[0]), kind="void", cashier="C1"), "needs a supervisor"),
        (dataclasses.replace(refund_of(book, sales[1]), kind="void", cashier="C1", approved_by="C1"), "not a super"),
        (dataclasses.replace(event("no_sale", "", None), shift=None), "needs a supervisor"),
        (priced_by_hand(honest_sale(book, None, 800)), "a price by cashier C1 needs a supervisor"),
    ]
    for record, why in cases:
        (result,) = await till.send(record)
        assert result.status == "quarantined", record.kind
        assert why in str(result.reason)
    # Believed: a void a supervisor approved, a refund under the policy's amount, a supervisor's own void.
    fine = [
        dataclasses.replace(refund_of(book, sales[2]), kind="void", cashier="C1", approved_by="SUP"),
        dataclasses.replace(refund_of(book, sales[3]), cashier="C1"),
    ]
    assert [(r.status, r.reason) for r in await till.send(*fine)] == [("accepted", None), ("accepted", None)]
    # The policy tightened: refunds above ¥5 need a supervisor from now on.
    assert ledger_cli("staff", "policy", "--refund-above", "5.00", *ledger.store_args()).returncode == 0
    sale = dataclasses.replace(honest_sale(book, None, 2_000), cashier="C1")
    (result,) = await till.send(sale)
    (result,) = await till.send(dataclasses.replace(refund_of(book, sale), cashier="C1"))
    assert result.status == "quarantined"
    assert "refund by cashier C1 needs a supervisor" in str(result.reason)


def test_a_close_spanning_more_records_than_a_shift_may_is_refused_unread() -> None:
    close = dataclasses.replace(
        event("shift_close", "s", ShiftReport(0, 1, 0, shift_totals([]))), terminal_id="T", seq=MAX_SHIFT_RECORDS + 2
    )
    book = StaffBook(roles={"C1": "cashier"})
    assert "more than 100,000 records" in str(book.refusal(close))
