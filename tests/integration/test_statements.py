"""A day of wallet payments, their statements fetched with the till's credentials, and the ledger
reconciling each statement order by order: agreeing to the fen, then naming every difference."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from protocols.business_day import CHINA
from protocols.statements import read_statement
from simulators.processes import wallets_table
from simulators.wallet_books import Payment
from simulators.wallet_sims import Wallets
from tests.harness import LedgerHandle, gateway_config, ledger_cli, running_gateway, wallet_payments

pytestmark = [pytest.mark.ledger]

CODES = {"wechat": "1345678901234567", "alipay": "2845678901234567"}
TART = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 4250}


async def fetch_statement(
    tmp_path: Path, wallets: Wallets, wallet: str, day: str, out: Path | None = None
) -> tuple[int, str, Path]:
    """``posgw payments statement`` as an operator runs it, with the till's config."""
    config = tmp_path / "till.toml"
    config.write_text(
        '[terminal]\nid = "T1"\nstore_id = "S1"\nmerchant_id = "M1"\n[ledger]\nurl = "http://127.0.0.1:9"\n'
        + wallets_table(wallets.creds, wallets.wechat_url, wallets.alipay_url)
    )
    out = out or tmp_path / f"{wallet}-{day}.statement"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "payments", "statement", "-c", str(config),
        "--wallet", wallet, "--day", day, "-o", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "POSGW_API_TOKEN": "a" * 20, "POSGW_LEDGER_TOKEN": "b" * 20},
    )  # fmt: skip
    text, _ = await proc.communicate()
    return proc.returncode or 0, text.decode(), out


def reconcile(ledger: LedgerHandle, statement: Path, day: str) -> tuple[int, str]:
    done = ledger_cli("report", "reconcile", *ledger.store_args(), "--statement", str(statement), "--day", day)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("wallet", ["wechat", "alipay"])
async def test_a_day_s_statement_reconciles_to_the_fen_and_every_difference_is_named(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], wallets: Wallets, wallet: str
) -> None:
    today = datetime.now(CHINA).date().isoformat()
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, payments=wallet_payments(wallets))
    async with running_gateway(config) as (_gw, pos):
        paid = []
        for n, script in enumerate(("00", "00", "01")):  # two paid, one declined (never on the statement)
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, quantity=n + 1, **TART)
            payment = (await pos.pay(basket, CODES[wallet] + script))["payment"]
            if payment["state"] == "paid":
                paid.append((await pos.complete(basket))["record"])
            else:
                await pos.complete(basket, cash=4250 * (n + 1))
        body = {"txn_id": paid[1]["txn_id"], "lines": [{"line": 1, "quantity": 1}]}
        await pos.call("POST", "/v1/refunds", body, {"Idempotency-Key": "refund-statement-1"})
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)

    code, said, statement = await fetch_statement(tmp_path, wallets, wallet, today)
    assert code == 0, said
    assert "2 payments ¥127.50, 1 refunds ¥42.50" in said
    lines = read_statement(statement.read_bytes()).lines
    assert {line.provider_txn for line in lines if line.kind == "pay"} == {
        t["provider_txn"] for r in paid for t in r["tenders"]
    }
    code, said = reconcile(ledger, statement, today)
    assert code == 0, said
    assert "reconciled: the statement and the ledger agree to the fen" in said

    # The wallet charged an order no sale claims (a payment the till lost), and a sale's payment vanished.
    books = wallets.wechat.books if wallet == "wechat" else wallets.alipay.books
    books.payments["0123456789abcdef0123456789abcdef"] = Payment(
        "0123456789abcdef0123456789abcdef", CODES[wallet] + "00", 999, "paid", charges=1, paid_at=time.time()
    )
    del books.payments[paid[0]["tenders"][0]["ref"].replace("-", "")]
    code, _, statement = await fetch_statement(tmp_path, wallets, wallet, today)
    assert code == 0
    code, said = reconcile(ledger, statement, today)
    assert code == 1
    assert "order 0123456789abcdef0123456789abcdef: charged by" in said
    assert "no sale at the ledger" in said
    assert f"payment the statement does not list: statement none; ledger ¥42.50 in sale {paid[0]['txn_id']}" in said
    assert "2 differences" in said


async def test_a_statement_that_cannot_be_had_or_read_says_why(
    tmp_path: Path, ledger: LedgerHandle, wallets: Wallets
) -> None:
    code, said, _ = await fetch_statement(tmp_path, wallets, "wechat", "2020-01-01")
    assert code == 69
    assert "WeChat Pay has no statement for 2020-01-01: No Bill Exist" in said
    nowhere = tmp_path / "no-such-folder" / "alipay.zip"
    code, said, _ = await fetch_statement(tmp_path, wallets, "alipay", "2020-01-01", out=nowhere)
    assert code == 73  # Alipay publishes an empty bill; it cannot be written there
    assert f"cannot write {nowhere}: No such file or directory" in said
    assert not nowhere.parent.exists()
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("<html>login expired</html>")
    code, said = reconcile(ledger, garbage, "2026-12-01")
    assert code == 65
    assert "not a WeChat Pay downloadbill or Alipay trade bill" in said
