"""Alipay's open API for face-to-face barcode payments (当面付 条码支付), sans I/O.

A request is form fields posted to the gateway: the common parameters
(``app_id``, ``method``, ``format``, ``charset``, ``sign_type=RSA2``,
``timestamp`` in China time, ``version``, optional ``app_auth_token``) and the
call's own fields as one JSON string, ``biz_content``. It is signed ``RSA2``
(SHA256withRSA, PKCS#1 v1.5) with the merchant's private key over the
non-empty parameters but ``sign``, sorted by name and joined ``k=v&…``.

The answer is JSON: one node named after the method
(``alipay_trade_pay_response``, or ``error_response``) and ``sign``, Alipay's
RSA2 signature over the node's *exact bytes* as sent. The node is believed
only once that signature checks with Alipay's public key (pinned in the
config); anything else is *unknown* and the flow asks again.

Amounts are yuan with two decimals on the wire and fen everywhere else;
:func:`yuan` and :func:`fen` convert exactly, never through a float.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from protocols import money
from protocols.business_day import CHINA
from protocols.errors import MoneyError, ProtocolError
from protocols.micropay import Answer, Reply
from protocols.untrusted_json import read_json

MAX_ANSWER = 64 * 1024
_PAYER = re.compile(r"[0-9]{16}")  # buyer_user_id: 2088…, the buyer's stable id at Alipay
_TXN = re.compile(r"[0-9A-Za-z_-]{1,64}")


class AlipayError(ProtocolError):
    """An answer that is not Alipay's protocol: not JSON, no node, not an object, too big."""

    code = "alipay-protocol"


def yuan(amount: int) -> str:
    """Fen as Alipay's yuan with two decimals (``protocols/money.yuan``): 12345 -> "123.45"."""
    try:
        return money.yuan(amount)
    except MoneyError as err:
        raise AlipayError(str(err)) from None


def fen(text: str) -> int:
    """Alipay's yuan ("123.45", "9.5", "10") as fen, exactly (``protocols/money.fen_from_yuan``)."""
    try:
        return money.fen_from_yuan(text)
    except MoneyError as err:
        raise AlipayError(str(err)) from None


def order_no(ref: str) -> str:
    """The merchant's order number for a payment intent (the same one on every retry)."""
    number = ref.replace("-", "")
    if not re.fullmatch(r"[0-9A-Za-z_]{1,64}", number):
        raise AlipayError(f"cannot make an Alipay order number from {ref!r}")
    return number


def china_time(now: datetime) -> str:
    """``timestamp``: ``yyyy-MM-dd HH:mm:ss`` in China time."""
    return now.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def request(
    app_id: str, method: str, biz: Mapping[str, Any], now: datetime, app_auth_token: str = ""
) -> dict[str, str]:
    """The common parameters of one call, ``biz_content`` compact JSON; ``sign`` still to add."""
    params = {
        "app_id": app_id,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": china_time(now if now.tzinfo else now.replace(tzinfo=UTC)),
        "version": "1.0",
        "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
    }
    if app_auth_token:
        params["app_auth_token"] = app_auth_token  # partner mode: the tenant's authorisation
    return params


def sign_content(params: Mapping[str, str]) -> str:
    """The documented string to sign: non-empty parameters but ``sign``, sorted by name, ``k=v&…``."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")


def sign_rsa2(content: str, key: rsa.RSAPrivateKey) -> str:
    return base64.b64encode(key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def verify_rsa2(content: str, signature: str, key: rsa.RSAPublicKey) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, content.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def signed(params: Mapping[str, str], key: rsa.RSAPrivateKey) -> dict[str, str]:
    return {**params, "sign": sign_rsa2(sign_content(params), key)}


def node_name(method: str) -> str:
    return method.replace(".", "_") + "_response"


def _skip(text: str, i: int) -> int:
    while text[i : i + 1] in (" ", "\t", "\r", "\n"):
        i += 1
    return i


def _expect(text: str, i: int, char: str) -> int:
    i = _skip(text, i)
    if text[i : i + 1] != char:
        raise AlipayError("the answer is not a JSON object")
    return _skip(text, i + 1)


def members(text: str) -> dict[str, tuple[int, int]]:
    """Where each top-level member's value lies in a JSON object's text: ``name -> (start, end)``.

    The signature covers the node's bytes exactly as sent, so they are cut from the text, not re-encoded."""
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    i = _expect(text, 0, "{")
    if text[i : i + 1] == "}":
        return spans
    while True:
        try:
            name, i = decoder.raw_decode(text, i)
            start = i = _expect(text, i, ":")
            _, i = decoder.raw_decode(text, i)
        except (ValueError, RecursionError):
            raise AlipayError("the answer is not a JSON object") from None
        if not isinstance(name, str):
            raise AlipayError("the answer is not a JSON object")
        spans[name] = (start, i)
        i = _skip(text, i)
        if text[i : i + 1] == "}":
            return spans
        i = _expect(text, i, ",")


def open_answer(data: bytes, method: str, key: rsa.RSAPublicKey) -> tuple[dict[str, Any] | None, str]:
    """An answer's node if Alipay's signature over its exact bytes checks; else ``None`` and why."""
    if len(data) > MAX_ANSWER:
        return None, f"an answer of {len(data)} bytes"
    try:
        # Duplicate keys, depth, surrogates: refused before anything is looked at.
        whole = read_json(data, "Alipay's answer", max_bytes=MAX_ANSWER)
        text = data.decode()
        spans = members(text)
    except (ProtocolError, UnicodeDecodeError) as err:
        return None, f"not Alipay's answer: {err}"[:200]
    if not isinstance(whole, dict):
        return None, "not Alipay's answer: not an object"
    name = node_name(method) if node_name(method) in spans else "error_response"
    node, sig = whole.get(name), whole.get("sign")
    if not isinstance(node, dict) or name not in spans:
        return None, f"no {node_name(method)} in the answer"
    if not isinstance(sig, str) or not sig:
        return None, "the answer is not signed"
    start, end = spans[name]
    if not verify_rsa2(text[start:end], sig, key):
        return None, "signature does not verify"
    return node, ""


# Final refusals of a payment (sub_code of 40004): nothing was charged.
REFUSALS = {
    "ACQ.PAYMENT_AUTH_CODE_INVALID": "付款码无效 / not a valid payment code: ask the customer to refresh it",
    "ACQ.BUYER_BALANCE_NOT_ENOUGH": "余额不足 / insufficient balance: ask for another way to pay",
    "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH": "银行卡余额不足 / the bank card has too little: ask for another way",
    "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR": "超出当日限额 / over the customer's daily limit",
    "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR": "超出当月限额 / over the customer's monthly limit",
    "ACQ.ERROR_BALANCE_PAYMENT_DISABLE": "余额支付未开通 / balance payment is off for this customer",
    "ACQ.BUYER_ENABLE_STATUS_FORBID": "买家状态非法 / the customer's account cannot pay",
    "ACQ.BUYER_SELLER_EQUAL": "买卖家不能相同 / the buyer is the merchant's own account",
    "ACQ.TRADE_HAS_CLOSE": "交易已关闭 / the order is closed",
    "ACQ.TOTAL_FEE_EXCEED": "金额超限 / the amount is over Alipay's limit",
    "ACQ.PAYMENT_FAIL": "支付失败 / Alipay refused the payment: ask for another way to pay",
    "ACQ.PULL_MOBILE_CASHIER_FAIL": "唤起收银台失败 / the customer did not confirm: ask them to scan again",
    "ACQ.PAYMENT_REQUEST_HAS_RISK": "支付有风险 / Alipay refused the payment for risk: ask for another way",
    "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE": "没有可用支付工具 / nothing in the account can pay",
    "ACQ.USER_FACE_PAYMENT_SWITCH_OFF": "用户当面付付款开关关闭 / barcode payment is off for this customer",
    "ACQ.INVALID_PARAMETER": "参数无效 / Alipay refused the request's fields: call store IT",
    "ACQ.ACCESS_FORBIDDEN": "无权限使用接口 / this merchant may not take barcode payments: call store IT",
    "ACQ.SELLER_BEEN_BLOCKED": "商家账号被冻结 / the merchant's account is blocked: call store IT",
    "ACQ.EXIST_FORBIDDEN_WORD": "订单信息中包含违禁词 / the order text was refused: call store IT",
}
# Codes (besides 40004 ones above) that refuse the request outright: it was never processed.
REQUEST_REFUSED = {
    "40001": "缺少必选参数 / Alipay refused the request's fields: call store IT",
    "40002": "非法的参数 / Alipay refused the request (key or fields): call store IT",
    "40006": "权限不足 / this app may not call Alipay's barcode payment: call store IT",
    "20001": "授权权限不足 / the tenant's authorisation (app_auth_token) is not valid: call store IT",
}
_QUERY_STATES = {
    "TRADE_SUCCESS": Answer.SUCCESS,
    "TRADE_FINISHED": Answer.SUCCESS,
    "WAIT_BUYER_PAY": Answer.USER_PAYING,
    "TRADE_CLOSED": Answer.FAILED,
}


def _checks(node: Mapping[str, Any], out_trade_no: str, amount: int) -> str | None:
    if node.get("out_trade_no") != out_trade_no:
        return f"the answer is for order {str(node.get('out_trade_no'))[:40]!r}, not ours"
    try:
        total = fen(str(node.get("total_amount", "")))
    except AlipayError:
        return "the answer has no total_amount"
    if total != amount:
        return f"the answer's total_amount {yuan(total)} is not the {yuan(amount)} asked"
    return None


def _paid(node: Mapping[str, Any], note: str) -> Reply:
    detail = {}
    if _PAYER.fullmatch(payer := str(node.get("buyer_user_id", ""))):
        detail["payer"] = payer
    if _TXN.fullmatch(txn := str(node.get("trade_no", ""))):
        detail["provider_txn"] = txn
    return Reply(Answer.SUCCESS, detail, note)


def _code(node: Mapping[str, Any]) -> tuple[str, str]:
    return str(node.get("code", "")), str(node.get("sub_code", ""))


def pay_reply(node: Mapping[str, Any], out_trade_no: str, amount: int) -> Reply:
    """``alipay.trade.pay``'s answer, already opened (see :func:`open_answer`)."""
    code, sub = _code(node)
    note = f"trade.pay: {code} {sub}".strip()
    if code == "10000":
        if problem := _checks(node, out_trade_no, amount):
            return Reply(Answer.UNKNOWN, note=f"trade.pay: not believed: {problem}")
        return _paid(node, note)
    if code == "10003":
        return Reply(Answer.USER_PAYING, note=note)
    if code == "40004" and sub in REFUSALS:
        return Reply(Answer.FAILED, {"reason": REFUSALS[sub]}, note)
    if code in REQUEST_REFUSED:
        return Reply(Answer.FAILED, {"reason": REQUEST_REFUSED[code]}, note)
    # 20000, ACQ.SYSTEM_ERROR, ACQ.TRADE_HAS_SUCCESS, ACQ.CONTEXT_INCONSISTENT, a code we do not know: ask. A signed
    # answer: Alipay has the request.
    return Reply(Answer.PROVIDER_ERROR, note=note)


def query_reply(node: Mapping[str, Any], out_trade_no: str, amount: int) -> Reply:
    """``alipay.trade.query``'s answer."""
    code, sub = _code(node)
    if code != "10000":
        answer = Answer.NOT_FOUND if sub == "ACQ.TRADE_NOT_EXIST" else Answer.UNKNOWN
        return Reply(answer, note=f"trade.query: {code} {sub}".strip())
    status = str(node.get("trade_status", ""))
    answer = _QUERY_STATES.get(status, Answer.UNKNOWN)
    note = f"trade.query: {status or '(no trade_status)'}"
    if answer is Answer.SUCCESS:
        if problem := _checks(node, out_trade_no, amount):
            return Reply(Answer.UNKNOWN, note=f"trade.query: not believed: {problem}")
        return _paid(node, note)
    if answer is Answer.FAILED:
        return Reply(answer, {"reason": "交易已关闭 / the order is closed"}, note)
    return Reply(answer, note=note)


def cancel_reply(node: Mapping[str, Any], out_trade_no: str) -> Reply:
    """``alipay.trade.cancel``'s answer: done unless Alipay asks to be asked again (``retry_flag=Y``)."""
    code, sub = _code(node)
    if code == "10000":
        if node.get("out_trade_no") != out_trade_no:
            return Reply(Answer.UNKNOWN, note="trade.cancel: not believed: another order")
        if node.get("retry_flag") == "Y":
            return Reply(Answer.UNKNOWN, note="trade.cancel: retry_flag Y")
        return Reply(Answer.SUCCESS, note=f"trade.cancel: {node.get('action') or 'nothing to do'}")
    if sub == "ACQ.TRADE_NOT_EXIST":
        return Reply(Answer.SUCCESS, note="trade.cancel: ACQ.TRADE_NOT_EXIST (nothing charged)")
    if code == "40004" and sub != "ACQ.SYSTEM_ERROR":
        return Reply(Answer.FAILED, note=f"trade.cancel: {sub}")
    return Reply(Answer.UNKNOWN, note=f"trade.cancel: {code} {sub}".strip())


def refund_reply(node: Mapping[str, Any], out_trade_no: str) -> Reply:
    """``alipay.trade.refund``'s answer; the same ``out_request_no`` again is the same refund."""
    code, sub = _code(node)
    if code == "10000":
        if node.get("out_trade_no") != out_trade_no:
            return Reply(Answer.UNKNOWN, note="trade.refund: not believed: another order")
        return Reply(Answer.SUCCESS, note=f"trade.refund: fund_change {node.get('fund_change', '?')}")
    if code == "40004" and sub not in ("ACQ.SYSTEM_ERROR", ""):
        return Reply(Answer.FAILED, note=f"trade.refund: {sub}")
    return Reply(Answer.UNKNOWN, note=f"trade.refund: {code} {sub}".strip())
