"""WeChat Pay's payment-code payments (merchant API v2) as a payment provider.

``pay/micropay`` charges the scanned code, ``pay/orderquery`` asks, and
``secapi/pay/reverse`` cancels, with the merchant's API client certificate;
a refund first asks ``pay/refundquery`` whether it was already made (a retry,
or a restart), then ``pay/orderquery`` for the order's total, then
``secapi/pay/refund``. The order number is the payment intent's id
(``protocols/wechatpay.order_no``), the refund number the refund's: asking
again is never a second charge or a second refund. Each answer is believed
only once signed with the API key (``protocols/wechatpay.py``).

Options (``[payments.providers.options]``): ``appid``, ``mch_id``, the API key
(``api_key_file`` or ``api_key_env``, default ``POSGW_WECHATPAY_API_KEY``),
``cert_file`` + ``key_file`` (the API certificate), ``sign_type``
(``HMAC-SHA256`` or ``MD5``), service-provider mode ``sub_mch_id`` (and
``sub_appid``), ``url``, ``ca_file``, ``body``, ``spbill_create_ip``,
``timeout``, ``connect_timeout``.
"""

from __future__ import annotations

from datetime import date

from drivers.credentials import Secret, secret, tls_contexts
from drivers.errors import StatementUnavailableError
from drivers.payment_provider import ProviderClass
from drivers.provider_http import ProviderHttp
from protocols import wechatpay as wx
from protocols.micropay import Answer, Reply, Step
from protocols.schema import Fields
from protocols.statements import MAX_STATEMENT

DEFAULT_URL = "https://api.mch.weixin.qq.com"
XML = "text/xml; charset=utf-8"


class WechatPayProvider:
    def __init__(
        self,
        name: str,
        *,
        url: str,
        appid: str,
        mch_id: str,
        api_key: Secret,
        http: ProviderHttp,
        secure: ProviderHttp,
        sign_type: str = "HMAC-SHA256",
        sub_mch_id: str = "",
        sub_appid: str = "",
        body: str = "商品",
        client_ip: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.appid, self.mch_id, self.sub_mch_id, self.sub_appid = appid, mch_id, sub_mch_id, sub_appid
        self._key = api_key
        self.sign_type = sign_type
        self.body, self.client_ip = body, client_ip
        self._http = http  # server checked
        self._secure = secure  # and the merchant's certificate presented (secapi)

    @classmethod
    def from_options(cls, name: str, options: Fields) -> WechatPayProvider:
        url = options.text("url", DEFAULT_URL, pattern=r"https?://[^\s]+")
        timeout = options.number("timeout", 5.0, minimum=0.1, maximum=60.0)
        connect = options.number("connect_timeout", 2.0, minimum=0.05, maximum=30.0)
        plain, secure = tls_contexts(options, client_cert=True)
        return cls(
            name,
            url=url,
            appid=options.text("appid", pattern=r"wx[0-9a-zA-Z]{1,30}"),
            mch_id=options.text("mch_id", pattern=r"[0-9]{1,32}"),
            sub_mch_id=options.text("sub_mch_id", "", pattern=r"([0-9]{1,32})?"),
            sub_appid=options.text("sub_appid", "", pattern=r"(wx[0-9a-zA-Z]{1,30})?"),
            api_key=secret(options, "api_key", "POSGW_WECHATPAY_API_KEY", min_len=32),
            sign_type=options.text("sign_type", "HMAC-SHA256", choices=wx.SIGN_TYPES),
            body=options.text("body", "商品", max_len=128),
            client_ip=options.text("spbill_create_ip", "127.0.0.1", pattern=r"[0-9a-fA-F.:]{2,45}"),
            http=ProviderHttp(timeout, connect, plain),
            secure=ProviderHttp(timeout, connect, secure),
        )

    def _common(self) -> dict[str, str]:
        return {
            "appid": self.appid,
            "mch_id": self.mch_id,
            "sub_appid": self.sub_appid,
            "sub_mch_id": self.sub_mch_id,  # a tenant's own merchant number, when the mall collects for it
            "nonce_str": wx.nonce(),
        }

    async def _ask(self, path: str, fields: dict[str, str]) -> dict[str, str] | Reply:
        """The believed answer's fields, or the reply the flow gets instead (unknown, unreachable)."""
        request = wx.signed({**self._common(), **fields}, self._key.value, self.sign_type)
        http = self._secure if path.startswith("secapi/") else self._http
        got = await http.post(f"{self.url}/{path}", wx.to_xml(request), XML)
        if isinstance(got, Reply):
            return Reply(got.answer, note=f"{path}: {got.note}")
        try:
            answer = wx.from_xml(got)
        except wx.WechatPayError as err:
            return Reply(Answer.UNKNOWN, note=f"{path}: not believed: {err}")
        if why := wx.believed(answer, self._key.value, self.sign_type, self.appid, self.mch_id):
            return Reply(Answer.UNKNOWN, note=f"{path}: not believed: {why}")
        return answer

    async def call(self, step: Step, ref: str, code: str, amount: int) -> Reply:
        order = wx.order_no(ref if step is not Step.REFUND else code)
        if step is Step.PAY:
            fields = {"body": self.body, "out_trade_no": order, "total_fee": str(amount), "fee_type": "CNY",
                      "spbill_create_ip": self.client_ip, "auth_code": code}  # fmt: skip
            got = await self._ask("pay/micropay", fields)
            return got if isinstance(got, Reply) else _signed(wx.pay_reply(got, order, amount), self.sign_type)
        if step is Step.QUERY:
            got = await self._ask("pay/orderquery", {"out_trade_no": order})
            return got if isinstance(got, Reply) else _signed(wx.query_reply(got, order, amount), self.sign_type)
        if step is Step.REVERSE:
            got = await self._ask("secapi/pay/reverse", {"out_trade_no": order})
            return got if isinstance(got, Reply) else _signed(wx.reverse_reply(got), self.sign_type)
        if step is Step.REFUND:
            return await self._refund(order, wx.order_no(ref), amount)
        raise ValueError(f"no WeChat Pay call for {step}")

    async def _refund(self, order: str, refund_no: str, amount: int) -> Reply:
        asked = await self._ask("pay/refundquery", {"out_refund_no": refund_no})
        if not isinstance(asked, Reply):
            known = wx.refund_query_reply(asked, refund_no)
            if known.answer is not Answer.NOT_FOUND:  # made (or refused) already: never a second refund
                return _signed(known, self.sign_type)
        elif asked.answer is Answer.UNREACHABLE:
            return asked
        order_state = await self._ask("pay/orderquery", {"out_trade_no": order})
        if isinstance(order_state, Reply):
            return order_state
        if order_state.get("result_code") != "SUCCESS" or not order_state.get("total_fee", "").isdigit():
            err = order_state.get("err_code", "no total_fee")
            # No such order: nothing to give back. Anything else (SYSTEMERROR, …): ask again later.
            answer = Answer.FAILED if err == "ORDERNOTEXIST" else Answer.UNKNOWN
            return _signed(Reply(answer, note=f"orderquery: {err}"), self.sign_type)
        fields = {"out_trade_no": order, "out_refund_no": refund_no, "total_fee": order_state["total_fee"],
                  "refund_fee": str(amount), "refund_fee_type": "CNY"}  # fmt: skip
        got = await self._ask("secapi/pay/refund", fields)
        return got if isinstance(got, Reply) else _signed(wx.refund_reply(got, refund_no, amount), self.sign_type)

    async def statement(self, day: date) -> bytes:
        """``pay/downloadbill`` (all orders) for a China-time calendar day: the CSV as WeChat Pay sends it.

        Not signed by WeChat Pay (its documented form): the TLS connection to the pinned host vouches for it."""
        fields = {"bill_date": f"{day:%Y%m%d}", "bill_type": "ALL"}
        request = wx.signed({**self._common(), **fields}, self._key.value, self.sign_type)
        got = await self._http.post(f"{self.url}/pay/downloadbill", wx.to_xml(request), XML, max_bytes=MAX_STATEMENT)
        if isinstance(got, Reply):
            raise StatementUnavailableError(f"WeChat Pay's statement for {day}: {got.note}")
        if got.lstrip().startswith(b"<xml"):
            try:
                why = wx.from_xml(got).get("return_msg", "refused")
            except wx.WechatPayError as err:
                why = str(err)
            raise StatementUnavailableError(f"WeChat Pay has no statement for {day}: {why}")
        return got

    async def close(self) -> None:
        await self._http.close()
        await self._secure.close()


def _signed(reply: Reply, sign_type: str) -> Reply:
    """The reply with its history line saying the answer's signature checked."""
    return Reply(reply.answer, reply.detail, f"{reply.note} (signature {sign_type} verified)")


# mypy checks the provider keeps the payment provider contract (drivers/payment_provider.py).
_CONTRACT: ProviderClass = WechatPayProvider
