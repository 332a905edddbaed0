"""WeChat Pay's merchant API v2 for payment-code payments (付款码支付), sans I/O.

Requests and answers are flat XML documents (``<xml><k>v</k>…</xml>``) signed
with the merchant's API key: the non-empty fields but ``sign`` sorted by name,
joined ``k=v&…``, then ``&key=<API key>``, hashed with MD5 or HMAC-SHA256
(keyed with the API key), upper-case hex (``sign``). Every answer that says
``return_code=SUCCESS`` is signed the same way and is believed only once its
signature checks; an answer that does not check, or that speaks of another
order or another amount, is *unknown*: the flow asks again, never guesses.

The answers are mapped onto the micropay machine (``protocols/micropay.py``)
as ``docs/payments/wechatpay.md`` tabulates; a code this module does not know
is unknown, so a new error code can only ever make the till ask again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from xml.parsers import expat

from protocols.errors import ProtocolError
from protocols.micropay import Answer, Reply

MAX_XML = 64 * 1024
SIGN_TYPES = ("MD5", "HMAC-SHA256")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_PAYER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TXN = re.compile(r"[0-9A-Za-z_-]{1,64}")
_UNSENDABLE = re.compile(r"[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]")


class WechatPayError(ProtocolError):
    """An answer that is not WeChat Pay's protocol: not XML, not flat, entities, too big."""

    code = "wechatpay-protocol"


def order_no(ref: str) -> str:
    """The merchant's order number for a payment intent: its id without hyphens (32 characters, the limit).

    The same intent always gives the same number, so a retry after a crash asks about the same order."""
    number = ref.replace("-", "")
    if not re.fullmatch(r"[0-9A-Za-z]{6,32}", number):
        raise WechatPayError(f"cannot make a WeChat Pay order number from {ref!r}")
    return number


def nonce() -> str:
    return secrets.token_hex(16)


def string_to_sign(params: Mapping[str, str], key: str) -> str:
    """The documented signing string: non-empty fields but ``sign``, by name, then the API key."""
    pairs = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")
    return f"{pairs}&key={key}"


def sign(params: Mapping[str, str], key: str, sign_type: str = "HMAC-SHA256") -> str:
    text = string_to_sign(params, key).encode()
    if sign_type == "MD5":
        return hashlib.md5(text, usedforsecurity=False).hexdigest().upper()  # the API's, not ours to choose
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode(), text, hashlib.sha256).hexdigest().upper()
    raise WechatPayError(f"unknown sign_type {sign_type!r} (MD5 or HMAC-SHA256)")


def signed(params: Mapping[str, str], key: str, sign_type: str = "HMAC-SHA256") -> dict[str, str]:
    """``params`` with ``sign_type`` (unless MD5, the default) and ``sign`` added."""
    out = {k: v for k, v in params.items() if v != ""}
    if sign_type != "MD5":
        out["sign_type"] = sign_type
    out["sign"] = sign(out, key, sign_type)
    return out


def verify(params: Mapping[str, str], key: str, sign_type: str = "HMAC-SHA256") -> bool:
    """Whether an answer's ``sign`` is the API key's over its other fields (constant time)."""
    given = params.get("sign", "")
    try:
        expected = sign(params, key, params.get("sign_type") or sign_type)
    except WechatPayError:
        return False
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def to_xml(params: Mapping[str, str]) -> bytes:
    """A flat ``<xml>`` document; every value in CDATA (a value holding ``]]>`` is split, as XML allows)."""
    parts = ["<xml>"]
    for name, value in params.items():
        if not _NAME.fullmatch(name):
            raise WechatPayError(f"not a field name: {name!r}")
        if _UNSENDABLE.search(value):  # XML would drop or rewrite them, and the signature would not match
            raise WechatPayError(f"the field {name} holds a control character XML cannot carry as is")
        body = value.replace("]]>", "]]]]><![CDATA[>")
        parts.append(f"<{name}><![CDATA[{body}]]></{name}>")
    parts.append("</xml>")
    return "".join(parts).encode()


def from_xml(data: bytes) -> dict[str, str]:
    """A flat ``<xml>`` document's fields. No DTD, no entities (XXE, billion laughs), no nesting, no repeats."""
    if len(data) > MAX_XML:
        raise WechatPayError(f"an answer of {len(data)} bytes (at most {MAX_XML})")
    fields: dict[str, str] = {}
    path: list[str] = []
    text: list[str] = []

    def refuse(*_: object) -> int:
        raise WechatPayError("a DTD or entity declaration in the answer (refused: never expanded)")

    def start(name: str, attrs: dict[str, str]) -> None:
        if len(path) == 0 and name != "xml":
            raise WechatPayError(f"the answer's root is <{name}>, not <xml>")
        if len(path) >= 2:
            raise WechatPayError(f"a nested element <{name}> in the answer")
        if len(path) == 1 and (name in fields or not _NAME.fullmatch(name)):
            raise WechatPayError(f"the field <{name}> is repeated or not a field name")
        path.append(name)
        text.clear()

    def end(name: str) -> None:
        path.pop()
        if len(path) == 1:
            fields[name] = "".join(text)
        text.clear()

    def chars(data: str) -> None:
        if len(path) == 1 and data.strip():
            raise WechatPayError("text outside a field in the answer")
        text.append(data)

    parser = expat.ParserCreate("UTF-8")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except expat.ExpatError as err:
        raise WechatPayError(f"the answer is not XML: {err}") from None
    return fields


# Final refusals of a payment: nothing was charged. (Chinese for the customer, English for the cashier.)
REFUSALS = {
    "AUTHCODEEXPIRE": "付款码已过期 / the payment code has expired: ask the customer to refresh it",
    "NOTENOUGH": "余额不足 / insufficient balance: ask for another card or way to pay",
    "NOTSUPORTCARD": "不支持卡类型 / the customer's card type is not accepted: ask for another way to pay",
    "ORDERCLOSED": "订单已关闭 / the order is closed",
    "ORDERREVERSED": "订单已撤销 / the order was cancelled",
    "AUTH_CODE_ERROR": "付款码参数错误 / not a valid payment code: ask the customer to show it again",
    "AUTH_CODE_INVALID": "付款码检验错误 / not a valid payment code: ask the customer to show it again",
    "BUYER_MISMATCH": "支付帐号错误 / a different WeChat account than the order's",
    "PARAM_ERROR": "参数错误 / WeChat Pay refused the request's fields: call store IT",
    "NOAUTH": "商户无此权限 / this merchant may not take payment-code payments: call store IT",
    "INVALID_REQUEST": "无效请求 / WeChat Pay refused the request: call store IT",
    "TRADE_ERROR": "交易错误 / the customer's account is restricted: ask for another way to pay",
    "SIGNERROR": "签名错误 / WeChat Pay refused the till's signature: call store IT",
    "LACK_PARAMS": "缺少参数 / WeChat Pay refused the request's fields: call store IT",
    "XML_FORMAT_ERROR": "XML格式错误 / WeChat Pay refused the request's format: call store IT",
    "APPID_NOT_EXIST": "APPID不存在 / the configured appid is wrong: call store IT",
    "MCHID_NOT_EXIST": "MCHID不存在 / the configured mch_id is wrong: call store IT",
    "APPID_MCHID_NOT_MATCH": "appid和mch_id不匹配 / appid and mch_id do not match: call store IT",
}
# Unclear: the money may be moving or moved. Asked again (query), and reversed past the deadline.
UNCLEAR = ("SYSTEMERROR", "BANKERROR", "ORDERPAID", "OUT_TRADE_NO_USED", "FREQUENCY_LIMITED")
_QUERY_STATES = {
    "SUCCESS": Answer.SUCCESS,
    "REFUND": Answer.SUCCESS,  # paid, and part of it since refunded
    "USERPAYING": Answer.USER_PAYING,
    "NOTPAY": Answer.USER_PAYING,
    "ACCEPT": Answer.USER_PAYING,
    "CLOSED": Answer.FAILED,
    "REVOKED": Answer.FAILED,
    "PAYERROR": Answer.FAILED,
}


def believed(params: Mapping[str, str], key: str, sign_type: str, appid: str, mch_id: str) -> str | None:
    """Why an answer cannot be believed (``None``: it can): not SUCCESS, unsigned, another merchant's."""
    if params.get("return_code") != "SUCCESS":
        # Never signed: anyone on the path could have written it, so it says nothing about the money.
        return f"return_code {params.get('return_code', '(none)')}: {params.get('return_msg', '')}"[:200]
    if not verify(params, key, sign_type):
        return "signature does not verify"
    if params.get("appid", appid) != appid or params.get("mch_id", mch_id) != mch_id:
        return "the answer names another merchant"
    return None


def _order_checks(params: Mapping[str, str], out_trade_no: str, amount: int) -> str | None:
    if params.get("out_trade_no") != out_trade_no:
        return f"the answer is for order {params.get('out_trade_no', '(none)')!r}, not ours"
    if params.get("total_fee") != str(amount):
        return f"the answer's total_fee {params.get('total_fee', '(none)')!r} is not the {amount} fen asked"
    return None


def _paid(params: Mapping[str, str], note: str) -> Reply:
    detail = {}
    if _PAYER.fullmatch(openid := params.get("openid", "")):
        detail["payer"] = openid  # stable per appid: the ledger may map it to a member
    if _TXN.fullmatch(txn := params.get("transaction_id", "")):
        detail["provider_txn"] = txn
    return Reply(Answer.SUCCESS, detail, note)


def pay_reply(params: Mapping[str, str], out_trade_no: str, amount: int) -> Reply:
    """``pay/micropay``'s answer, already believed (see :func:`believed`)."""
    if params.get("result_code") == "SUCCESS":
        if problem := _order_checks(params, out_trade_no, amount):
            return Reply(Answer.UNKNOWN, note=f"micropay: not believed: {problem}")
        return _paid(params, "micropay: SUCCESS")
    return _refusal("micropay", params)


def _refusal(call: str, params: Mapping[str, str]) -> Reply:
    err = params.get("err_code", "")
    note = f"{call}: {err or 'FAIL'}"
    if err == "USERPAYING":
        return Reply(Answer.USER_PAYING, note=note)
    if err in REFUSALS:
        return Reply(Answer.FAILED, {"reason": REFUSALS[err]}, note)
    # SYSTEMERROR, BANKERROR, ORDERPAID, or a code we do not know: a signed answer, so WeChat Pay has the order.
    return Reply(Answer.PROVIDER_ERROR, note=note)


def query_reply(params: Mapping[str, str], out_trade_no: str, amount: int) -> Reply:
    """``pay/orderquery``'s answer."""
    if params.get("result_code") != "SUCCESS":
        err = params.get("err_code", "")
        return Reply(Answer.NOT_FOUND if err == "ORDERNOTEXIST" else Answer.UNKNOWN, note=f"orderquery: {err}")
    state = params.get("trade_state", "")
    answer = _QUERY_STATES.get(state, Answer.UNKNOWN)
    note = f"orderquery: {state or '(no trade_state)'}"
    if answer is Answer.SUCCESS:
        if problem := _order_checks(params, out_trade_no, amount):
            return Reply(Answer.UNKNOWN, note=f"orderquery: not believed: {problem}")
        return _paid(params, note)
    if answer is Answer.FAILED:
        return Reply(answer, {"reason": f"订单{state} / the order is {state.lower()}"}, note)
    return Reply(answer, note=note)


def reverse_reply(params: Mapping[str, str]) -> Reply:
    """``secapi/pay/reverse``'s answer: SUCCESS once nothing is (or stays) charged; ``recall=Y`` asks again."""
    if params.get("result_code") == "SUCCESS":
        if params.get("recall") == "Y":
            return Reply(Answer.UNKNOWN, note="reverse: recall")
        return Reply(Answer.SUCCESS, note="reverse: SUCCESS")
    err = params.get("err_code", "")
    if err == "ORDERNOTEXIST":
        return Reply(Answer.SUCCESS, note="reverse: ORDERNOTEXIST (nothing charged)")
    if err == "REVERSE_EXPIRE":
        return Reply(Answer.FAILED, note="reverse: REVERSE_EXPIRE (refund it instead)")
    return Reply(Answer.UNKNOWN, note=f"reverse: {err or 'FAIL'}")


REFUND_UNCLEAR = ("SYSTEMERROR", "BIZERR_NEED_RETRY", "FREQUENCY_LIMITED")


def refund_reply(params: Mapping[str, str], out_refund_no: str, amount: int) -> Reply:
    """``secapi/pay/refund``'s answer; the same ``out_refund_no`` again is the same refund."""
    if params.get("result_code") == "SUCCESS":
        if params.get("out_refund_no") != out_refund_no or params.get("refund_fee") != str(amount):
            return Reply(Answer.UNKNOWN, note="refund: not believed: another refund or amount")
        detail = {"provider_txn": txn} if _TXN.fullmatch(txn := params.get("refund_id", "")) else {}
        return Reply(Answer.SUCCESS, detail, "refund: SUCCESS")
    err = params.get("err_code", "")
    answer = Answer.UNKNOWN if err in REFUND_UNCLEAR or not err else Answer.FAILED
    return Reply(answer, note=f"refund: {err or 'FAIL'}")


def refund_query_reply(params: Mapping[str, str], out_refund_no: str) -> Reply:
    """``pay/refundquery``'s answer for one refund: SUCCESS, refused (CHANGE, REFUNDCLOSE) or still going."""
    if params.get("result_code") != "SUCCESS":
        err = params.get("err_code", "")
        return Reply(Answer.NOT_FOUND if err == "REFUNDNOTEXIST" else Answer.UNKNOWN, note=f"refundquery: {err}")
    count = int(params.get("refund_count", "0")) if params.get("refund_count", "0").isdigit() else 0
    for n in range(min(count, 50)):
        if params.get(f"out_refund_no_{n}") == out_refund_no:
            status = params.get(f"refund_status_{n}", "")
            answer = {"SUCCESS": Answer.SUCCESS, "CHANGE": Answer.FAILED, "REFUNDCLOSE": Answer.FAILED}
            return Reply(answer.get(status, Answer.UNKNOWN), note=f"refundquery: {status}")
    return Reply(Answer.NOT_FOUND, note="refundquery: not listed")
