"""The gateway killed (SIGKILL) at each step of a payment: afterwards the provider's books
and the journal agree, every charge is either in a sale or given back, and the till is told.

The gateway is a real process; the WeChat Pay and Alipay simulators run in the test, on their
published formats over HTTPS; each step is tried with both.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from offline_queue.journal import TransactionJournal
from offline_queue.keys import load_or_create_signing_key
from offline_queue.payments import PaymentIntent
from protocols.micropay import Outcome
from simulators.pos_client import PosClient
from simulators.processes import Stack, wallets_table
from simulators.terminal import PtyTerminal
from simulators.wallet_books import Books
from simulators.wallet_sims import Wallets
from tests.harness import LedgerHandle, until

pytestmark = [pytest.mark.ledger]

CODES = {"wechat": "1345678901234567", "alipay": "2845678901234567"}  # + the simulator's two-digit script
WALLETS = ["wechat", "alipay"]
CALLS = {  # each step's call, as the simulators' books name them
    "wechat": {"pay": "micropay", "query": "orderquery", "reverse": "reverse", "refund": "refund"},
    "alipay": {"pay": "trade.pay", "query": "trade.query", "reverse": "trade.cancel", "refund": "trade.refund"},
}
TART = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 4250, "quantity": 2}


@pytest.fixture
def terminal(card_terminal: PtyTerminal) -> PtyTerminal:
    card_terminal.outage_seconds = 3.0  # long enough to kill the gateway while the terminal is dark
    return card_terminal


@pytest.fixture
async def stack(tmp_path: Path, wallets: Wallets, terminal: PtyTerminal) -> AsyncIterator[Stack]:
    table = wallets_table(wallets.creds, wallets.wechat_url, wallets.alipay_url, deadline=5.0, terminal=terminal.link)
    stack = Stack.create(tmp_path, extra_config=table)
    stack.ledger.start()
    await stack.ledger.wait_healthy()
    stack.gateway.start()
    await stack.gateway.wait_healthy()
    yield stack
    stack.shutdown()


def books_of(wallets: Wallets, wallet: str) -> Books:
    return wallets.wechat.books if wallet == "wechat" else wallets.alipay.books


def order(payment_id: str) -> str:
    """The provider's order number for a payment intent (both derive it the same way)."""
    return payment_id.replace("-", "")


async def restart_after_kill(stack: Stack) -> None:
    stack.gateway.stop(signal.SIGKILL)
    stack.gateway.start()
    await stack.gateway.wait_healthy()


async def journal_payments(stack: Stack) -> tuple[list[PaymentIntent], TransactionJournal]:
    """Stop the gateway (cleanly) and read its journal's payments."""
    stack.gateway.stop()
    state = stack.workdir / "state"
    journal = TransactionJournal(state / "journal.sqlite3", load_or_create_signing_key(state / "terminal.key"))
    await journal.open()
    return await journal.payments.every(), journal


@pytest.mark.parametrize("wallet", WALLETS)
@pytest.mark.parametrize(
    "script",
    [
        "07",  # the customer is still typing a password
        "02",  # typing a password; the payment goes through while the gateway is down
        "03",  # the pay request is in flight; the money moved, the answer never came
    ],
)
async def test_killed_while_the_payment_is_open(stack: Stack, wallets: Wallets, wallet: str, script: str) -> None:
    books = books_of(wallets, wallet)
    async with stack.pos() as pos:
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, **TART)
        paying = asyncio.create_task(pos.pay(basket, CODES[wallet] + script))
        await until(lambda: bool(books.payments))
        await restart_after_kill(stack)
        with contextlib.suppress(aiohttp.ClientError):
            await paying
    number = next(iter(books.payments))
    # On restart the payment is queried, then given back: its basket died with the process.
    await until(lambda: books.payments[number].state == "reversed")
    async with stack.pos() as pos:
        status = await pos.wait_status(lambda s: bool(s["payments"]["resolved_after_restart"]))
    told = {p["payment_id"]: p["state"] for p in status["payments"]["resolved_after_restart"]}
    (ref,) = told
    assert (order(ref), told[ref]) == (number, "reversed")
    rows, journal = await journal_payments(stack)
    assert [(p.payment_id, p.state, p.txn_id) for p in rows] == [(ref, "reversed", None)]
    assert CALLS[wallet]["query"] in [call for call, _ in books.calls]  # asked before giving back
    assert (await journal.stats()).total == 0  # no sale claims the money
    await journal.close()


async def pos_status_shows(pos: PosClient, ref: str, state: str) -> None:
    """The till is told (the provider's books may settle a moment before the journal does)."""
    status = await until_status(pos, ref)
    told = {p["payment_id"]: p["state"] for p in status["payments"]["resolved_after_restart"]}
    assert told == {ref: state}


@pytest.mark.parametrize("wallet", WALLETS)
async def test_killed_after_paying_before_the_sale(stack: Stack, wallets: Wallets, wallet: str) -> None:
    books = books_of(wallets, wallet)
    async with stack.pos() as pos:
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, **TART)
        paid = (await pos.pay(basket, CODES[wallet] + "00"))["payment"]
        assert paid["state"] == "paid"
    await restart_after_kill(stack)
    await until(lambda: books.payments[order(paid["payment_id"])].state == "reversed")
    async with stack.pos() as pos:
        await pos_status_shows(pos, paid["payment_id"], "reversed")
    rows, journal = await journal_payments(stack)
    assert [(p.state, p.txn_id) for p in rows] == [("reversed", None)]
    await journal.close()


@pytest.mark.parametrize("wallet", WALLETS)
async def test_killed_after_the_sale_keeps_the_payment(stack: Stack, wallets: Wallets, wallet: str) -> None:
    books = books_of(wallets, wallet)
    async with stack.pos() as pos:
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, **TART)
        paid = (await pos.pay(basket, CODES[wallet] + "00"))["payment"]
        sale = (await pos.complete(basket))["record"]
    await restart_after_kill(stack)
    async with stack.pos() as pos:
        assert (await pos.status())["payments"]["resolved_after_restart"] == []
    rows, journal = await journal_payments(stack)
    assert [(p.state, p.txn_id) for p in rows] == [("paid", sale["txn_id"])]
    record = await journal.get(sale["txn_id"])
    assert record is not None
    assert [(t.kind, t.ref) for t in record.tenders] == [(wallet, paid["payment_id"])]
    await journal.close()
    assert books.of(paid["payment_id"]) == {"state": "paid", "amount": 8500, "charges": 1, "refunded": 0}


@pytest.mark.parametrize("wallet", WALLETS)
async def test_killed_after_the_intent_before_the_request_left(stack: Stack, wallets: Wallets, wallet: str) -> None:
    """The intent is on disk, the provider never heard of it: queried, reversed, never charged."""
    books = books_of(wallets, wallet)
    stack.gateway.stop(signal.SIGKILL)
    state = stack.workdir / "state"
    journal = TransactionJournal(state / "journal.sqlite3", load_or_create_signing_key(state / "terminal.key"))
    await journal.open()
    now = "2026-11-24T00:00:00.000Z"
    intent = PaymentIntent("0190-left-behind", "b1", "key-left-behind", wallet, wallet, "6700", 8500, "CNY",
                           Outcome.PENDING, (), now, now)  # fmt: skip
    await journal.payments.begin_payment(intent)
    await journal.close()
    stack.gateway.start()
    await stack.gateway.wait_healthy()
    number = order(intent.payment_id)
    await until(lambda: (CALLS[wallet]["reverse"], number) in books.calls)
    assert books.calls.index((CALLS[wallet]["query"], number)) < books.calls.index((CALLS[wallet]["reverse"], number))
    assert number not in books.payments  # never charged
    async with stack.pos() as pos:
        await until_status(pos, intent.payment_id)
    rows, journal = await journal_payments(stack)
    assert [(p.state, p.txn_id) for p in rows] == [("reversed", None)]
    await journal.close()


async def until_status(pos: PosClient, ref: str) -> dict[str, Any]:
    for _ in range(100):
        status = await pos.status()
        if any(p["payment_id"] == ref for p in status["payments"]["resolved_after_restart"]):
            return status
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{ref} not reported as resolved")


async def test_killed_while_the_card_terminal_is_dark_after_approving(stack: Stack, terminal: PtyTerminal) -> None:
    """The terminal approved the card and lost power; the gateway dies too. Back up, LAST finds the
    approval and, its basket being gone, the sale is cancelled on the terminal: charged once, given back."""
    terminal.mode = "power-loss"
    async with stack.pos() as pos:
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, **TART)
        paying = asyncio.create_task(
            pos.call("POST", f"/v1/baskets/{basket}/payments", {"method": "card"}, {"Idempotency-Key": "card-crash-1"})
        )
        await until(lambda: any(s.status == "approved" for s in terminal.sales.values()))
        await restart_after_kill(stack)
        with contextlib.suppress(aiohttp.ClientError):
            await paying
    ref = next(iter(terminal.sales))
    terminal.mode = "approve"
    await until(lambda: terminal.sales[ref].status == "cancelled")
    assert terminal.sales[ref].charges == 1  # charged once, then voided: never twice
    async with stack.pos() as pos:
        await pos_status_shows(pos, ref, "reversed")
    rows, journal = await journal_payments(stack)
    assert [(p.payment_id, p.wallet, p.state, p.txn_id) for p in rows] == [(ref, "card", "reversed", None)]
    assert rows[0].detail["pan"] == "622588******1234"
    await journal.close()


async def test_killed_after_a_wallet_payment_the_hold_is_released(stack: Stack) -> None:
    ledger = LedgerHandle.attach(stack.ledger_url, stack.tokens, stack.workdir / "ledger")
    async with stack.pos() as pos:
        await pos.wait_status(lambda s: bool(s["members_cached"]) and s["ledger"]["online"])
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, **TART)
        paid = (await pos.pay(basket, await ledger.wallet_code("M0001")))["payment"]
        assert await ledger.wallet_hold(paid["payment_id"]) == "held"
    await restart_after_kill(stack)
    async with stack.pos() as pos:
        await pos_status_shows(pos, paid["payment_id"], "reversed")
    assert await ledger.wallet_hold(paid["payment_id"]) == "none"
    assert await ledger.wallet("M0001") == 50_000  # nothing was taken


@pytest.mark.parametrize("wallet", WALLETS)
async def test_killed_mid_refund_the_refund_is_finished_once_at_start(
    stack: Stack, wallets: Wallets, wallet: str
) -> None:
    books = books_of(wallets, wallet)
    async with stack.pos() as pos:
        basket = (await pos.new_basket())["basket_id"]
        await pos.add_line(basket, **TART)
        paid = (await pos.pay(basket, CODES[wallet] + "00"))["payment"]
        sale = (await pos.complete(basket))["record"]
        books.refunds_failing = True  # the provider does not answer clearly: the gateway keeps asking
        body = {"txn_id": sale["txn_id"], "lines": [{"line": 1, "quantity": 1}]}
        refunding = asyncio.create_task(pos.call("POST", "/v1/refunds", body, {"Idempotency-Key": "refund-key-1"}))
        await until(lambda: any(c[0] == CALLS[wallet]["refund"] for c in books.calls))
        await restart_after_kill(stack)
        with contextlib.suppress(aiohttp.ClientError):
            await refunding
    books.refunds_failing = False
    number = order(paid["payment_id"])
    await until(lambda: books.payments[number].refunded == 4250)
    async with stack.pos() as pos:
        await pos.wait_status(lambda s: s["journal"]["total"] == 2)  # the refund record, written at start
        again = await pos.call("POST", "/v1/refunds", body, {"Idempotency-Key": "refund-key-1"})
        assert again["replayed"] is True  # the till's retry gets that refund, not a second one
    assert books.payments[number].refunded == 4250
    assert len(books.refunds) == 1
    rows, journal = await journal_payments(stack)
    refunds = await journal.lookups.refunds_of(sale["txn_id"])
    assert [(t.kind, t.amount, t.ref) for r in refunds for t in r.tenders] == [(wallet, 4250, paid["payment_id"])]
    assert [(p.state, p.txn_id) for p in rows if p.basket_id.startswith("refund:")] == [("refunded", refunds[0].txn_id)]
    await journal.close()
