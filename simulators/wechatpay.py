"""``posgw-sim wechatpay``: WeChat Pay's payment-code merchant API (v2), as a merchant sees it.

The same paths, XML and signatures as ``api.mch.weixin.qq.com``:
``pay/micropay``, ``pay/orderquery``, ``secapi/pay/reverse``,
``secapi/pay/refund`` and ``pay/refundquery``. A request whose signature does
not verify with the merchant's API key is answered ``return_code=FAIL``
(签名错误), unsigned, as the real service does; a ``secapi`` call without the
merchant's client certificate is refused the same way. Every other answer is
signed with the API key (the request's ``sign_type``). Outcomes are scripted by
the code's last two digits (``simulators/wallet_books.py``). ``GET /books``
shows the books (the simulator's, not WeChat's).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from protocols import wechatpay as wx
from simulators.statements import wechat_bill
from simulators.wallet_books import Books, Payment, payer_of


@dataclass
class WechatPaySim:
    api_key: str
    appid: str
    mch_id: str
    books: Books = field(default_factory=Books)
    tamper: set[str] = field(default_factory=set)  # calls whose next answer gets one signature byte flipped
    require_cert: bool = True  # secapi calls need the merchant's client certificate
    requests: deque[dict[str, str]] = field(
        default_factory=lambda: deque(maxlen=1000)
    )  # every request as received, the last 1,000, for tests
    failing: dict[str, int] = field(default_factory=dict)  # call -> how many more to answer SYSTEMERROR

    def answer(self, request_fields: dict[str, str], fields: dict[str, str], call: str) -> web.Response:
        common = {"return_code": "SUCCESS", "return_msg": "OK", "appid": self.appid, "mch_id": self.mch_id,
                  "sub_mch_id": request_fields.get("sub_mch_id", ""), "nonce_str": wx.nonce()}  # fmt: skip
        sign_type = request_fields.get("sign_type", "MD5")
        signed = wx.signed({**common, **fields}, self.api_key, sign_type)
        if sign_type == "MD5":
            signed.pop("sign_type", None)
        if call in self.tamper:
            self.tamper.discard(call)
            sig = signed["sign"]
            signed["sign"] = sig[:5] + ("0" if sig[5] != "0" else "1") + sig[6:]
        return _xml(signed)


WECHATPAY = web.AppKey("wechatpay", WechatPaySim)


def _xml(fields: dict[str, str]) -> web.Response:
    return web.Response(body=wx.to_xml(fields), content_type="text/xml", charset="utf-8")


def _fail(message: str) -> web.Response:
    return _xml({"return_code": "FAIL", "return_msg": message})


async def _request(request: web.Request, call: str) -> tuple[WechatPaySim, dict[str, str]] | web.Response:
    sim = request.app[WECHATPAY]
    await sim.books.wait()
    try:
        fields = wx.from_xml(await request.read())
    except wx.WechatPayError:
        return _fail("XML格式错误")
    sim.requests.append(fields)
    if fields.get("appid") != sim.appid or fields.get("mch_id") != sim.mch_id:
        return _fail("appid和mch_id不匹配")
    if fields.get("sign_type", "MD5") not in wx.SIGN_TYPES or not wx.verify(fields, sim.api_key, "MD5"):
        return _fail("签名错误")
    if call.startswith("secapi") and sim.require_cert and not _has_client_cert(request):
        return _fail("请使用证书")
    return sim, fields


def _has_client_cert(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and bool(transport.get_extra_info("peercert"))


def _refusal(code: str, description: str) -> dict[str, str]:
    return {"result_code": "FAIL", "err_code": code, "err_code_des": description}


def _paid_fields(p: Payment, fields: dict[str, str]) -> dict[str, str]:
    return {
        "openid": "o" + payer_of(p.code),
        "is_subscribe": "N",
        "trade_type": "MICROPAY",
        "bank_type": "OTHERS",
        "fee_type": "CNY",
        "total_fee": str(p.amount),
        "cash_fee": str(p.amount),
        "transaction_id": p.txn_id,
        "out_trade_no": p.order,
        "time_end": time.strftime("%Y%m%d%H%M%S", time.gmtime(p.paid_at + 8 * 3600)),
        "device_info": fields.get("device_info", ""),
    }


async def micropay(request: web.Request) -> web.StreamResponse:
    got = await _request(request, "micropay")
    if isinstance(got, web.Response):
        return got
    sim, fields = got
    for need in ("body", "out_trade_no", "total_fee", "spbill_create_ip", "auth_code"):
        if not fields.get(need):
            return sim.answer(fields, _refusal("LACK_PARAMS", f"缺少参数{need}"), "micropay")
    if not fields["total_fee"].isdigit() or int(fields["total_fee"]) <= 0:
        return sim.answer(fields, _refusal("PARAM_ERROR", "total_fee"), "micropay")
    p = await sim.books.pay(request, "micropay", fields["out_trade_no"], fields["auth_code"], int(fields["total_fee"]))
    if p is None:
        return sim.answer(fields, _refusal("SYSTEMERROR", "系统超时"), "micropay")
    if p.state == "paid":
        return sim.answer(fields, {"result_code": "SUCCESS", **_paid_fields(p, fields)}, "micropay")
    if p.state == "paying":
        return sim.answer(fields, _refusal("USERPAYING", "需要用户输入支付密码"), "micropay")
    if p.state == "reversed":
        return sim.answer(fields, _refusal("ORDERREVERSED", "订单已撤销"), "micropay")
    if p.reason == "expired":
        return sim.answer(fields, _refusal("AUTHCODEEXPIRE", "二维码已过期，请用户在微信上刷新后再试"), "micropay")
    return sim.answer(fields, _refusal("NOTENOUGH", "用户余额不足"), "micropay")


_TRADE_STATE = {"paid": "SUCCESS", "paying": "USERPAYING", "declined": "PAYERROR", "reversed": "REVOKED"}


async def orderquery(request: web.Request) -> web.Response:
    got = await _request(request, "orderquery")
    if isinstance(got, web.Response):
        return got
    sim, fields = got
    if sim.failing.get("orderquery", 0) > 0:
        sim.failing["orderquery"] -= 1
        return sim.answer(fields, _refusal("SYSTEMERROR", "系统超时"), "orderquery")
    p = sim.books.query("orderquery", fields.get("out_trade_no", ""))
    if p is None:
        return sim.answer(fields, _refusal("ORDERNOTEXIST", "此交易订单号不存在"), "orderquery")
    state = "REFUND" if p.state == "paid" and p.refunded else _TRADE_STATE[p.state]
    detail = _paid_fields(p, fields) if p.state == "paid" else {"out_trade_no": p.order, "total_fee": str(p.amount)}
    return sim.answer(fields, {"result_code": "SUCCESS", "trade_state": state, **detail}, "orderquery")


async def reverse(request: web.Request) -> web.Response:
    got = await _request(request, "reverse")
    if isinstance(got, web.Response):
        return got
    sim, fields = got
    if sim.books.reverse("reverse", fields.get("out_trade_no", "")) is None:
        return sim.answer(fields, _refusal("ORDERNOTEXIST", "订单不存在"), "reverse")
    return sim.answer(fields, {"result_code": "SUCCESS", "recall": "N"}, "reverse")


async def refund(request: web.Request) -> web.Response:
    got = await _request(request, "refund")
    if isinstance(got, web.Response):
        return got
    sim, fields = got
    order, refund_no = fields.get("out_trade_no", ""), fields.get("out_refund_no", "")
    fee = fields.get("refund_fee", "")
    p = sim.books.payments.get(order)
    if not fee.isdigit() or p is None or fields.get("total_fee") != str(p.amount):
        sim.books.calls.append(("refund", refund_no))
        return sim.answer(fields, _refusal("PARAM_ERROR", "订单金额或退款金额与之前请求不一致"), "refund")
    done = sim.books.refund("refund", refund_no, order, int(fee))
    if done == "error":
        return sim.answer(fields, _refusal("SYSTEMERROR", "系统超时"), "refund")
    if done == "refused":
        return sim.answer(fields, _refusal("ERROR", "订单状态错误或退款金额超过可退金额"), "refund")
    refund_id = "50" + p.txn_id[2:]
    ok = {"result_code": "SUCCESS", "out_trade_no": order, "out_refund_no": refund_no, "refund_id": refund_id,
          "refund_fee": fee, "total_fee": str(p.amount), "transaction_id": p.txn_id}  # fmt: skip
    return sim.answer(fields, ok, "refund")


async def refundquery(request: web.Request) -> web.Response:
    got = await _request(request, "refundquery")
    if isinstance(got, web.Response):
        return got
    sim, fields = got
    refund_no = fields.get("out_refund_no", "")
    sim.books.calls.append(("refundquery", refund_no))
    if refund_no not in sim.books.refunds:
        return sim.answer(fields, _refusal("REFUNDNOTEXIST", "退款订单查询失败"), "refundquery")
    order, amount = sim.books.refunds[refund_no]
    listed = {"result_code": "SUCCESS", "out_trade_no": order, "refund_count": "1", "out_refund_no_0": refund_no,
              "refund_fee_0": str(amount), "refund_status_0": "SUCCESS"}  # fmt: skip
    return sim.answer(fields, listed, "refundquery")


async def downloadbill(request: web.Request) -> web.Response:
    """The day's statement as CSV text (unsigned, as WeChat Pay's is: its TLS is what vouches for it)."""
    got = await _request(request, "downloadbill")
    if isinstance(got, web.Response):
        return got
    sim, fields = got
    try:
        day = datetime.strptime(fields.get("bill_date", ""), "%Y%m%d").date()
    except ValueError:
        return _fail("invalid bill_date")
    if fields.get("bill_type", "ALL") != "ALL":
        return _fail("invalid bill_type")
    text = wechat_bill(sim.books, day, sim.appid, sim.mch_id)
    if text.count("\n") <= 3:  # the header and the totals only
        return _fail("No Bill Exist")
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


async def books(request: web.Request) -> web.Response:
    return web.json_response(request.app[WECHATPAY].books.books())


def build_app(sim: WechatPaySim) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[WECHATPAY] = sim
    app.router.add_post("/pay/micropay", micropay)
    app.router.add_post("/pay/orderquery", orderquery)
    app.router.add_post("/secapi/pay/reverse", reverse)
    app.router.add_post("/secapi/pay/refund", refund)
    app.router.add_post("/pay/refundquery", refundquery)
    app.router.add_post("/pay/downloadbill", downloadbill)
    app.router.add_get("/books", books)
    return app
