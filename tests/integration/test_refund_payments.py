"""Refunds go back the way the money came: wallet codes, the card terminal, stored value, then cash."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from simulators.acquirer import Acquirer
from simulators.pos_client import PosClient
from simulators.terminal import PtyTerminal
from tests.harness import LedgerHandle, acquirer_payments, gateway_config, paying_gateway, running_gateway

pytestmark = [pytest.mark.ledger]

WECHAT = "1345678901234567"
TART = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 4250}


async def sale(pos: PosClient, pay: list[tuple[str, int]], cash: int, quantity: int = 2) -> dict[str, Any]:
    basket = (await pos.new_basket())["basket_id"]
    await pos.add_line(basket, quantity=quantity, **TART)
    for code, amount in pay:
        if code == "card":
            body = {"method": "card", "amount": amount}
            await pos.call("POST", f"/v1/baskets/{basket}/payments", body, {"Idempotency-Key": secrets.token_hex(8)})
        else:
            assert (await pos.pay(basket, code, amount=amount))["payment"]["state"] == "paid"
    record: dict[str, Any] = (await pos.complete(basket, cash=cash))["record"]
    return record


async def refund(pos: PosClient, txn_id: str, line: int = 1, quantity: int = 1) -> dict[str, Any]:
    body = {"txn_id": txn_id, "lines": [{"line": line, "quantity": quantity}]}
    record: dict[str, Any] = (await pos.call("POST", "/v1/refunds", body, {"Idempotency-Key": secrets.token_hex(8)}))[
        "record"
    ]
    return record


async def test_partial_refunds_go_back_to_the_wallet_first_then_cash(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], acquirer: tuple[str, Acquirer]
) -> None:
    url, books = acquirer
    async with paying_gateway(tmp_path, ledger, tokens, url) as pos:
        sold = await sale(pos, [(WECHAT + "00", 5000)], cash=4000)  # ¥85.00: ¥50 WeChat, ¥40 cash, ¥5 change
        ref = sold["tenders"][0]["ref"]
        first = await refund(pos, sold["txn_id"])  # one tart, ¥42.50: all to WeChat
        assert first["tenders"] == [{"kind": "wechat", "amount": 4250, "ref": ref}]
        assert books.books()[ref]["refunded"] == 4250
        second = await refund(pos, sold["txn_id"])  # the other: ¥7.50 left on WeChat, ¥35.00 cash
        assert second["tenders"] == [{"kind": "wechat", "amount": 750, "ref": ref}, {"kind": "cash", "amount": 3500}]
        assert books.books()[ref]["refunded"] == 5000  # exactly what WeChat paid, never more
        assert (await pos.status())["payments"]["attention"] == []


async def test_a_refund_the_wallet_refuses_is_paid_in_cash_and_recorded_so(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], acquirer: tuple[str, Acquirer]
) -> None:
    url, books = acquirer
    async with paying_gateway(tmp_path, ledger, tokens, url) as pos:
        await pos.connect_events()
        sold = await sale(pos, [(WECHAT + "00", 8500)], cash=0)
        books.payments[sold["tenders"][0]["ref"]].state = "reversed"  # the provider will not refund it now
        back = await refund(pos, sold["txn_id"])
        assert back["tenders"] == [{"kind": "cash", "amount": 4250}]
        told = await pos.next_event("payment")
        while not told.get("outcome", "").startswith("refund"):  # the sale's own payment events come first
            told = await pos.next_event("payment")
        assert told["outcome"] == "refund_refused"
        assert "pay it in cash" in told["message"]


async def test_an_unclear_refund_is_retried_then_raised_never_paid_twice(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], acquirer: tuple[str, Acquirer]
) -> None:
    url, books = acquirer
    async with paying_gateway(tmp_path, ledger, tokens, url) as pos:
        sold = await sale(pos, [(WECHAT + "00", 8500)], cash=0)
        books.refunds_failing = True
        back = await refund(pos, sold["txn_id"])
        ref = sold["tenders"][0]["ref"]
        assert back["tenders"] == [{"kind": "wechat", "amount": 4250, "ref": ref}]  # asked; not paid again in cash
        assert len([c for c in books.calls if c[0] == "refund"]) == 5  # the first try and four more
        attention = (await pos.status())["payments"]["attention"]
        assert [(p["wallet"], p["state"], p["amount"]) for p in attention] == [("wechat", "refund_unknown", 4250)]
        assert "call store IT" in attention[0]["message"]


@pytest.mark.pty
async def test_card_and_stored_value_refunds(
    tmp_path: Path,
    ledger: LedgerHandle,
    tokens: dict[str, str],
    acquirer: tuple[str, Acquirer],
    card_terminal: PtyTerminal,
) -> None:
    url, _ = acquirer
    payments = acquirer_payments(url, terminal=card_terminal.link)
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens, payments=payments)) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]) and s["ledger"]["online"])
        carded = await sale(pos, [("card", 8500)], cash=0)
        back = await refund(pos, carded["txn_id"], quantity=2)
        ref = carded["tenders"][0]["ref"]
        assert back["tenders"] == [{"kind": "card", "amount": 8500, "ref": ref}]
        assert card_terminal.books()[ref]["refunded"] == 8500

        walleted = await sale(pos, [(await ledger.wallet_code("M0001"), 7225)], cash=0)  # classic: ¥72.25
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert await ledger.wallet("M0001") == 50_000 - 7225
        back = await refund(pos, walleted["txn_id"])
        assert back["tenders"][0]["kind"] == "wallet"
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert await ledger.wallet("M0001") == 50_000 - 7225 + back["total_due"]  # credited when it synced
