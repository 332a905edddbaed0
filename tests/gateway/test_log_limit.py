"""A fault that repeats cannot drown the till in its own log, and a log that cannot be written fails nothing."""

from __future__ import annotations

import io
import logging

import pytest
import structlog

from gateway.ops.log_limit import BudgetFilter, LogBudget, SafeStream


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_event_kind_has_its_own_budget_and_the_next_window_says_what_was_dropped() -> None:
    clock = Clock()
    budget = LogBudget(burst=3, window=10.0, clock=clock)
    assert [budget.admit("flood") for _ in range(5)] == [0, 0, 0, None, None]
    assert budget.admit("sale_completed") == 0  # another kind is not starved by the flood
    clock.now = 10.0
    assert budget.admit("flood") == 2
    assert budget.dropped_total == 2


def test_the_structlog_processor_drops_over_budget_and_notes_the_count() -> None:
    clock = Clock()
    budget = LogBudget(burst=1, window=1.0, clock=clock)
    assert budget.processor(None, "error", {"event": "x"}) == {"event": "x"}
    with pytest.raises(structlog.DropEvent):
        budget.processor(None, "error", {"event": "x"})
    clock.now = 1.0
    assert budget.processor(None, "error", {"event": "x"}) == {"event": "x", "suppressed": 1}


def test_the_standard_librarys_records_share_the_budget() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(BudgetFilter(LogBudget(burst=2, window=60.0)))
    logger = logging.getLogger("posgw.test.flood")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for _ in range(1000):
            logger.error("socket.accept() out of system resource")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().count("out of system resource") == 2


def test_a_log_that_cannot_be_written_is_counted_not_raised() -> None:
    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    safe = SafeStream(Full())
    assert safe.write("a line\n") == 0
    safe.flush()
    assert safe.lost == 1
