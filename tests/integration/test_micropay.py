"""Scan-to-pay against the acquirer simulator over real HTTP: the books and the outcome always agree."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.payments.micropay_client import MicropayClient
from protocols.micropay import Outcome
from simulators.acquirer import Acquirer, build_app
from simulators.processes import free_port


@pytest.fixture
async def acquirer() -> AsyncIterator[tuple[str, Acquirer]]:
    books = Acquirer()
    runner = web.AppRunner(build_app(books), shutdown_timeout=1.0)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", books
    await runner.cleanup()


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
    client = MicropayClient(url, timeout=1.0)
    flow = await client.pay(
        f"ref-{script}",
        f"1345678901234567{script}",
        2_500,
        deadline=5.0,
        report=lambda step, answer: steps.append((step, answer)),
    )
    assert flow.outcome is outcome, steps
    entry = books.books().get(f"ref-{script}")
    assert (entry or {}).get("state") == state
    if entry is not None:
        assert entry["charges"] <= 1  # never charged twice
    assert steps[-1] == ("outcome", outcome.value)  # the cashier is told how it ended
    if script in ("03", "04", "06"):
        assert steps[0][1] == "unknown"  # a timeout, a 500, a lost answer: unknown, never "failed"
