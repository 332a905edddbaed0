"""The receipt document and its renderings, ESC/POS decoded back, and a shift's totals: pure, no I/O."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import escpos
from protocols.codes import CodeKind, classify
from protocols.errors import SchemaError
from protocols.receipts import receipt_of, render_escpos, render_html, text_lines
from protocols.records import Benefit, RecordLine, Tender, TransactionRecord
from protocols.schema import Fields, Problems
from protocols.shift_totals import shift_totals
from protocols.shifts import ShiftReport, read_report
from tests.gateway.records import draft


def sale(amount: int = 12_345, **kw: object) -> TransactionRecord:
    lines = (
        RecordLine("6901234567892", "蛋挞 Egg tart with a name far too long for one line", "bakery", 3, 2_000, 6_000,
                   500, 5_500),
        RecordLine("6909876543212", "Cake", "bakery", 1, amount - 5_500, amount - 5_500, 0, amount - 5_500),
    )  # fmt: skip
    base = dataclasses.replace(
        draft(amount=amount, member_id="M0001"),
        seq=7,
        lines=lines,
        total_gross=amount + 500,
        total_discount=500,
        total_due=amount,
        tenders=(Tender("card", 10_000, "p1", "UnionPay", "622588******1234", "A1"), Tender("cash", amount)),
        change=10_000,
        benefits=(Benefit("tier", "gold", 300), Benefit("promotion", "P-1", 200)),
        cashier="C001",
        version=2,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def feed(data: bytes, chunk: int) -> list[escpos.Element]:
    decoder = escpos.EscPosDecoder()
    return [e for i in range(0, len(data), chunk) for e in decoder.feed(data[i : i + chunk])]


@given(chunk=st.integers(min_value=1, max_value=64))
def test_the_printer_prints_the_documents_lines_however_the_bytes_arrive(chunk: int) -> None:
    receipt = receipt_of(sale(), "Asia/Shanghai", "Joy City B1 bakery", points_balance=1_234)
    elements = feed(render_escpos(receipt), chunk)
    printed = [e.text for e in elements if isinstance(e, escpos.Printed)]
    assert printed[: len(text_lines(receipt))] == text_lines(receipt)
    assert [e.data for e in elements if isinstance(e, escpos.QrPrinted)] == [receipt.return_code]
    assert sum(isinstance(e, escpos.Cut) for e in elements) == 1


def test_the_receipt_says_what_the_customer_must_read_and_no_more() -> None:
    record = sale()
    receipt = receipt_of(record, "Asia/Shanghai", "Joy City", points_balance=1_234)
    lines = text_lines(receipt, width=32)
    assert all(sum(2 if ord(c) > 0x2E7F else 1 for c in line) <= 32 for line in lines)
    text = "\n".join(lines)
    assert "2026-11-24 09:00" in text  # 01:00 UTC in the mall's zone
    assert "member discount" in text
    assert "-¥3.00" in text
    assert "promotion" in text
    assert "-¥2.00" in text
    assert "UnionPay ****1234" in text
    assert "622588" not in text  # never more of a card than its last four
    assert "member M…1" in text
    assert "M0001" not in text
    assert "cashier C001" in text
    assert "".join(lines[lines.index("return code (any till):") + 1 :]) == receipt.return_code
    assert "change" in text
    assert "¥100.00" in text
    assert "points balance" in text
    assert "1234" in text
    html = render_html(receipt)
    assert "<script>" not in render_html(receipt_of(sale(cashier=None), "UTC", "<script>x</script>"))
    assert "&lt;script&gt;" in render_html(receipt_of(sale(), "UTC", "<script>x</script>"))
    assert html.startswith('<article class="posgw-receipt"')


def test_a_shifts_totals_net_refunds_and_change_and_the_report_reads_back() -> None:
    first, second = sale(10_000), sale(20_000, tenders=(Tender("wechat", 20_000, "w1"),), change=0)
    refund = dataclasses.replace(
        draft(amount=3_000), kind="refund", refund_of=first.txn_id, tenders=(Tender("cash", 3_000),)
    )
    totals = shift_totals([first, second, refund])
    assert totals.kinds == {"sale": [2, 30_000], "refund": [1, 3_000]}
    # Cash: first took ¥100 and ¥100 by card, gave ¥100 change; the refund paid ¥30 out.
    assert totals.tenders == {"cash": 10_000 - 10_000 - 3_000, "card": 10_000, "wechat": 20_000}
    assert totals.discounts == {"tier": 600, "promotion": 400}
    report = ShiftReport(500_00, 3, 496_00, totals)
    assert report.expected_cash == 500_00 - 3_000
    assert report.over_short == 496_00 - (500_00 - 3_000)
    problems = Problems("report")
    assert read_report(Fields(report.to_wire(), problems)) == report
    assert problems.items == []


def test_an_event_record_moves_nothing_and_names_who() -> None:
    opened = dataclasses.replace(
        draft(), seq=1, kind="shift_open", lines=(), total_gross=0, total_due=0, tenders=(), version=2,
        cashier="C1", shift="s1", shift_report=ShiftReport(100),
    )  # fmt: skip
    assert TransactionRecord.from_wire(opened.to_wire()) == opened
    for bad, why in (
        (dataclasses.replace(opened, cashier=None), "names the cashier"),
        (dataclasses.replace(opened, shift_report=None), "carries the shift's report"),
        (dataclasses.replace(opened, shift_report=ShiftReport(1, 1, 1, shift_totals([]))), "the float only"),
        (dataclasses.replace(sale(seq=2), shift_report=ShiftReport(1)), "only a shift's open and close"),
    ):
        with pytest.raises(SchemaError) as caught:
            TransactionRecord.from_wire(bad.to_wire())
        assert any(why in p for p in caught.value.problems), caught.value.problems
    wire = opened.to_wire()
    wire["shift_report"] = {"float_amount": 1, "opened_seq": 1, "counted": 1, "totals": {"kinds": {"theft": [1, 1]}}}
    with pytest.raises(SchemaError):
        TransactionRecord.from_wire({**wire, "kind": "shift_close"})


def test_a_record_before_staff_keeps_its_signed_form() -> None:
    assert not {"cashier", "approved_by", "shift", "shift_report"} & set(draft().to_wire())


def test_a_receipts_return_code_scans_as_its_sale() -> None:
    receipt = receipt_of(sale(), "UTC")
    code = classify(receipt.return_code)
    assert (code.kind, code.data, code.detail) == (CodeKind.RETURN_CODE, receipt.txn_id, "T-1 #7")
    broken = classify(receipt.return_code[:-3])
    assert broken.kind is CodeKind.UNKNOWN
    assert "return code" in str(broken.problem)


def test_a_name_carrying_printer_commands_prints_as_text() -> None:
    name = "Tart\x1bp\x00\x19\xfa\x1dVB\x00"  # ESC p (kick the drawer), GS V (cut)
    line = RecordLine("S", name, "bakery", 1, 100, 100, 0, 100)
    hostile = sale(lines=(line,), total_gross=100, total_discount=0, total_due=100, benefits=(),
                   tenders=(Tender("cash", 100),), change=0)  # fmt: skip
    elements = feed(render_escpos(receipt_of(hostile, "UTC")), 7)
    assert not any(isinstance(e, escpos.DrawerKick) for e in elements)
    assert sum(isinstance(e, escpos.Cut) for e in elements) == 1  # the receipt's own cut, no other
