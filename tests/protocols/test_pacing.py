"""A notice is answered no sooner than the pace allows, and at a random point within half of it."""

from __future__ import annotations

import random

import pytest

from protocols.pacing import RefreshPacer


def test_the_first_refresh_waits_a_random_part_of_half_the_interval() -> None:
    waits = [RefreshPacer(4.0, random.Random(seed)).wait(100.0) for seed in range(200)]
    assert all(0.0 <= w <= 2.0 for w in waits)
    assert max(waits) - min(waits) > 1.0  # spread, not one instant for the whole mall


def test_later_refreshes_leave_the_interval_since_the_last_one() -> None:
    pacer = RefreshPacer(4.0, random.Random(7))
    pacer.refreshed(100.0)
    for now in (100.5, 102.0, 103.9):
        assert 104.0 <= now + pacer.wait(now) <= 106.0
    assert 0.0 <= pacer.wait(200.0) <= 2.0  # long since: only the spread


def test_no_interval_means_at_once_and_a_negative_one_is_refused() -> None:
    pacer = RefreshPacer(0.0)
    pacer.refreshed(5.0)
    assert pacer.wait(5.0) == 0.0
    with pytest.raises(ValueError, match="negative"):
        RefreshPacer(-1.0)
