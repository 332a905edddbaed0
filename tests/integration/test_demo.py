"""`make demo` is a promise in the README: run it, as a process, the way a newcomer would."""

from __future__ import annotations

import asyncio
import sys

import pytest

pytestmark = [pytest.mark.pcsc, pytest.mark.pty, pytest.mark.ledger, pytest.mark.usefixtures("pcscd")]


@pytest.mark.timeout(240)
async def test_the_demo_runs_end_to_end() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators.cli",
        "demo",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 200)
    text = out.decode()
    assert proc.returncode == 0, text
    for expected in (
        "scanned a member_token (qr) → member M0001",
        "¥20 off ¥200 at the bakery  -¥20.00",
        "certificate and challenge verified → member M0002",
        "payment: pay → user_paying",
        "paid ¥115.20 with wechat",
        "tenders [('wechat', '¥115.20')]",
        "WeChat Pay and Alipay simulators up on https://127.0.0.1:",
        "the wallet's own transaction id on the tender, for the day's statement: 42",
        "a cloned copy of that card is tapped → refused",
        "offline=True",
        "top-up ¥500.00, bonus ¥50.00",
        "journaled as a signed topup record",
        "scanned a promo_code → SPRING20",
        "Spring flyer ¥20 off ¥150  -¥20.00",
        "→ ¥1050.00 (the bonus a separate grant",
        "drained: pending 0",
        "a new customer joins at the till",
        "enrolled as J-",
        "ledger: the new member J-",
        "1 point(s) taken back",
        "gateway stopped on SIGTERM with exit code 0",
        "chain, seq numbers and signatures intact",
        "tenant settlement",
        "sales_net",
        "cashier C001 (cashier) signed in",
        "receipt printed (decoded from the ESC/POS",
        "| cashier C001",
        "| [QR RC1.T-DEMO-01.",
        "the cash drawer opened (kicked through the printer): True",
        "over/short  -¥0.50",
        "believed it; by who did it",
        "C001",
    ):
        assert expected in text, f"{expected!r} missing from the demo's output:\n{text}"
