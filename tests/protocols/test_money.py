import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import MoneyError
from protocols.money import allocate, apply_rate, format_cny


@pytest.mark.parametrize(
    ("amount", "rate", "expected"),
    [
        (3800, 8500, 3230),
        (4250, 8500, 3613),  # 3612.5 rounds half-up
        (1, 5000, 1),  # 0.5 fen rounds up
        (1, 4999, 0),
        (0, 8500, 0),
        (12345, 10000, 12345),
        (12345, 0, 0),
    ],
)
def test_apply_rate_half_up(amount: int, rate: int, expected: int) -> None:
    assert apply_rate(amount, rate) == expected


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10_000))
def test_apply_rate_is_within_half_a_fen(amount: int, rate: int) -> None:
    exact_times_2 = amount * rate * 2
    assert abs(apply_rate(amount, rate) * 20_000 - exact_times_2) <= 10_000


def test_apply_rate_refuses_impossible_inputs() -> None:
    with pytest.raises(MoneyError):
        apply_rate(-1, 5000)
    with pytest.raises(MoneyError):
        apply_rate(100, 10_001)


@given(st.integers(min_value=0, max_value=10**9), st.lists(st.integers(min_value=0, max_value=10**7), min_size=1))
def test_allocation_adds_up_and_is_fair(total: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        if total:
            with pytest.raises(MoneyError):
                allocate(total, weights)
        return
    parts = allocate(total, weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        exact = total * weight / sum(weights)
        assert abs(part - exact) < 1


def test_allocation_ties_go_to_the_earlier_line() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]


def test_format_cny() -> None:
    assert format_cny(26843) == "¥268.43"
    assert format_cny(5) == "¥0.05"
    assert format_cny(-157) == "-¥1.57"
