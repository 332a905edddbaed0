"""The micropay state machine, exhaustively over provider answers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.micropay import Answer, MicropayError, MicropayFlow, Outcome, Step
from protocols.refund import RefundFlow, RefundOutcome

PAY_ANSWERS = [Answer.SUCCESS, Answer.FAILED, Answer.USER_PAYING, Answer.UNKNOWN, Answer.PROVIDER_ERROR]
QUERY_ANSWERS = [
    Answer.SUCCESS, Answer.FAILED, Answer.USER_PAYING, Answer.NOT_FOUND, Answer.UNKNOWN, Answer.PROVIDER_ERROR
]  # fmt: skip
REVERSE_ANSWERS = [Answer.SUCCESS, Answer.UNKNOWN, Answer.FAILED]


def drive(flow: MicropayFlow, answers: list[Answer]) -> list[Step]:
    """Answer each step with the next answer (the last one repeats), following the flow's clock."""
    steps: list[Step] = []
    for i in range(200):
        action = flow.next_action()
        if action.step is Step.DONE:
            return steps
        steps.append(action.step)
        answer = answers[min(i, len(answers) - 1)]
        now = action.at
        if action.step is Step.PAY:
            flow.on_pay(answer if answer is not Answer.NOT_FOUND else Answer.UNKNOWN, now)
        elif action.step is Step.QUERY:
            flow.on_query(answer, now)
        else:
            flow.on_reverse(answer if answer in REVERSE_ANSWERS else Answer.UNKNOWN, now)
    raise AssertionError("the flow did not finish in 200 steps")


def test_the_happy_paths() -> None:
    assert drive(MicropayFlow(0.0), [Answer.SUCCESS]) == [Step.PAY]
    paid = MicropayFlow(0.0)
    drive(paid, [Answer.USER_PAYING, Answer.USER_PAYING, Answer.SUCCESS])
    assert paid.outcome is Outcome.PAID
    declined = MicropayFlow(0.0)
    drive(declined, [Answer.FAILED])
    assert declined.outcome is Outcome.DECLINED


def test_a_timeout_is_unknown_not_a_failure_and_ends_in_a_reversal() -> None:
    flow = MicropayFlow(100.0, deadline=30.0)
    steps = drive(
        flow,
        [
            Answer.UNKNOWN,
            Answer.UNKNOWN,
            Answer.UNKNOWN,
            Answer.UNKNOWN,
            Answer.UNKNOWN,
            Answer.UNKNOWN,
            Answer.UNKNOWN,
            Answer.UNKNOWN,
            Answer.UNKNOWN,
            Answer.SUCCESS,
        ],
    )
    assert flow.outcome is Outcome.REVERSED
    assert steps[0] is Step.PAY
    assert Step.QUERY in steps
    assert steps[-1] is Step.REVERSE
    reverse_at = next(t for t, what in flow.history if what.startswith("reverse"))
    assert reverse_at >= 130.0  # only after the deadline


def test_no_such_payment_is_final_only_once_the_provider_answered_pay() -> None:
    # The provider answered pay with an error (it has the request), then says no such payment: reversed at once.
    heard = MicropayFlow(100.0, deadline=30.0)
    steps = drive(heard, [Answer.PROVIDER_ERROR, Answer.NOT_FOUND, Answer.SUCCESS])
    assert steps == [Step.PAY, Step.QUERY, Step.REVERSE]
    assert heard.outcome is Outcome.REVERSED
    assert next(t for t, what in heard.history if what.startswith("reverse")) < 110.0  # not at the deadline
    # No answer at all: "no such payment" may be "not yet" (the request may still be on its way): the wait goes on.
    unheard = MicropayFlow(100.0, deadline=30.0)
    steps = drive(unheard, [Answer.UNKNOWN, Answer.NOT_FOUND, Answer.NOT_FOUND, Answer.SUCCESS])
    assert steps[:4] == [Step.PAY, Step.QUERY, Step.QUERY, Step.QUERY]
    assert unheard.outcome is Outcome.PAID  # it was only late
    # A customer typing their password was heard too: a payment that then vanishes is not waited for.
    typing = MicropayFlow(100.0, deadline=30.0)
    assert drive(typing, [Answer.USER_PAYING, Answer.NOT_FOUND, Answer.SUCCESS])[-1] is Step.REVERSE


def test_reversal_that_keeps_failing_needs_attention() -> None:
    flow = MicropayFlow(0.0, deadline=5.0, max_reversals=3)
    drive(flow, [Answer.USER_PAYING] * 10 + [Answer.UNKNOWN])
    assert flow.outcome is Outcome.ATTENTION


def test_answers_out_of_step_are_refused() -> None:
    flow = MicropayFlow(0.0)
    with pytest.raises(MicropayError, match="expects pay"):
        flow.on_query(Answer.SUCCESS, 1.0)
    flow.on_pay(Answer.SUCCESS, 1.0)
    with pytest.raises(MicropayError):
        flow.on_pay(Answer.SUCCESS, 2.0)


def test_restart_before_an_answer_queries_first() -> None:
    flow = MicropayFlow(0.0)
    flow.on_restart(3.0)
    assert flow.next_action().step is Step.QUERY
    flow.on_query(Answer.SUCCESS, 3.5)
    assert flow.outcome is Outcome.PAID


@pytest.mark.parametrize(
    "answers",
    [
        list(seq)
        for seq in itertools.product(
            [Answer.USER_PAYING, Answer.UNKNOWN, Answer.NOT_FOUND, Answer.SUCCESS, Answer.FAILED], repeat=4
        )
    ],
)
def test_every_short_sequence_of_answers_ends_well(answers: list[Answer]) -> None:
    flow = MicropayFlow(0.0)
    drive(flow, answers)
    history = [what for _, what in flow.history]
    assert flow.outcome in (Outcome.PAID, Outcome.DECLINED, Outcome.REVERSED, Outcome.ATTENTION)
    if flow.outcome is Outcome.PAID:
        assert not any(h.startswith("reverse") for h in history)  # never paid and cancelled
    if flow.outcome is Outcome.DECLINED:
        assert history[-1].endswith("failed")  # declined only on a final refusal, never on silence


@given(st.lists(st.sampled_from(QUERY_ANSWERS), min_size=1, max_size=40), st.floats(1.0, 120.0))
def test_any_answers_finish_within_the_deadline_plus_reversals(answers: list[Answer], deadline: float) -> None:
    flow = MicropayFlow(0.0, deadline=deadline)
    drive(flow, answers)
    assert flow.outcome is not Outcome.PENDING
    queries = [t for t, what in flow.history if what.startswith("query")]
    assert all(t <= deadline for t in queries)  # never polls past the deadline


def test_unreachable_on_pay_ends_at_once_and_elsewhere_is_unknown() -> None:
    flow = MicropayFlow(0.0)
    flow.on_pay(Answer.UNREACHABLE, 0.1)
    assert flow.outcome is Outcome.UNREACHABLE
    assert flow.next_action().step is Step.DONE
    querying = MicropayFlow(0.0, deadline=5.0)
    steps = drive(querying, [Answer.USER_PAYING, Answer.UNREACHABLE, Answer.SUCCESS])
    assert querying.outcome is Outcome.PAID  # an unreachable query just asks again
    assert steps == [Step.PAY, Step.QUERY, Step.QUERY]


def test_a_paid_payment_is_unwound_by_reversal_only() -> None:
    flow = MicropayFlow.paid(10.0)
    assert flow.next_action().step is Step.DONE  # paid: nothing to do until asked to unwind
    flow.unwind(10.0)
    assert flow.next_action() == flow.next_action()
    steps = drive(flow, [Answer.UNKNOWN, Answer.SUCCESS])
    assert steps == [Step.REVERSE, Step.REVERSE]
    assert flow.outcome is Outcome.REVERSED
    declined = MicropayFlow(0.0)
    declined.on_pay(Answer.FAILED, 0.0)
    with pytest.raises(MicropayError, match="only a paid payment"):
        declined.unwind(1.0)


@pytest.mark.parametrize(
    ("answers", "outcome", "tries"),
    [
        ([Answer.SUCCESS], RefundOutcome.REFUNDED, 1),
        ([Answer.FAILED], RefundOutcome.REFUSED, 1),
        ([Answer.UNKNOWN, Answer.UNREACHABLE, Answer.SUCCESS], RefundOutcome.REFUNDED, 3),
        ([Answer.UNKNOWN] * 9, RefundOutcome.UNKNOWN, 5),  # the first try and four more, then store IT
    ],
)
def test_a_refund_is_retried_while_unclear_and_never_dropped(
    answers: list[Answer], outcome: RefundOutcome, tries: int
) -> None:
    flow = RefundFlow(0.0)
    sent = 0
    while (action := flow.next_action()).step is Step.REFUND:
        flow.on_refund(answers[sent], action.at)
        sent += 1
    assert (flow.outcome, sent) == (outcome, tries)
    with pytest.raises(MicropayError):
        flow.on_refund(Answer.SUCCESS, 100.0)
