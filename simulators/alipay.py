"""``posgw-sim alipay``: Alipay's open API for barcode payments, as a merchant sees it.

One gateway URL (``POST /gateway.do``, form fields) and the methods
``alipay.trade.pay`` (``scene=bar_code``), ``alipay.trade.query``,
``alipay.trade.cancel`` and ``alipay.trade.refund``. A request whose RSA2
signature does not verify with the merchant's public key is refused
``40002 isv.invalid-signature``; every answer is the method's node signed with
Alipay's own private key, ``sign`` beside it. Outcomes are scripted by the
code's last two digits (``simulators/wallet_books.py``). ``GET /books`` shows
the books.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from protocols import alipay as ali
from simulators.statements import alipay_bill
from simulators.wallet_books import Books, Payment


@dataclass
class AlipaySim:
    app_id: str
    app_public: rsa.RSAPublicKey  # the merchant's: their requests are checked with it
    alipay_private: rsa.RSAPrivateKey  # Alipay's: its answers are signed with it
    books: Books = field(default_factory=Books)
    tamper: set[str] = field(default_factory=set)  # methods whose next answer gets one signature byte flipped
    bills: dict[str, bytes] = field(default_factory=dict)  # bill downloads handed out, by name
    requests: deque[dict[str, str]] = field(
        default_factory=lambda: deque(maxlen=1000)
    )  # every request's form fields, the last 1,000, for tests

    def answer(self, method: str, node: dict[str, Any]) -> web.Response:
        body = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        sig = ali.sign_rsa2(body, self.alipay_private)
        if method in self.tamper:
            self.tamper.discard(method)
            sig = sig[:9] + ("A" if sig[9] != "A" else "B") + sig[10:]
        name = ali.node_name(method) if method else "error_response"
        text = f'{{"{name}":{body},"sign":"{sig}"}}'
        return web.Response(text=text, content_type="application/json", charset="utf-8")


ALIPAY = web.AppKey("alipay", AlipaySim)
OK = {"code": "10000", "msg": "Success"}


def _failure(code: str, msg: str, sub_code: str, sub_msg: str) -> dict[str, str]:
    return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


def _business(sub_code: str, sub_msg: str) -> dict[str, str]:
    return _failure("40004", "Business Failed", sub_code, sub_msg)


SYSTEM_ERROR = _failure("20000", "Service Currently Unavailable", "aop.ACQ.SYSTEM_ERROR", "系统异常")


def _paid_node(p: Payment) -> dict[str, Any]:
    return {
        "trade_no": p.txn_id,
        "out_trade_no": p.order,
        "buyer_logon_id": "159****5620",
        "buyer_user_id": "2088" + p.code[2:14].rjust(12, "0"),
        "total_amount": ali.yuan(p.amount),
        "receipt_amount": ali.yuan(p.amount),
        "gmt_payment": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(p.paid_at + 8 * 3600)),
        "fund_bill_list": [{"fund_channel": "ALIPAYACCOUNT", "amount": ali.yuan(p.amount)}],
    }


async def gateway(request: web.Request) -> web.StreamResponse:
    sim = request.app[ALIPAY]
    await sim.books.wait()
    params = {k: str(v) for k, v in (await request.post()).items()}
    sim.requests.append(params)
    method = params.get("method", "")
    if method not in HANDLERS:
        return sim.answer("", _failure("40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名"))
    if params.get("app_id") != sim.app_id:
        return sim.answer(method, _failure("40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数"))
    if params.get("sign_type") != "RSA2" or not ali.verify_rsa2(
        ali.sign_content(params), params.get("sign", ""), sim.app_public
    ):
        return sim.answer(method, _failure("40002", "Invalid Arguments", "isv.invalid-signature", "验签出错"))
    try:
        biz = json.loads(params.get("biz_content", ""))
    except ValueError:
        biz = None
    if not isinstance(biz, dict):
        return sim.answer(method, _failure("40002", "Invalid Arguments", "isv.invalid-parameter", "biz_content"))
    return await HANDLERS[method](request, sim, {k: str(v) for k, v in biz.items()})


async def pay(request: web.Request, sim: AlipaySim, biz: dict[str, str]) -> web.StreamResponse:
    method = "alipay.trade.pay"
    if biz.get("scene") != "bar_code" or not biz.get("out_trade_no") or not biz.get("auth_code"):
        return sim.answer(method, _business("ACQ.INVALID_PARAMETER", "参数无效"))
    try:
        amount = ali.fen(biz.get("total_amount", ""))
    except ali.AlipayError:
        return sim.answer(method, _business("ACQ.INVALID_PARAMETER", "total_amount"))
    p = await sim.books.pay(request, "trade.pay", biz["out_trade_no"], biz["auth_code"], amount)
    if p is None:
        return sim.answer(method, SYSTEM_ERROR)
    if p.state == "paid":
        return sim.answer(method, {**OK, **_paid_node(p)})
    if p.state == "paying":
        return sim.answer(method, {"code": "10003", "msg": "order success pay inprocess", "out_trade_no": p.order})
    if p.state == "reversed":
        return sim.answer(method, _business("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"))
    if p.reason == "expired":
        refusal = _business("ACQ.PAYMENT_AUTH_CODE_INVALID", "支付失败，获取顾客账户信息失败")
        return sim.answer(method, refusal)
    return sim.answer(method, _business("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足"))


_STATUS = {"paid": "TRADE_SUCCESS", "paying": "WAIT_BUYER_PAY", "declined": "TRADE_CLOSED", "reversed": "TRADE_CLOSED"}


async def query(request: web.Request, sim: AlipaySim, biz: dict[str, str]) -> web.Response:
    p = sim.books.query("trade.query", biz.get("out_trade_no", ""))
    if p is None:
        return sim.answer("alipay.trade.query", _business("ACQ.TRADE_NOT_EXIST", "交易不存在"))
    node = _paid_node(p) if p.state == "paid" else {"out_trade_no": p.order, "total_amount": ali.yuan(p.amount)}
    return sim.answer("alipay.trade.query", {**OK, **node, "trade_status": _STATUS[p.state]})


async def cancel(request: web.Request, sim: AlipaySim, biz: dict[str, str]) -> web.Response:
    order = biz.get("out_trade_no", "")
    p = sim.books.payments.get(order)
    was_paid = p is not None and p.state == "paid"
    if sim.books.reverse("trade.cancel", order) is None:
        return sim.answer("alipay.trade.cancel", _business("ACQ.TRADE_NOT_EXIST", "交易不存在"))
    node = {"out_trade_no": order, "retry_flag": "N", "action": "refund" if was_paid else "close"}
    return sim.answer("alipay.trade.cancel", {**OK, **node})


async def refund(request: web.Request, sim: AlipaySim, biz: dict[str, str]) -> web.Response:
    method, order, refund_no = "alipay.trade.refund", biz.get("out_trade_no", ""), biz.get("out_request_no", "")
    try:
        amount = ali.fen(biz.get("refund_amount", ""))
    except ali.AlipayError:
        return sim.answer(method, _business("ACQ.INVALID_PARAMETER", "refund_amount"))
    again = refund_no in sim.books.refunds
    done = sim.books.refund("trade.refund", refund_no or order, order, amount)
    if done == "error":
        return sim.answer(method, SYSTEM_ERROR)
    if done == "refused":
        failure = _business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法或退款金额超限")
        return sim.answer(method, failure)
    p = sim.books.payments[order]
    node = {"trade_no": p.txn_id, "out_trade_no": order, "refund_fee": ali.yuan(p.refunded),
            "fund_change": "N" if again else "Y", "buyer_user_id": "2088" + p.code[2:14].rjust(12, "0")}  # fmt: skip
    return sim.answer(method, {**OK, **node})


async def bill_url(request: web.Request, sim: AlipaySim, biz: dict[str, str]) -> web.Response:
    """Where to fetch the day's trade bill (a zip, valid for 30 s on the real service)."""
    method = "alipay.data.dataservice.bill.downloadurl.query"
    try:
        day = datetime.strptime(biz.get("bill_date", ""), "%Y-%m-%d").date()
    except ValueError:
        return sim.answer(method, _failure("40004", "Business Failed", "isp.bill_date_invalid", "账单日期格式错误"))
    if biz.get("bill_type") != "trade":
        return sim.answer(method, _failure("40004", "Business Failed", "isv.invalid-bill-type", "账单类型错误"))
    name = secrets.token_urlsafe(12)
    sim.bills[name] = alipay_bill(sim.books, day, ACCOUNT)
    url = f"{request.scheme}://{request.host}/bill/{name}.zip"
    return sim.answer(method, {**OK, "bill_download_url": url})


async def bill(request: web.Request) -> web.Response:
    data = request.app[ALIPAY].bills.pop(request.match_info["name"], None)
    if data is None:
        raise web.HTTPNotFound(text="no such bill (a bill's URL is good once)")
    return web.Response(body=data, content_type="application/zip")


HANDLERS = {"alipay.trade.pay": pay, "alipay.trade.query": query, "alipay.trade.cancel": cancel,
            "alipay.trade.refund": refund, "alipay.data.dataservice.bill.downloadurl.query": bill_url}  # fmt: skip
ACCOUNT = "20880000000000000156"


async def books(request: web.Request) -> web.Response:
    return web.json_response(request.app[ALIPAY].books.books())


def build_app(sim: AlipaySim) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[ALIPAY] = sim
    app.router.add_post("/gateway.do", gateway)
    app.router.add_get("/bill/{name}.zip", bill)
    app.router.add_get("/books", books)
    return app
