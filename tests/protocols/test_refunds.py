"""Refunds give back exactly what the sale took, however they are split."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.benefits import CouponDefinition
from protocols.errors import SchemaError
from protocols.records import RecordLine, Tender, TransactionRecord
from protocols.refunds import RefundRefusedError, plan_refund
from protocols.rulebook import Rulebook

BOOK = Rulebook(1, "CNY", {}, frozenset(), {}, coupons={"C20": CouponDefinition("C20", "¥20", "amount", amount=2000)})
TODAY = date(2026, 11, 24)


def sale(lines: list[tuple[int, int, int]], earned: int, redeemed: int, growth: int = 0) -> TransactionRecord:
    """lines: (unit_price, quantity, discount)."""
    record_lines = tuple(
        RecordLine(f"S{i}", "x", "c", q, u, u * q, d, u * q - d) for i, (u, q, d) in enumerate(lines, 1)
    )
    due = sum(x.net for x in record_lines)
    return TransactionRecord(
        "01a20b44-d22e-7abc-8def-0123456789ab",
        "T-1",
        1,
        "sale",
        "2026-11-24T00:00:00Z",
        "S",
        "M",
        "CNY",
        record_lines,
        sum(x.gross for x in record_lines),
        sum(x.discount for x in record_lines),
        due,
        (Tender("cash", due),),
        0,
        "M1",
        "qr",
        earned,
        1,
        True,
        coupons=("C20:abc",),
        points_redeemed=redeemed,
        growth_earned=growth,
    )


def refund(s: TransactionRecord, earlier: list[TransactionRecord], wanted: dict[int, int] | None) -> TransactionRecord:
    fields: dict[str, object] = {
        "txn_id": f"01a20b44-d22e-7abc-8def-{len(earlier):012d}",
        "terminal_id": "T-1",
        "seq": 0,
        "created_at": "2026-11-24T01:00:00Z",
        "offline": False,
    }
    r = plan_refund(s, earlier, wanted, rulebook=BOOK, today=TODAY, draft_fields=fields)
    return TransactionRecord.from_wire(dataclasses.replace(r, seq=len(earlier) + 2).to_wire())


def test_a_partial_then_the_rest() -> None:
    s = sale([(3_800, 3, 1_710), (4_250, 1, 637)], earned=7, redeemed=300, growth=72)
    first = refund(s, [], {1: 1})
    assert (first.total_due, first.lines[0].refund_line, first.coupons_restored) == (3_230, 1, ())
    rest = refund(s, [first], None)
    assert first.total_due + rest.total_due == s.total_due
    assert first.points_clawback + rest.points_clawback == 7
    assert first.points_returned + rest.points_returned == 300
    assert (first.growth_clawback, rest.growth_clawback) == (18, 54)  # a unit of 3,230 of 13,303 net: 17.5 → 18
    assert rest.coupons_restored == ("C20:abc",)
    with pytest.raises(RefundRefusedError, match="nothing is left"):
        refund(s, [first, rest], None)


def test_asking_for_more_than_is_left_names_the_line() -> None:
    s = sale([(1_000, 2, 0)], earned=0, redeemed=0)
    with pytest.raises(SchemaError) as err:
        refund(s, [], {1: 3, 2: 1})
    assert err.value.problems == ["lines[1]: only 2 left to refund, asked for 3", "lines[2]: the sale has lines 1..1"]


@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 6), st.integers(0, 100)), min_size=1, max_size=6),
    st.integers(0, 500),
    st.integers(0, 5_000),
    st.integers(0, 60_000),
    st.randoms(use_true_random=False),
)
def test_any_split_adds_up_to_the_sale(
    lines: list[tuple[int, int, int]], earned: int, redeemed: int, growth: int, rng: object
) -> None:
    s = sale([(u, q, min(d, u * q)) for u, q, d in lines], earned, redeemed, growth)
    left = {i + 1: x.quantity for i, x in enumerate(s.lines)}
    refunds: list[TransactionRecord] = []
    while any(left.values()):
        number = rng.choice([n for n, k in left.items() if k])  # type: ignore[attr-defined]
        take = rng.randint(1, left[number])  # type: ignore[attr-defined]
        refunds.append(refund(s, refunds, {number: take}))
        left[number] -= take
    assert sum(r.total_due for r in refunds) == s.total_due
    assert sum(r.total_gross for r in refunds) == s.total_gross
    assert sum(r.points_clawback for r in refunds) == s.points_earned
    assert sum(r.points_returned for r in refunds) == s.points_redeemed
    assert sum(r.growth_clawback for r in refunds) == s.growth_earned
    assert [r.coupons_restored for r in refunds][-1] == ("C20:abc",)
    assert all(min(x.net for x in r.lines) >= 0 for r in refunds)


def test_a_void_is_a_full_refund_of_a_sale_of_today_only() -> None:
    s = sale([(1_000, 2, 100)], earned=3, redeemed=5)
    fields: dict[str, object] = {
        "txn_id": "01a20b44-d22e-7abc-8def-00000000000f",
        "terminal_id": "T-1",
        "seq": 0,
        "created_at": "2026-11-24T02:00:00Z",
        "offline": False,
    }
    v = plan_refund(s, [], None, rulebook=BOOK, today=TODAY, draft_fields=fields, void=True)
    assert (v.kind, v.total_due, v.points_clawback, v.points_returned) == ("void", s.total_due, 3, 5)
    with pytest.raises(RefundRefusedError, match="refund it instead"):
        plan_refund(s, [], None, rulebook=BOOK, today=date(2026, 11, 25), draft_fields=fields, void=True)
    with pytest.raises(RefundRefusedError, match="refund it instead"):
        plan_refund(s, [], {1: 1}, rulebook=BOOK, today=TODAY, draft_fields=fields, void=True)
