"""Alipay open API: exact yuan, the string to sign, RSA2 both ways, the signed node's exact bytes, every code."""

import json
from datetime import UTC, datetime
from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from protocols import alipay as ali
from protocols.micropay import Answer

ORDER = "0193a1b2c3d47e5f8a9b0c1d2e3f4a5b"


@cache
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """(the merchant's, Alipay's) key pairs."""
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@pytest.mark.parametrize(
    ("amount", "text"), [(0, "0.00"), (1, "0.01"), (10, "0.10"), (12345, "123.45"), (10_000_000_000, "100000000.00")]
)
def test_fen_and_yuan_convert_exactly_both_ways(amount: int, text: str) -> None:
    assert ali.yuan(amount) == text
    assert ali.fen(text) == amount


@pytest.mark.parametrize("text", ["9.5", "10", "0.1"])
def test_alipay_s_shorter_amounts_are_read_exactly(text: str) -> None:
    assert ali.fen(text) == {"9.5": 950, "10": 1000, "0.1": 10}[text]


@pytest.mark.parametrize("text", ["", "1.234", "-1.00", "1e3", "01.00", " 1.00", "NaN", "1,00", "１.00"])
def test_anything_else_is_not_an_amount(text: str) -> None:
    with pytest.raises(ali.AlipayError):
        ali.fen(text)


def test_the_string_to_sign_is_the_sorted_non_empty_parameters_but_sign() -> None:
    now = datetime(2026, 12, 1, 12, 26, 31, tzinfo=UTC)
    params = ali.request(
        "2014072300007148",
        "alipay.trade.pay",
        {"out_trade_no": "20150320010101001", "scene": "bar_code", "auth_code": "28763443825664394", "subject": "咖啡"},
        now,
    )
    assert ali.sign_content({**params, "sign": "x", "notify_url": ""}) == (
        "app_id=2014072300007148"
        '&biz_content={"out_trade_no":"20150320010101001","scene":"bar_code","auth_code":"28763443825664394",'
        '"subject":"咖啡"}'
        "&charset=utf-8&format=JSON&method=alipay.trade.pay&sign_type=RSA2"
        "&timestamp=2026-12-01 20:26:31&version=1.0"  # China time, UTC+8
    )
    partner = ali.request("2014072300007148", "alipay.trade.pay", {}, now, app_auth_token="201510BB0c409dd5")
    assert "&app_auth_token=201510BB0c409dd5&" in "&" + ali.sign_content(partner) + "&"


def test_rsa2_signs_and_verifies_and_refuses_any_change() -> None:
    merchant, _ = keys()
    signed = ali.signed({"a": "1", "b": "中"}, merchant)
    content = ali.sign_content(signed)
    assert ali.verify_rsa2(content, signed["sign"], merchant.public_key())
    assert not ali.verify_rsa2(content + "x", signed["sign"], merchant.public_key())
    assert not ali.verify_rsa2(content, "not base64!", merchant.public_key())
    assert not ali.verify_rsa2(content, signed["sign"], keys()[1].public_key())


def answer(
    method: str, node: dict[str, object], *, spaced: bool = False, key: rsa.RSAPrivateKey | None = None
) -> bytes:
    """Alipay's answer as sent: the node's own bytes signed, ``sign`` beside it."""
    body = json.dumps(node, ensure_ascii=False, separators=(", ", ": ") if spaced else (",", ":"))
    sig = ali.sign_rsa2(body, key or keys()[1])
    return f'{{"{ali.node_name(method)}":{body},"sign":"{sig}"}}'.encode()


def test_the_node_is_verified_over_its_exact_bytes_however_it_is_spaced() -> None:
    pub = keys()[1].public_key()
    for spaced in (False, True):
        node, why = ali.open_answer(
            answer("alipay.trade.pay", {"code": "10000", "msg": "Success"}, spaced=spaced), "alipay.trade.pay", pub
        )
        assert why == ""
        assert node == {"code": "10000", "msg": "Success"}


@pytest.mark.parametrize(
    "case", ["flipped", "unsigned", "merchant-key", "html", "other-node", "duplicate", "not-object", "huge"]
)
def test_an_answer_that_does_not_verify_is_not_opened(case: str) -> None:
    pub = keys()[1].public_key()
    good = answer("alipay.trade.pay", {"code": "10000", "msg": "Success"})
    data = {
        "flipped": good.replace(b'"10000"', b'"10003"'),
        "unsigned": b'{"alipay_trade_pay_response":{"code":"10000"}}',
        "merchant-key": answer("alipay.trade.pay", {"code": "10000"}, key=keys()[0]),
        "html": b"<html>502 Bad Gateway</html>",
        "other-node": answer("alipay.trade.query", {"code": "10000"}),
        "duplicate": good[:-1] + b',"alipay_trade_pay_response":{"code":"40004"}}',
        "not-object": b'["alipay_trade_pay_response"]',
        "huge": b'{"a":"' + b"x" * 70_000 + b'"}',
    }[case]
    node, why = ali.open_answer(data, "alipay.trade.pay", pub)
    assert node is None
    assert why


def test_an_error_response_node_is_opened_too() -> None:
    data = answer("error", {"code": "40002", "sub_code": "isv.invalid-signature"})  # named "error_response"
    node, why = ali.open_answer(data, "alipay.trade.pay", keys()[1].public_key())
    assert why == ""
    assert node is not None
    assert node["code"] == "40002"


PAID = {
    "code": "10000",
    "out_trade_no": ORDER,
    "total_amount": "12.34",
    "trade_no": "2013112011001004330000121536",
    "buyer_user_id": "2088102122524333",
}


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (PAID, Answer.SUCCESS),
        ({**PAID, "total_amount": "12.35"}, Answer.UNKNOWN),
        ({**PAID, "out_trade_no": "not-ours"}, Answer.UNKNOWN),
        ({"code": "10003"}, Answer.USER_PAYING),
        ({"code": "20000", "sub_code": "ACQ.SYSTEM_ERROR"}, Answer.PROVIDER_ERROR),
        ({"code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"}, Answer.PROVIDER_ERROR),
        ({"code": "40004", "sub_code": "ACQ.TRADE_HAS_SUCCESS"}, Answer.PROVIDER_ERROR),
        ({"code": "40004", "sub_code": "ACQ.SOMETHING_NEW"}, Answer.PROVIDER_ERROR),
        ({"code": "40004", "sub_code": "ACQ.PAYMENT_AUTH_CODE_INVALID"}, Answer.FAILED),
        ({"code": "40004", "sub_code": "ACQ.BUYER_BALANCE_NOT_ENOUGH"}, Answer.FAILED),
        ({"code": "40002", "sub_code": "isv.invalid-signature"}, Answer.FAILED),
    ],
)
def test_every_documented_pay_answer_maps_onto_the_flow(node: dict[str, str], expected: Answer) -> None:
    reply = ali.pay_reply(node, ORDER, 1234)
    assert reply.answer is expected
    assert reply.note.startswith("trade.pay")
    if expected is Answer.SUCCESS:
        assert reply.detail == {"payer": "2088102122524333", "provider_txn": "2013112011001004330000121536"}
    if expected is Answer.FAILED:
        assert " / " in reply.detail["reason"]


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({**PAID, "trade_status": "TRADE_SUCCESS"}, Answer.SUCCESS),
        ({**PAID, "trade_status": "TRADE_FINISHED"}, Answer.SUCCESS),
        ({**PAID, "trade_status": "WAIT_BUYER_PAY"}, Answer.USER_PAYING),
        ({**PAID, "trade_status": "TRADE_CLOSED"}, Answer.FAILED),
        ({**PAID, "trade_status": "TRADE_SUCCESS", "total_amount": "0.01"}, Answer.UNKNOWN),
        ({"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST"}, Answer.NOT_FOUND),
        ({"code": "20000"}, Answer.UNKNOWN),
    ],
)
def test_query_answers(node: dict[str, str], expected: Answer) -> None:
    assert ali.query_reply(node, ORDER, 1234).answer is expected


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"code": "10000", "out_trade_no": ORDER, "retry_flag": "N", "action": "close"}, Answer.SUCCESS),
        ({"code": "10000", "out_trade_no": ORDER, "retry_flag": "N", "action": "refund"}, Answer.SUCCESS),
        ({"code": "10000", "out_trade_no": ORDER, "retry_flag": "Y"}, Answer.UNKNOWN),
        ({"code": "10000", "out_trade_no": "not-ours", "retry_flag": "N"}, Answer.UNKNOWN),
        ({"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST"}, Answer.SUCCESS),
        ({"code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"}, Answer.UNKNOWN),
        ({"code": "40004", "sub_code": "ACQ.REASON_TRADE_BEEN_FREEZEN"}, Answer.FAILED),
        ({"code": "20000"}, Answer.UNKNOWN),
    ],
)
def test_cancel_answers(node: dict[str, str], expected: Answer) -> None:
    assert ali.cancel_reply(node, ORDER).answer is expected


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"code": "10000", "out_trade_no": ORDER, "fund_change": "Y"}, Answer.SUCCESS),
        ({"code": "10000", "out_trade_no": ORDER, "fund_change": "N"}, Answer.SUCCESS),
        ({"code": "10000", "out_trade_no": "x"}, Answer.UNKNOWN),
        ({"code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"}, Answer.UNKNOWN),
        ({"code": "40004", "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"}, Answer.FAILED),
        ({"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST"}, Answer.FAILED),
        ({"code": "20000"}, Answer.UNKNOWN),
    ],
)
def test_refund_answers(node: dict[str, str], expected: Answer) -> None:
    assert ali.refund_reply(node, ORDER).answer is expected
