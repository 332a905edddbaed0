"""WeChat Pay and Alipay on their published merchant APIs, through the local API, against faithful
simulators over HTTPS: each scripted outcome, a forged signature, refunds back the same way, the
provider's transaction id on the tender, and a provider whose TLS certificate is not trusted."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from aiohttp import web

from gateway.daemon import Gateway
from protocols import alipay as ali
from protocols import wechatpay as wx
from simulators.pos_client import PosClient
from simulators.processes import free_port
from simulators.wallet_books import Books
from simulators.wallet_sims import Wallets
from simulators.wechatpay import WECHATPAY
from simulators.wechatpay import reverse as wechat_reverse
from tests.harness import LedgerHandle, gateway_config, running_gateway, wallet_payments

pytestmark = [pytest.mark.ledger]

CODES = {"wechat": "1345678901234567", "alipay": "2845678901234567"}  # + two digits: the simulator's script
TART = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 4250}
WALLETS = ["wechat", "alipay"]


def books_of(wallets: Wallets, wallet: str) -> Books:
    return wallets.wechat.books if wallet == "wechat" else wallets.alipay.books


async def basket_of(pos: PosClient) -> str:
    basket: str = (await pos.new_basket())["basket_id"]
    await pos.add_line(basket, quantity=2, **TART)  # ¥85.00
    return basket


def gateway(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], wallets: Wallets, **options: object
) -> AbstractAsyncContextManager[tuple[Gateway, PosClient]]:
    return running_gateway(
        gateway_config(tmp_path, ledger.url, tokens, payments=wallet_payments(wallets, options=options))
    )


SCRIPTS = [
    ("00", "paid", 1),
    ("01", "declined", 0),  # insufficient balance
    ("02", "paid", 1),  # the customer types a password for 3 s: USERPAYING / 10003, then query
    ("04", "reversed", 0),  # system error: queried once (no such order: final), reversed at once
    ("06", "paid", 1),  # the answer to pay is lost: found by query
    ("07", "reversed", 0),  # paying until the deadline: reversed / cancelled
    ("08", "declined", 0),  # the code has expired
]


@pytest.mark.parametrize("wallet", WALLETS)
async def test_each_scripted_outcome_reaches_the_cashier_and_matches_the_provider_s_books(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], wallets: Wallets, wallet: str
) -> None:
    """Every script at once, a basket each, on one till (the deadlines run side by side)."""
    async with gateway(tmp_path, ledger, tokens, wallets) as (_gw, pos):
        await asyncio.gather(*(one_outcome(pos, wallets, wallet, *script) for script in SCRIPTS))


async def one_outcome(pos: PosClient, wallets: Wallets, wallet: str, script: str, state: str, charged: int) -> None:
    basket = await basket_of(pos)
    payment = (await pos.pay(basket, CODES[wallet] + script))["payment"]
    assert payment["state"] == state, (script, payment["history"])
    entry = books_of(wallets, wallet).of(payment["payment_id"])
    if script == "04":
        assert entry is None  # the system error charged nothing and opened no order
        # The provider answered pay (with an error), then said it has no such order: that is final, so the
        # cashier does not wait out the deadline: one query, then the reversal that closes it.
        history = payment["history"]
        assert sum(line.startswith("query:") for line in history) == 1, history
        assert history[-1] == "reverse: success", history
    else:
        assert entry is not None
        assert (entry["amount"], entry["charges"] - (state == "reversed") * entry["charges"]) == (8500, charged)
    assert all("verified" in line for line in payment["history"] if line.startswith(("micropay", "trade."))), script
    if state == "declined":  # the provider's reason, in Chinese for the customer and English for the cashier
        assert " / " in payment["message"]
        assert payment["message"].endswith("nothing was charged")
    if state == "paid":
        record = (await pos.complete(basket))["record"]
        (tender,) = record["tenders"]
        assert tender["kind"] == wallet
        assert tender["ref"] == payment["payment_id"]
        order = books_of(wallets, wallet).payments[wx.order_no(payment["payment_id"])]
        assert tender["provider_txn"] == order.txn_id
    else:
        assert (await pos.complete(basket, cash=8500))["record"]["tenders"] == [{"kind": "cash", "amount": 8500}]


@pytest.mark.parametrize("wallet", WALLETS)
async def test_an_answer_whose_signature_was_tampered_with_is_not_believed_and_the_order_is_queried(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], wallets: Wallets, wallet: str
) -> None:
    if wallet == "wechat":
        wallets.wechat.tamper.add("micropay")
    else:
        wallets.alipay.tamper.add("alipay.trade.pay")
    async with gateway(tmp_path, ledger, tokens, wallets) as (_gw, pos):
        basket = await basket_of(pos)
        payment = (await pos.pay(basket, CODES[wallet] + "00"))["payment"]
    history = payment["history"]
    assert any("not believed: signature does not verify" in line for line in history), history
    assert any(line.startswith(("orderquery: SUCCESS", "trade.query: TRADE_SUCCESS")) for line in history), history
    assert payment["state"] == "paid"
    calls = [call for call, _ in books_of(wallets, wallet).calls]
    assert calls[:2] == (["micropay", "orderquery"] if wallet == "wechat" else ["trade.pay", "trade.query"])


@pytest.mark.parametrize("wallet", WALLETS)
async def test_a_refund_goes_back_through_the_provider_that_took_the_money_once(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], wallets: Wallets, wallet: str
) -> None:
    async with gateway(tmp_path, ledger, tokens, wallets) as (_gw, pos):
        basket = await basket_of(pos)
        payment = (await pos.pay(basket, CODES[wallet] + "00"))["payment"]
        sale = (await pos.complete(basket))["record"]
        body = {"txn_id": sale["txn_id"], "lines": [{"line": 1, "quantity": 1}]}
        key = {"Idempotency-Key": "refund-key-0001"}
        refund = (await pos.call("POST", "/v1/refunds", body, key))["record"]
        again = (await pos.call("POST", "/v1/refunds", body, key))["record"]
    assert again["txn_id"] == refund["txn_id"]
    assert [(t["kind"], t["amount"]) for t in refund["tenders"]] == [(wallet, 4250)]
    order = books_of(wallets, wallet).payments[ali.order_no(payment["payment_id"])]
    assert (order.state, order.refunded) == ("paid", 4250)
    assert len(books_of(wallets, wallet).refunds) == 1


@pytest.mark.parametrize("wallet", WALLETS)
async def test_a_provider_whose_certificate_is_not_trusted_is_never_sent_the_code(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], wallets: Wallets, wallet: str
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(wallets.creds.client_cert.read_bytes())  # a certificate, but not the providers' CA
    async with gateway(tmp_path, ledger, tokens, wallets, ca_file=str(other_ca)) as (_gw, pos):
        basket = await basket_of(pos)
        payment = (await pos.pay(basket, CODES[wallet] + "00"))["payment"]
    assert payment["state"] == "unreachable"
    assert any("TLS" in line for line in payment["history"]), payment["history"]
    assert books_of(wallets, wallet).calls == []


async def test_a_mall_collecting_for_its_tenants_names_them_on_every_call(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], wallets: Wallets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WeChat Pay's service-provider mode (``sub_mch_id``) and Alipay's partner mode (``app_auth_token``)."""
    monkeypatch.setenv("POSGW_ALIPAY_APP_AUTH_TOKEN", "201510BB0c409dd5758b4d939d4008a525463X")
    payments = wallet_payments(wallets)
    options = [p["options"] for p in payments["providers"]]  # type: ignore[attr-defined]
    options[0]["sub_mch_id"] = "1900000109"
    options[1]["partner"] = True
    async with running_gateway(gateway_config(tmp_path, ledger.url, tokens, payments=payments)) as (_gw, pos):
        for wallet in WALLETS:
            basket = await basket_of(pos)
            assert (await pos.pay(basket, CODES[wallet] + "00"))["payment"]["state"] == "paid"
    assert {r["sub_mch_id"] for r in wallets.wechat.requests} == {"1900000109"}
    assert {r["app_auth_token"] for r in wallets.alipay.requests} == {"201510BB0c409dd5758b4d939d4008a525463X"}


async def test_a_provider_answering_html_entities_or_garbage_is_never_believed(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], wallets: Wallets
) -> None:
    """A hostile or broken WeChat Pay endpoint: an HTML page, an XML bomb, an unsigned FAIL. Nothing it says
    is believed; the payment is asked about until the deadline, then reversed, and the cashier told."""
    answers = iter(
        [
            web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
            web.Response(body=b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>'),
            web.Response(body=b"<xml><return_code>FAIL</return_code><return_msg>OK</return_msg></xml>"),
        ]
    )
    seen: list[str] = []

    async def hostile(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        if request.path == "/secapi/pay/reverse":
            return await wechat_reverse(request)
        return next(answers, web.Response(status=503, text="down"))

    wallets.wechat.require_cert = False  # plain HTTP here: no client certificate to present
    app = web.Application()
    app[WECHATPAY] = wallets.wechat
    app.router.add_route("POST", "/{tail:.*}", hostile)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        payments = wallet_payments(wallets)
        payments["providers"] = payments["providers"][:1]  # type: ignore[index]
        payments["providers"][0]["options"]["url"] = f"http://127.0.0.1:{port}"  # type: ignore[index]
        async with running_gateway(gateway_config(tmp_path, ledger.url, tokens, payments=payments)) as (_gw, pos):
            payment = (await pos.pay(await basket_of(pos), CODES["wechat"] + "00"))["payment"]
    finally:
        await runner.cleanup()
    history = "\n".join(payment["history"])
    assert payment["state"] == "reversed", history
    assert "pay/micropay: not believed: the answer's root is <html>, not <xml>" in history
    assert "not believed: a DTD or entity declaration" in history
    assert "not believed: return_code FAIL" in history
    assert seen[0] == "/pay/micropay"
    assert seen[-1] == "/secapi/pay/reverse"


async def test_a_refund_whose_order_cannot_be_looked_up_is_asked_again_not_refused(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], wallets: Wallets
) -> None:
    """WeChat Pay's refund needs the order's total from orderquery; a SYSTEMERROR there is unclear, not a no."""
    async with gateway(tmp_path, ledger, tokens, wallets) as (_gw, pos):
        basket = await basket_of(pos)
        payment = (await pos.pay(basket, CODES["wechat"] + "00"))["payment"]
        sale = (await pos.complete(basket))["record"]
        wallets.wechat.failing["orderquery"] = 1
        body = {"txn_id": sale["txn_id"], "lines": [{"line": 1, "quantity": 1}]}
        refund = (await pos.call("POST", "/v1/refunds", body, {"Idempotency-Key": "refund-key-0002"}))["record"]
    assert [(t["kind"], t["amount"]) for t in refund["tenders"]] == [("wechat", 4250)]  # not paid in cash
    assert wallets.wechat.books.payments[wx.order_no(payment["payment_id"])].refunded == 4250
