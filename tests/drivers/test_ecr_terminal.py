"""The ECR terminal driver against the terminal simulator on a real pty, in every mode."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from drivers.ecr_terminal import EcrOptions, EcrTerminal
from gateway.payments.runner import run_flow
from protocols.micropay import Answer, MicropayFlow, Outcome, Step
from simulators.terminal import PtyTerminal

pytestmark = [pytest.mark.pty]


@pytest.fixture
def terminal(card_terminal: PtyTerminal) -> PtyTerminal:
    return card_terminal


def driver(link: Path) -> EcrTerminal:
    return EcrTerminal("card", EcrOptions(str(link), ack_timeout=0.1, sale_timeout=1.0, answer_timeout=0.5))


async def pay(terminal: Path, ref: str, deadline: float = 5.0) -> tuple[MicropayFlow, dict[str, str], list[str]]:
    ecr = driver(terminal)
    flow = MicropayFlow(asyncio.get_running_loop().time(), deadline=deadline)
    steps: list[str] = []
    detail = await run_flow(ecr, ref, "", 12_345, flow, lambda s, a: steps.append(f"{s}:{a}"))
    await ecr.close()
    return flow, detail, steps


async def test_approved_keeps_only_scheme_auth_and_a_masked_pan(terminal: PtyTerminal) -> None:
    flow, detail, steps = await pay(terminal.link, "ref-approve")
    assert flow.outcome is Outcome.PAID
    assert steps == ["pay:success"]
    assert detail["pan"] == "622588******1234"  # the terminal sent the full number; it stops here
    assert detail["scheme"] == "UnionPay"
    assert detail["auth"] == terminal.sales["ref-approve"].auth
    assert terminal.books()["ref-approve"] == {"status": "approved", "amount": 12_345, "charges": 1, "refunded": 0}


async def test_declined(terminal: PtyTerminal) -> None:
    terminal.mode = "decline"
    flow, detail, _ = await pay(terminal.link, "ref-decline")
    assert flow.outcome is Outcome.DECLINED
    assert detail == {}
    assert terminal.books()["ref-decline"]["charges"] == 0


async def test_garbled_frames_are_refused_and_sent_again(terminal: PtyTerminal) -> None:
    terminal.mode = "garbled"
    flow, _, steps = await pay(terminal.link, "ref-garbled")
    assert flow.outcome is Outcome.PAID
    assert steps == ["pay:success"]  # one exchange: the NAK'd frame came again, well formed
    assert terminal.naks_received == 1
    assert terminal.books()["ref-garbled"]["charges"] == 1


async def test_power_lost_after_approval_is_found_by_last_transaction_recovery(terminal: PtyTerminal) -> None:
    terminal.mode = "power-loss"
    flow, detail, steps = await pay(terminal.link, "ref-power", deadline=10.0)
    assert flow.outcome is Outcome.PAID  # not declined, not charged twice: LAST found it
    assert steps[0] == "pay:unknown"
    assert steps[-1] == "query:success"
    assert detail["pan"] == "622588******1234"
    assert terminal.books()["ref-power"]["charges"] == 1


async def test_a_silent_terminal_is_unknown_then_cancelled_never_charged(terminal: PtyTerminal) -> None:
    terminal.mode = "silent"

    async def comes_back() -> None:
        await asyncio.sleep(1.0)
        terminal.mode = "approve"

    back = asyncio.create_task(comes_back())
    flow, _, steps = await pay(terminal.link, "ref-silent", deadline=2.0)
    await back
    assert steps[0] == "pay:unknown"  # no acknowledgement after 3 retransmissions: unknown, not declined
    assert "query:not_found" in steps  # back up, its last transaction is not ours
    assert steps[-1] == "reverse:success"
    assert flow.outcome is Outcome.REVERSED
    assert "ref-silent" not in terminal.books()


async def test_no_terminal_at_all_is_said_at_once(tmp_path: Path) -> None:
    flow, _, steps = await pay(tmp_path / "no-such-port", "ref-none")
    assert flow.outcome is Outcome.UNREACHABLE
    assert steps == ["pay:unreachable"]


async def test_a_paid_sale_is_cancelled_on_the_terminal(terminal: PtyTerminal) -> None:
    await pay(terminal.link, "ref-undo")
    ecr = driver(terminal.link)
    reply = await ecr.call(Step.REVERSE, "ref-undo", "", 12_345)
    await ecr.close()
    assert reply.answer is Answer.SUCCESS
    assert terminal.books()["ref-undo"]["status"] == "cancelled"
