"""Scan-to-pay against the acquirer simulator over real HTTP: the books and the outcome always agree."""

from __future__ import annotations

import asyncio
import socket

import pytest

from drivers.micropay_http import MicropayHttpProvider
from gateway.payments.runner import run_flow
from protocols.micropay import Answer, MicropayFlow, Outcome, Step
from simulators.acquirer import Acquirer
from simulators.processes import free_port


@pytest.mark.parametrize(
    ("script", "outcome", "state"),
    [
        ("00", Outcome.PAID, "paid"),
        ("01", Outcome.DECLINED, "declined"),
        ("02", Outcome.PAID, "paid"),  # user paying, then success
        ("03", Outcome.PAID, "paid"),  # pay timed out, but the money moved: query finds it
        ("04", Outcome.REVERSED, None),  # 500: unknown, nothing there; reversed at the deadline
        ("05", Outcome.PAID, "paid"),  # slow answer
        ("06", Outcome.PAID, "paid"),  # the answer to pay was lost
        ("07", Outcome.REVERSED, "reversed"),  # paying until the terminal gives up
    ],
)
async def test_every_scripted_outcome_ends_with_the_books_agreeing(
    acquirer: tuple[str, Acquirer], script: str, outcome: Outcome, state: str | None
) -> None:
    url, books = acquirer
    steps: list[tuple[str, str]] = []
    provider = MicropayHttpProvider("wechat", url, timeout_seconds=1.0)
    # A flow that ends paid stops as soon as a query finds the money, so its deadline can be the
    # production one: on a loaded machine one slow query must not turn a payment into a reversal.
    # The flows meant to reverse wait out a short deadline.
    deadline = 5.0 if outcome is Outcome.REVERSED else 30.0
    flow = MicropayFlow(asyncio.get_running_loop().time(), deadline=deadline)
    await run_flow(
        provider,
        f"ref-{script}",
        f"1345678901234567{script}",
        2_500,
        flow,
        report=lambda step, answer: steps.append((step.value, answer.value)),
    )
    await provider.close()
    steps.append(("outcome", flow.outcome.value))
    assert flow.outcome is outcome, steps
    entry = books.books().get(f"ref-{script}")
    assert (entry or {}).get("state") == state
    if entry is not None:
        assert entry["charges"] <= 1  # never charged twice
    if script in ("03", "04", "06"):
        assert steps[0][1] == "unknown"  # a timeout, a 500, a lost answer: unknown, never "failed"


async def test_a_provider_that_cannot_be_reached_is_known_at_once_and_charges_nothing() -> None:
    provider = MicropayHttpProvider("wechat", f"http://127.0.0.1:{free_port()}", timeout_seconds=1.0)
    flow = MicropayFlow(asyncio.get_running_loop().time())
    steps: list[tuple[Step, Answer]] = []
    await run_flow(provider, "ref-x", "134567890123456700", 100, flow, lambda s, a: steps.append((s, a)))
    await provider.close()
    assert flow.outcome is Outcome.UNREACHABLE
    assert steps == [(Step.PAY, Answer.UNREACHABLE)]  # no query, no waiting: the request never left


async def test_a_network_that_swallows_connections_is_unreachable_after_the_connect_timeout() -> None:
    """A listener whose queue is full drops new connections on the floor, as a dead route does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler = socket.create_connection(("127.0.0.1", port))  # the one connection the queue holds
        try:
            provider = MicropayHttpProvider("wechat", f"http://127.0.0.1:{port}", 5.0, connect_seconds=0.3)
            flow = MicropayFlow(asyncio.get_running_loop().time())
            steps: list[tuple[Step, Answer]] = []
            await run_flow(provider, "ref-y", "134567890123456700", 100, flow, lambda s, a: steps.append((s, a)))
            await provider.close()
        finally:
            filler.close()
    # Not "unknown" (which would query and reverse for 30 s): the connection was never made.
    assert flow.outcome is Outcome.UNREACHABLE
    assert steps == [(Step.PAY, Answer.UNREACHABLE)]
