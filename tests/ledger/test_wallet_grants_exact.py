"""Top-up bonuses add up to the fen, whatever the order of top-ups, payments and refunds.

The grant book (``ledger/wallet_grants.py``) decides in memory which grant
each payment spends and each refund gives back; these properties hold it to
its promises over random histories: a grant never goes below zero or above
what it was given, the grants never hold more than the wallet, every fen of
bonus is either left or spent by a payment, and a refund gives back to the
grants no more than its sale took from them.
"""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.wallet_grants import GrantBook

MEMBER = "M1"
Step = tuple[str, int, int]  # (what, amount, which)


@st.composite
def histories(draw: st.DrawFn) -> list[Step]:
    steps = st.tuples(st.sampled_from(["topup", "pay", "refund"]), st.integers(1, 200_00), st.integers(0, 10**6))
    return draw(st.lists(steps, min_size=1, max_size=60))


@settings(max_examples=500, deadline=None)
@given(histories())
def test_grants_add_up_whatever_the_history(history: list[Step]) -> None:
    book = GrantBook()
    wallet = 0
    given_total = 0
    paid: dict[str, int] = {}  # sale -> what it paid from the wallet, less its refunds
    for n, (what, amount, which) in enumerate(history):
        txn = f"t{n}"
        if what == "topup":
            bonus = amount // 10
            wallet += amount + bonus
            if bonus:
                book.grant(txn, MEMBER, bonus, date(2027, 1, 1) + timedelta(days=which % 400))
                given_total += bonus
        elif what == "pay" and wallet:
            spend = min(amount, wallet)
            wallet -= spend
            book.spend(txn, MEMBER, spend)
            paid[txn] = spend
        elif what == "refund" and paid:
            sale = sorted(paid)[which % len(paid)]
            back = min(amount, paid[sale])
            if back:
                took = sum(a for _, s, _, a in book.rows if s == sale)
                book.give_back(txn, sale, back)
                gave = took - sum(a for _, s, _, a in book.rows if s == sale)
                assert 0 <= gave <= back  # never more than the refund, nor than the sale took
                wallet += back
                paid[sale] -= back
        grants = list(book.grants.values())
        assert all(0 <= g.remaining <= g.new for g in grants)
        assert sum(g.remaining for g in grants) <= wallet  # the grants are part of the wallet, never more
        net_used = sum(a for _, _, _, a in book.rows)
        assert given_total == sum(g.remaining for g in grants) + net_used  # every fen: left, or spent
        for sale, left in paid.items():
            # a sale's net share of the grants: never more than it still paid
            assert 0 <= sum(a for _, s, _, a in book.rows if s == sale) <= left


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50_00), st.integers(0, 30)), min_size=2, max_size=8), st.integers(1, 10**5))
def test_a_payment_takes_the_grant_lapsing_soonest_first(grants: list[tuple[int, int]], spend: int) -> None:
    book = GrantBook()
    for i, (amount, days) in enumerate(grants):
        book.grant(f"g{i}", MEMBER, amount, date(2027, 1, 1) + timedelta(days=days))
    book.spend("pay", MEMBER, spend)
    ordered = sorted(book.grants.values(), key=lambda g: (g.expires_on, g.txn_id))
    # Spent in order: every grant before a touched one is empty, every grant after an untouched one full.
    touched = [g.remaining < g.new for g in ordered]
    first_untouched = touched.index(False) if False in touched else len(ordered)
    assert all(g.remaining == 0 for g in ordered[: max(0, first_untouched - 1)])
    assert all(g.remaining == g.new for g in ordered[first_untouched:])
    assert sum(g.new - g.remaining for g in ordered) == min(spend, sum(g.new for g in ordered))
