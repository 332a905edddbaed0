"""Scan-to-pay and split tenders through the local API, against the acquirer simulator over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from offline_queue.journal import TransactionJournal
from offline_queue.keys import load_or_create_signing_key
from offline_queue.payments import PaymentIntent
from protocols.micropay import Outcome
from simulators.acquirer import Acquirer
from simulators.pos_client import ApiProblemError, PosClient
from simulators.processes import free_port
from simulators.scanner import PtyScanner
from simulators.terminal import PtyTerminal
from tests.harness import (
    LedgerHandle,
    acquirer_payments,
    files_containing,
    gateway_config,
    paying_gateway,
    running_gateway,
)

pytestmark = [pytest.mark.ledger]

WECHAT = "1345678901234567"  # + two digits: the acquirer's script
ALIPAY = "2845678901234567"
TART = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 4250}


async def outcome_event(pos: PosClient) -> dict[str, Any]:
    """The next ``payment`` event that tells the cashier how a payment ended."""
    told = await pos.next_event("payment")
    while "outcome" not in told:
        told = await pos.next_event("payment")
    return told


async def basket_of(pos: PosClient, quantity: int = 2) -> str:
    basket: str = (await pos.new_basket())["basket_id"]
    await pos.add_line(basket, quantity=quantity, **TART)
    return basket


async def problem(call: object) -> ApiProblemError:
    with pytest.raises(ApiProblemError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_split_tenders_in_any_order_with_change_from_cash(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], acquirer: tuple[str, Acquirer]
) -> None:
    url, books = acquirer
    async with paying_gateway(tmp_path, ledger, tokens, url) as pos:
        await pos.connect_events()
        basket = await basket_of(pos)  # 2 × ¥42.50 = ¥85.00
        alipay = await pos.pay(basket, ALIPAY + "00", amount=3000)
        assert alipay["payment"]["state"] == "paid"
        wechat = await pos.pay(basket, WECHAT + "00", amount=5000)
        assert wechat["basket"]["left_to_pay"] == 500
        step = await pos.next_event("payment")
        assert (step["step"], step["answer"], step["amount"]) == ("pay", "success", 3000)
        # Money is held against the basket: it can no longer change under the customer.
        assert (await problem(pos.add_line(basket, **TART))).status == 409
        # Not covered yet: refused, nothing recorded.
        assert (await problem(pos.complete(basket))).body["type"] == "urn:posgw:problem:tender-invalid"
        record = (await pos.complete(basket, cash=1000))["record"]
        assert record["tenders"] == [
            {"kind": "alipay", "amount": 3000, "ref": alipay["payment"]["payment_id"]},
            {"kind": "wechat", "amount": 5000, "ref": wechat["payment"]["payment_id"]},
            {"kind": "cash", "amount": 1000},
        ]
        assert (record["total_due"], record["change"]) == (8500, 500)
    charged = books.books()
    assert charged[alipay["payment"]["payment_id"]] == {"state": "paid", "amount": 3000, "charges": 1, "refunded": 0}
    assert charged[wechat["payment"]["payment_id"]] == {"state": "paid", "amount": 5000, "charges": 1, "refunded": 0}


@pytest.mark.parametrize(
    ("script", "state"),
    [
        ("01", "declined"),
        ("02", "paid"),  # the customer types a password for 3 s
        ("06", "paid"),  # the answer to pay is lost: found by query
        ("07", "reversed"),  # paying until the deadline: reversed, nothing charged
    ],
)
async def test_each_outcome_reaches_the_cashier_and_matches_the_books(
    tmp_path: Path,
    ledger: LedgerHandle,
    tokens: dict[str, str],
    acquirer: tuple[str, Acquirer],
    script: str,
    state: str,
) -> None:
    url, books = acquirer
    async with paying_gateway(tmp_path, ledger, tokens, url) as pos:
        await pos.connect_events()
        basket = await basket_of(pos)
        payment = (await pos.pay(basket, WECHAT + script))["payment"]
        assert payment["state"] == state
        told = await outcome_event(pos)
        assert (told["outcome"], told["message"]) == (state, payment["message"])
        entry = books.books().get(payment["payment_id"])
        assert entry is not None
        assert entry["state"] == state
        if state == "paid":
            record = (await pos.complete(basket))["record"]
            assert record["tenders"] == [{"kind": "wechat", "amount": 8500, "ref": payment["payment_id"]}]
        else:  # nothing charged: the basket is still open, cash takes it
            assert (await pos.complete(basket, cash=8500))["record"]["tenders"] == [{"kind": "cash", "amount": 8500}]


async def test_a_retried_payment_never_pays_twice(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], acquirer: tuple[str, Acquirer]
) -> None:
    url, books = acquirer
    async with paying_gateway(tmp_path, ledger, tokens, url) as pos:
        basket = await basket_of(pos)
        # Two requests with one key at once, while the customer is still typing a password.
        first, second = await asyncio.gather(
            pos.pay(basket, WECHAT + "02", key="pay-key-0001"), pos.pay(basket, WECHAT + "02", key="pay-key-0001")
        )
        assert first["payment"]["payment_id"] == second["payment"]["payment_id"]
        assert {first["payment"]["state"], second["payment"]["state"]} == {"paid"}
        again = await pos.pay(basket, WECHAT + "02", key="pay-key-0001")
        assert again["payment"]["payment_id"] == first["payment"]["payment_id"]
        ref = first["payment"]["payment_id"]
        assert [c for c in books.calls if c == ("pay", ref)] == [("pay", ref)]
        assert books.books()[ref]["charges"] == 1
        # The same key on another basket is a different request: refused.
        other = await basket_of(pos)
        assert (await problem(pos.pay(other, WECHAT + "00", key="pay-key-0001"))).status == 422
        # The same key on the same basket with another code or amount is another request too.
        assert (await problem(pos.pay(basket, WECHAT + "13", key="pay-key-0001"))).status == 422
        assert (await problem(pos.pay(basket, WECHAT + "02", amount=1, key="pay-key-0001"))).status == 422


async def test_cancelling_a_basket_gives_its_payments_back(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], acquirer: tuple[str, Acquirer]
) -> None:
    url, books = acquirer
    async with paying_gateway(tmp_path, ledger, tokens, url) as pos:
        basket = await basket_of(pos)
        paid = (await pos.pay(basket, WECHAT + "00", amount=2000))["payment"]
        cancelled = await pos.cancel(basket)
        assert cancelled["state"] == "cancelled"
        assert [p["state"] for p in cancelled["payments"]] == ["reversed"]
        assert books.books()[paid["payment_id"]]["state"] == "reversed"
        assert (await problem(pos.complete(basket, cash=8500))).status == 409
        assert (await pos.status())["journal"]["total"] == 0  # no sale


async def test_bad_codes_and_amounts_are_refused_with_reasons(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], acquirer: tuple[str, Acquirer]
) -> None:
    url, books = acquirer
    payments = acquirer_payments(url, wallets=("wechat",))
    async with running_gateway(gateway_config(tmp_path, ledger.url, tokens, payments=payments)) as (_gw, pos):
        basket = await basket_of(pos)
        unknown = await problem(pos.pay(basket, "6901234567892"))
        assert unknown.body["type"] == "urn:posgw:problem:payment-code"
        assert "WeChat Pay" in unknown.body["detail"]
        not_here = await problem(pos.pay(basket, ALIPAY + "00"))
        assert not_here.body["type"] == "urn:posgw:problem:payment-unavailable"
        assert "Alipay is not set up" in not_here.body["detail"]
        too_much = await problem(pos.pay(basket, WECHAT + "00", amount=8501))
        assert too_much.status == 409
        assert "¥85.00 left to pay" in too_much.body["detail"]
        no_key = await problem(pos.call("POST", f"/v1/baskets/{basket}/payments", {"code": WECHAT + "00"}))
        assert no_key.status == 422
        assert books.books() == {}  # nothing reached the acquirer


async def test_a_dead_network_is_said_at_once_and_charges_nothing(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    async with running_gateway(gateway_config(tmp_path, ledger.url, tokens, payments=acquirer_payments(nowhere))) as (
        _gw,
        pos,
    ):
        basket = await basket_of(pos)
        payment = (await pos.pay(basket, WECHAT + "00"))["payment"]
        assert payment["state"] == "unreachable"
        assert "no network" in payment["message"]
        assert payment["history"] == ["pay: unreachable"]
        # Cash always works.
        assert (await pos.complete(basket, cash=9000))["record"]["change"] == 500


@pytest.mark.pty
async def test_the_cashier_scans_the_payment_code_on_the_scanner(
    tmp_path: Path,
    ledger: LedgerHandle,
    tokens: dict[str, str],
    acquirer: tuple[str, Acquirer],
    pty_scanner: PtyScanner,
) -> None:
    url, books = acquirer
    config = gateway_config(tmp_path, ledger.url, tokens, scanner=pty_scanner.link, payments=acquirer_payments(url))
    async with running_gateway(config) as (_gw, pos):
        await pos.connect_events()
        await pos.wait_status(lambda s: s["devices"][0]["state"] == "idle")
        pty_scanner.send(WECHAT + "00", aim="]C0")  # no basket yet: refused, nothing charged
        assert (await pos.next_event("payment"))["error"]["code"] == "no-basket"
        basket = await basket_of(pos)
        pty_scanner.send(WECHAT + "00", aim="]C0")
        scan = await pos.next_event("scan")
        assert (scan["kind"], scan["data"], scan["detail"]) == ("payment_code", None, "wechat")
        told = await outcome_event(pos)
        assert (told["basket_id"], told["outcome"], told["amount"]) == (basket, "paid", 8500)
        record = (await pos.complete(basket))["record"]
        assert record["tenders"] == [{"kind": "wechat", "amount": 8500, "ref": told["payment_id"]}]
    assert books.books()[told["payment_id"]]["charges"] == 1


@pytest.mark.pty
async def test_card_wallet_and_cash_split_and_no_full_card_number_is_stored(
    tmp_path: Path,
    ledger: LedgerHandle,
    tokens: dict[str, str],
    acquirer: tuple[str, Acquirer],
    card_terminal: PtyTerminal,
) -> None:
    url, _ = acquirer
    payments = acquirer_payments(url, terminal=card_terminal.link)
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens, payments=payments)) as (_gw, pos):
        basket = await basket_of(pos)
        body = {"method": "card", "amount": 4000}
        card = (await pos.call("POST", f"/v1/baskets/{basket}/payments", body, {"Idempotency-Key": "card-pay-1"}))[
            "payment"
        ]
        assert card["state"] == "paid"
        wechat = (await pos.pay(basket, WECHAT + "00", amount=4000))["payment"]
        record = (await pos.complete(basket, cash=1000))["record"]
        assert record["tenders"][0] == {
            "kind": "card",
            "amount": 4000,
            "ref": card["payment_id"],
            "scheme": "UnionPay",
            "pan": "622588******1234",
            "auth": card_terminal.sales[card["payment_id"]].auth,
        }
        assert [t["kind"] for t in record["tenders"]] == ["card", "wechat", "cash"]
        assert record["change"] == 500
        assert wechat["state"] == "paid"
    # The terminal sent the full card number; it is nowhere on disk.
    assert files_containing(tmp_path / "gw", b"6225881234561234") == []
    expected = {"status": "approved", "amount": 4000, "charges": 1, "refunded": 0}
    assert card_terminal.books()[card["payment_id"]] == expected


async def test_pay_equals_member_the_wallet_account_found_at_the_ledger_earns_points(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], acquirer: tuple[str, Acquirer]
) -> None:
    url, _ = acquirer
    await ledger.add_identifier("M0003", "payer:wechat:p45678901")  # the member bound this WeChat account in the app
    async with paying_gateway(tmp_path, ledger, tokens, url) as pos:
        await pos.wait_status(lambda s: s["ledger"]["online"])  # the payer is looked up at the ledger, online
        basket = await basket_of(pos, quantity=30)  # ¥1,275.00, no member shown: no member price
        await pos.pay(basket, WECHAT + "00")
        record = (await pos.complete(basket))["record"]
        assert (record["member_id"], record["member_via"]) == ("M0003", "payment")
        assert record["total_due"] == 127_500  # found after paying: the price stands
        assert record["points_earned"] == 12  # but the member earns on what was paid
        # Someone the ledger does not know pays: an anonymous sale, as before.
        other = await basket_of(pos)
        await pos.pay(other, "1398765432101234" + "00")
        assert (await pos.complete(other))["record"]["member_id"] is None
    # The payer id identifies a person: used, never written down (the ledger's own files aside).
    assert files_containing(tmp_path, b"p45678901") == []


async def test_a_payment_left_open_for_a_provider_no_longer_set_up_is_raised_not_fatal(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], acquirer: tuple[str, Acquirer]
) -> None:
    url, _ = acquirer
    config = gateway_config(tmp_path, ledger.url, tokens, payments=acquirer_payments(url, wallets=("wechat",)))
    journal = TransactionJournal(config.journal_path, load_or_create_signing_key(config.key_path))
    await journal.open()
    now = "2026-11-24T00:00:00.000Z"
    await journal.payments.begin_payment(
        PaymentIntent("left-1", "b1", "key-left-1", "alipay", "alipay", "0000", 100, "CNY", Outcome.PAID, (), now, now)
    )
    await journal.close()
    async with running_gateway(config) as (_gw, pos):
        status = await pos.wait_status(lambda s: bool(s["payments"]["unresolved"]))
        (left,) = status["payments"]["unresolved"]
        assert left["payment_id"] == "left-1"
        assert "alipay is no longer set up here" in left["reason"]
        basket = await basket_of(pos)  # the till works on
        assert (await pos.complete(basket, cash=8500))["record"]["seq"] == 1


async def test_cancelling_while_a_payment_runs_waits_for_it_then_gives_it_back(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], acquirer: tuple[str, Acquirer]
) -> None:
    url, books = acquirer
    async with paying_gateway(tmp_path, ledger, tokens, url) as pos:
        basket = await basket_of(pos)
        paying = asyncio.create_task(pos.pay(basket, WECHAT + "02"))  # the customer types a password for 3 s
        await until_charged(books)
        paying.cancel()  # the till stops waiting for the answer
        cancelled = await pos.cancel(basket)
        ((ref, entry),) = books.books().items()
        assert [(p["payment_id"], p["state"]) for p in cancelled["payments"]] == [(ref, "reversed")]
        assert entry["state"] == "reversed"


async def until_charged(books: Acquirer) -> None:
    for _ in range(200):
        if books.payments:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the acquirer never heard of the payment")
