"""The wallets' daily statements read exactly: WeChat Pay's downloadbill and Alipay's trade bill."""

import io
import zipfile

import pytest

from protocols.statements import ALIPAY_HEADER, WECHAT_HEADER, StatementError, StatementLine, read_statement

# WeChat Pay's documented downloadbill shape (a SUCCESS row from its sample, a refund, a reversal, the totals).
WECHAT = (
    ",".join(WECHAT_HEADER) + "\r\n"
    "`2014-11-10 16:33:45,`wx2421b1c4370ec43b,`10000100,`0,`1000,`1001690740201411100005734289,`1415640626,"
    "`085e9858e3ba5186aafcbaed1,`MICROPAY,`SUCCESS,`CFT,`CNY,`0.01,`0.0,`0,`0,`0,`0,`,`,`被扫支付测试,`订单额外描述,"
    "`0.00000,`0.60%,`0.01,`0.00,`\r\n"
    "`2014-11-10 16:40:12,`wx2421b1c4370ec43b,`10000100,`0,`1000,`1001690740201411100005734289,`1415640626,"
    "`085e9858e3ba5186aafcbaed1,`MICROPAY,`REFUND,`CFT,`CNY,`0.00,`0.0,`2008450740201411110000174436,`R1,`0.01,"
    "`0.00,`ORIGINAL,`SUCCESS,`被扫支付测试,`,`0.00000,`0.60%,`0.00,`0.01,`\r\n"
    "`2014-11-10 16:50:00,`wx2421b1c4370ec43b,`10000100,`0,`1000,`1001690740201411100005734290,`1415640627,"
    "`085e9858e3ba5186aafcbaed1,`MICROPAY,`REVOKED,`CFT,`CNY,`0.00,`0.0,`0,`0,`0.00,`0.00,`,`,`x,`,`0.00000,`0.60%,"
    "`12.30,`0.00,`\r\n"
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n"
    "`3,`0.01,`0.01,`0.0,`0,`0.01,`0.01\r\n"
)


def alipay_csv(rows: list[list[str]]) -> str:
    head = "#支付宝业务明细查询\r\n#账号：[20880000000000000156]\r\n#-----业务明细列表-----\r\n"
    body = "".join(",".join(r) + "\r\n" for r in [ALIPAY_HEADER, *rows])
    return head + body + "#-----业务明细列表结束-----\r\n#导出时间：[2026年12月02日 09:00:00]\r\n"


def pay_row(order: str, amount: str, kind: str = "交易", refund_no: str = "") -> list[str]:
    row = ["2026120222001404330500001234", order, kind, "商品", "2026-12-02 10:00:00", "2026-12-02 10:00:01"]
    row += ["", "", "", "", "159****5620", amount, amount, *["0.00"] * 5, "", "0.00", "0.00", refund_no, "0.00"]
    return [*row, "0.00", ""]


def test_wechat_pay_s_documented_statement_reads_to_payments_refunds_and_reversals() -> None:
    statement = read_statement(WECHAT.encode())
    assert statement.provider == "wechat"
    assert statement.reversed_orders == 1
    assert statement.lines == (
        StatementLine("pay", "1415640626", "1001690740201411100005734289", 1, "2014-11-10 16:33:45"),
        StatementLine("refund", "1415640626", "1001690740201411100005734289", 1, "2014-11-10 16:40:12", "R1"),
    )


def test_alipay_s_bill_reads_from_its_zip_in_gbk() -> None:
    text = alipay_csv([pay_row("A1", "123.45"), pay_row("A1", "-23.45", "退款", "RF1")])
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as z:
        z.writestr("20880000000000000156_20261202_业务明细.csv", text.encode("gb18030"))
        z.writestr("20880000000000000156_20261202_业务明细(汇总).csv", "#汇总".encode("gb18030"))
    statement = read_statement(bundle.getvalue())
    assert statement.provider == "alipay"
    assert [(x.kind, x.order, x.amount, x.refund_no) for x in statement.lines] == [
        ("pay", "A1", 12345, ""),
        ("refund", "A1", 2345, "RF1"),
    ]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"<html>login</html>", "neither"),
        (b"\xff\xfe\x00garbage", "neither"),
        (WECHAT.replace("交易时间,公众账号ID", "交易时间,公众号").encode(), "header"),
        (WECHAT.replace("`0.01,`0.0,`0,`0,`0,`0,", "`0.0x,`0.0,`0,`0,`0,`0,", 1).encode(), "line 2: not an amount"),
        (WECHAT.replace("`REVOKED", "`MYSTERY").encode(), "does not know"),
        (WECHAT.replace("`0.00000,`0.60%,`0.01,`0.00,`\r\n", "\r\n", 1).encode(), "fields, not"),
        (alipay_csv([pay_row("A1", "1.00", "转账")]).encode("gb18030"), "does not know"),
        (b"PK\x03\x04 not really a zip", "zip"),
        (WECHAT.replace("`CFT,", "`C\rF\rT,", 1).encode(), "line 2: not a CSV row"),  # fuzzing found it
        (alipay_csv([pay_row("A\r1", "1.00")]).encode("gb18030"), "not a CSV row"),
    ],
)
def test_anything_else_is_a_statement_error_naming_the_line(data: bytes, why: str) -> None:
    with pytest.raises(StatementError, match=why):
        read_statement(data)
