"""Alipay's barcode payments (当面付 条码支付, open API) as a payment provider.

``alipay.trade.pay`` (``scene=bar_code``) charges the scanned code,
``alipay.trade.query`` asks, ``alipay.trade.cancel`` reverses (a paid order is
refunded by Alipay, an open one closed) and ``alipay.trade.refund`` gives part
back, its ``out_request_no`` the refund's own number (asking again is the same
refund). Requests are signed RSA2 with the merchant's private key; an answer is
believed only once Alipay's public key verifies its node (``protocols/alipay.py``).

Options (``[payments.providers.options]``): ``app_id``, the merchant's private
key (``private_key_file`` or ``private_key_env``, default
``POSGW_ALIPAY_PRIVATE_KEY``), Alipay's public key (``alipay_public_key_file``
or ``alipay_public_key_env``), partner mode ``app_auth_token`` (the tenant's
authorisation, ``app_auth_token_file``/``_env``, only with ``partner = true``),
``store_id``, ``terminal_id``, ``subject``, ``url``, ``ca_file``, ``timeout``,
``connect_timeout``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric import rsa

from drivers.credentials import Secret, rsa_private_key, rsa_public_key, secret, tls_contexts
from drivers.errors import StatementUnavailableError
from drivers.payment_provider import ProviderClass
from drivers.provider_http import ProviderHttp
from protocols import alipay as ali
from protocols.micropay import Answer, Reply, Step
from protocols.schema import Fields
from protocols.statements import MAX_STATEMENT

DEFAULT_URL = "https://openapi.alipay.com/gateway.do"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


class AlipayProvider:
    def __init__(
        self,
        name: str,
        *,
        url: str,
        app_id: str,
        private_key: rsa.RSAPrivateKey | None,
        alipay_key: rsa.RSAPublicKey | None,
        http: ProviderHttp,
        app_auth_token: Secret | None = None,
        subject: str = "商品",
        store_id: str = "",
        terminal_id: str = "",
    ) -> None:
        self.name = name
        self.url = url
        self.app_id = app_id
        self._private = private_key
        self._alipay = alipay_key
        self._token = app_auth_token
        self.subject, self.store_id, self.terminal_id = subject, store_id, terminal_id
        self._http = http

    @classmethod
    def from_options(cls, name: str, options: Fields) -> AlipayProvider:
        timeout = options.number("timeout", 5.0, minimum=0.1, maximum=60.0)
        connect = options.number("connect_timeout", 2.0, minimum=0.05, maximum=30.0)
        partner = options.flag("partner", False)
        return cls(
            name,
            url=options.text("url", DEFAULT_URL, pattern=r"https?://[^\s]+"),
            app_id=options.text("app_id", pattern=r"[0-9]{16}"),
            private_key=rsa_private_key(options, "private_key", "POSGW_ALIPAY_PRIVATE_KEY"),
            alipay_key=rsa_public_key(options, "alipay_public_key", "POSGW_ALIPAY_PUBLIC_KEY"),
            app_auth_token=secret(options, "app_auth_token", "POSGW_ALIPAY_APP_AUTH_TOKEN") if partner else None,
            subject=options.text("subject", "商品", max_len=256),
            store_id=options.text("store_id", "", pattern=r"[A-Za-z0-9_-]{0,32}"),
            terminal_id=options.text("terminal_id", "", pattern=r"[A-Za-z0-9_-]{0,32}"),
            http=ProviderHttp(timeout, connect, tls_contexts(options, client_cert=False)[0]),
        )

    async def _ask(self, method: str, biz: dict[str, Any]) -> dict[str, Any] | Reply:
        """The verified answer node, or the reply the flow gets instead (unknown, unreachable)."""
        if self._private is None or self._alipay is None:  # the config check refused this already
            return Reply(Answer.UNREACHABLE, note=f"{method}: no keys")
        token = self._token.value if self._token else ""
        params = ali.signed(ali.request(self.app_id, method, biz, datetime.now(UTC), token), self._private)
        got = await self._http.post(self.url, urlencode(params).encode(), FORM)
        if isinstance(got, Reply):
            return Reply(got.answer, note=f"{method}: {got.note}")
        node, why = ali.open_answer(got, method, self._alipay)
        if node is None:
            return Reply(Answer.UNKNOWN, note=f"{method}: not believed: {why}")
        return node

    async def call(self, step: Step, ref: str, code: str, amount: int) -> Reply:
        order = ali.order_no(ref if step is not Step.REFUND else code)
        if step is Step.PAY:
            biz = {"out_trade_no": order, "scene": "bar_code", "auth_code": code, "subject": self.subject,
                   "total_amount": ali.yuan(amount)}  # fmt: skip
            biz.update({k: v for k, v in (("store_id", self.store_id), ("terminal_id", self.terminal_id)) if v})
            got = await self._ask("alipay.trade.pay", biz)
            return got if isinstance(got, Reply) else _verified(ali.pay_reply(got, order, amount))
        if step is Step.QUERY:
            got = await self._ask("alipay.trade.query", {"out_trade_no": order})
            return got if isinstance(got, Reply) else _verified(ali.query_reply(got, order, amount))
        if step is Step.REVERSE:
            got = await self._ask("alipay.trade.cancel", {"out_trade_no": order})
            return got if isinstance(got, Reply) else _verified(ali.cancel_reply(got, order))
        if step is Step.REFUND:
            biz = {"out_trade_no": order, "refund_amount": ali.yuan(amount), "out_request_no": ali.order_no(ref)}
            got = await self._ask("alipay.trade.refund", biz)
            return got if isinstance(got, Reply) else _verified(ali.refund_reply(got, order))
        raise ValueError(f"no Alipay call for {step}")

    async def statement(self, day: date) -> bytes:
        """The trade bill for a China-time calendar day: the zip Alipay's signed answer points to."""
        method = "alipay.data.dataservice.bill.downloadurl.query"
        got = await self._ask(method, {"bill_type": "trade", "bill_date": day.isoformat()})
        if isinstance(got, Reply):
            raise StatementUnavailableError(f"Alipay's statement for {day}: {got.note}")
        url = got.get("bill_download_url")
        if got.get("code") != "10000" or not isinstance(url, str) or not url.startswith(("https://", "http://")):
            why = f"{got.get('code')} {got.get('sub_code', '')} {got.get('sub_msg', '')}".strip()
            raise StatementUnavailableError(f"Alipay has no statement for {day}: {why}")
        data = await self._http.get(url, MAX_STATEMENT)
        if isinstance(data, Reply):
            raise StatementUnavailableError(f"Alipay's statement for {day} could not be fetched: {data.note}")
        return data

    async def close(self) -> None:
        await self._http.close()


def _verified(reply: Reply) -> Reply:
    return Reply(reply.answer, reply.detail, f"{reply.note} (signature RSA2 verified)")


# mypy checks the provider keeps the payment provider contract (drivers/payment_provider.py).
_CONTRACT: ProviderClass = AlipayProvider
