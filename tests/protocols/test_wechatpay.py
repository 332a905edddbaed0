"""WeChat Pay v2 signing, its XML, and every documented answer mapped onto the micropay machine."""

import pytest

from protocols import wechatpay as wx
from protocols.micropay import Answer

# The signing example of WeChat Pay's documentation (签名算法), with its published results.
EXAMPLE = {
    "appid": "wxd930ea5d5a258f4f",
    "mch_id": "10000100",
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}
EXAMPLE_KEY = "192006250b4c09247ec02edce69f6a2d"
KEY = "0123456789abcdef0123456789abcdef"
ORDER = "0193a1b2c3d47e5f8a9b0c1d2e3f4a5b"


def test_the_documented_example_signs_to_the_published_md5_and_hmac_sha256() -> None:
    assert wx.string_to_sign(EXAMPLE, EXAMPLE_KEY) == (
        "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
        "&key=192006250b4c09247ec02edce69f6a2d"
    )
    assert wx.sign(EXAMPLE, EXAMPLE_KEY, "MD5") == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert wx.sign(EXAMPLE, EXAMPLE_KEY, "HMAC-SHA256") == (
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
    )


def test_empty_fields_and_sign_itself_are_left_out_and_extra_fields_are_covered() -> None:
    with_empty = {**EXAMPLE, "attach": "", "sign": "whatever"}
    assert wx.sign(with_empty, EXAMPLE_KEY, "MD5") == "9A0A8659F005D6984697E2CA0A9CF3B7"
    answer = wx.signed({**EXAMPLE, "new_field_from_wechat": "x"}, KEY)
    assert wx.verify(answer, KEY)
    assert not wx.verify({**answer, "new_field_from_wechat": "y"}, KEY)
    assert not wx.verify({**answer, "sign": answer["sign"][:-1] + ("0" if answer["sign"][-1] != "0" else "1")}, KEY)
    assert not wx.verify({k: v for k, v in answer.items() if k != "sign"}, KEY)
    assert not wx.verify(answer, "another key")
    assert not wx.verify({**answer, "sign_type": "SHA1"}, KEY)


def test_md5_merchants_sign_without_naming_a_sign_type() -> None:
    signed = wx.signed(EXAMPLE, EXAMPLE_KEY, "MD5")
    assert "sign_type" not in signed
    assert signed["sign"] == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert wx.verify(signed, EXAMPLE_KEY, "MD5")


def test_xml_round_trips_cdata_and_chinese() -> None:
    fields = {"body": "咖啡 ]]> <b>&amp;", "total_fee": "1"}
    assert wx.from_xml(wx.to_xml(fields)) == fields


@pytest.mark.parametrize(
    "xml",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>',
        b'<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><xml><a>&b;</a></xml>',
        b"<html><body>502 Bad Gateway</body></html>",
        b"<xml><a><b>nested</b></a></xml>",
        b"<xml><a>1</a><a>2</a></xml>",
        b"<xml>loose<a>1</a></xml>",
        b"<xml><a>1</a>",
        b"not xml at all",
        b"",
        b"<xml>" + b"<a>1</a>" * 10_000 + b"</xml>",
    ],
    ids=["xxe", "laughs", "html", "nested", "repeated", "loose-text", "truncated", "text", "empty", "huge"],
)
def test_anything_but_a_flat_xml_answer_is_refused_with_a_typed_error(xml: bytes) -> None:
    with pytest.raises(wx.WechatPayError):
        wx.from_xml(xml)


def test_order_numbers_come_from_the_intent_and_fit_wechat_s_32_characters() -> None:
    ref = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    assert wx.order_no(ref) == ORDER == wx.order_no(ref)
    with pytest.raises(wx.WechatPayError):
        wx.order_no("x" * 40)


def answer(**fields: str) -> dict[str, str]:
    return wx.signed({"return_code": "SUCCESS", "appid": "wxapp", "mch_id": "1900000109", **fields}, KEY)


def test_answers_are_believed_only_when_successful_signed_and_ours() -> None:
    good = answer(result_code="SUCCESS")
    assert wx.believed(good, KEY, "HMAC-SHA256", "wxapp", "1900000109") is None
    assert "return_code FAIL" in str(wx.believed({"return_code": "FAIL", "return_msg": "签名错误"}, KEY, "MD5", "", ""))
    forged = {**good, "result_code": "FAIL"}
    assert wx.believed(forged, KEY, "HMAC-SHA256", "wxapp", "1900000109") == "signature does not verify"
    other = answer(result_code="SUCCESS", mch_id="1900000999")
    assert "another merchant" in str(wx.believed(other, KEY, "HMAC-SHA256", "wxapp", "1900000109"))


PAY_CASES = [
    ({"result_code": "SUCCESS", "out_trade_no": ORDER, "total_fee": "1234"}, Answer.SUCCESS),
    ({"result_code": "SUCCESS", "out_trade_no": "someone-else", "total_fee": "1234"}, Answer.UNKNOWN),
    ({"result_code": "SUCCESS", "out_trade_no": ORDER, "total_fee": "1"}, Answer.UNKNOWN),
    ({"result_code": "FAIL", "err_code": "USERPAYING"}, Answer.USER_PAYING),
    ({"result_code": "FAIL", "err_code": "SYSTEMERROR"}, Answer.PROVIDER_ERROR),
    ({"result_code": "FAIL", "err_code": "BANKERROR"}, Answer.PROVIDER_ERROR),
    ({"result_code": "FAIL", "err_code": "ORDERPAID"}, Answer.PROVIDER_ERROR),
    ({"result_code": "FAIL", "err_code": "A_CODE_FROM_NEXT_YEAR"}, Answer.PROVIDER_ERROR),
    ({"result_code": "FAIL", "err_code": "AUTHCODEEXPIRE"}, Answer.FAILED),
    ({"result_code": "FAIL", "err_code": "NOTENOUGH"}, Answer.FAILED),
    ({"result_code": "FAIL", "err_code": "AUTH_CODE_INVALID"}, Answer.FAILED),
    ({"result_code": "FAIL", "err_code": "ORDERCLOSED"}, Answer.FAILED),
]


@pytest.mark.parametrize(("fields", "expected"), PAY_CASES)
def test_every_documented_micropay_answer_maps_onto_the_flow(fields: dict[str, str], expected: Answer) -> None:
    reply = wx.pay_reply(answer(**fields, openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", transaction_id="4200001"), ORDER, 1234)
    assert reply.answer is expected
    assert reply.note.startswith("micropay")
    if expected is Answer.FAILED:
        assert " / " in reply.detail["reason"]  # Chinese for the customer, English for the cashier
    if expected is Answer.SUCCESS:
        assert reply.detail == {"payer": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "provider_txn": "4200001"}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("SUCCESS", Answer.SUCCESS),
        ("REFUND", Answer.SUCCESS),
        ("USERPAYING", Answer.USER_PAYING),
        ("NOTPAY", Answer.USER_PAYING),
        ("CLOSED", Answer.FAILED),
        ("REVOKED", Answer.FAILED),
        ("PAYERROR", Answer.FAILED),
        ("SOMETHING_NEW", Answer.UNKNOWN),
    ],
)
def test_order_query_trade_states(state: str, expected: Answer) -> None:
    fields = answer(result_code="SUCCESS", trade_state=state, out_trade_no=ORDER, total_fee="500")
    assert wx.query_reply(fields, ORDER, 500).answer is expected


def test_order_query_not_found_and_errors() -> None:
    assert wx.query_reply(answer(result_code="FAIL", err_code="ORDERNOTEXIST"), ORDER, 1).answer is Answer.NOT_FOUND
    assert wx.query_reply(answer(result_code="FAIL", err_code="SYSTEMERROR"), ORDER, 1).answer is Answer.UNKNOWN
    paid_other = answer(result_code="SUCCESS", trade_state="SUCCESS", out_trade_no=ORDER, total_fee="499")
    assert wx.query_reply(paid_other, ORDER, 500).answer is Answer.UNKNOWN


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"result_code": "SUCCESS", "recall": "N"}, Answer.SUCCESS),
        ({"result_code": "SUCCESS", "recall": "Y"}, Answer.UNKNOWN),
        ({"result_code": "FAIL", "err_code": "ORDERNOTEXIST"}, Answer.SUCCESS),
        ({"result_code": "FAIL", "err_code": "SYSTEMERROR"}, Answer.UNKNOWN),
        ({"result_code": "FAIL", "err_code": "USERPAYING"}, Answer.UNKNOWN),
        ({"result_code": "FAIL", "err_code": "REVERSE_EXPIRE"}, Answer.FAILED),
    ],
)
def test_reverse_answers(fields: dict[str, str], expected: Answer) -> None:
    assert wx.reverse_reply(answer(**fields)).answer is expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"result_code": "SUCCESS", "out_refund_no": "R1", "refund_fee": "300", "refund_id": "503"}, Answer.SUCCESS),
        ({"result_code": "SUCCESS", "out_refund_no": "R2", "refund_fee": "300"}, Answer.UNKNOWN),
        ({"result_code": "SUCCESS", "out_refund_no": "R1", "refund_fee": "299"}, Answer.UNKNOWN),
        ({"result_code": "FAIL", "err_code": "SYSTEMERROR"}, Answer.UNKNOWN),
        ({"result_code": "FAIL", "err_code": "BIZERR_NEED_RETRY"}, Answer.UNKNOWN),
        ({"result_code": "FAIL", "err_code": "NOTENOUGH"}, Answer.FAILED),
        ({"result_code": "FAIL", "err_code": "TRADE_OVERDUE"}, Answer.FAILED),
    ],
)
def test_refund_answers(fields: dict[str, str], expected: Answer) -> None:
    assert wx.refund_reply(answer(**fields), "R1", 300).answer is expected


def test_refund_query_finds_its_refund_among_the_order_s() -> None:
    fields = answer(
        result_code="SUCCESS",
        refund_count="2",
        out_refund_no_0="R0",
        refund_status_0="SUCCESS",
        out_refund_no_1="R1",
        refund_status_1="PROCESSING",
    )
    assert wx.refund_query_reply(fields, "R0").answer is Answer.SUCCESS
    assert wx.refund_query_reply(fields, "R1").answer is Answer.UNKNOWN
    assert wx.refund_query_reply(fields, "R9").answer is Answer.NOT_FOUND
