"""The simulated wallets' daily statements, written as WeChat Pay and Alipay publish theirs
(``protocols/statements.py`` reads them): a China-time calendar day of the books."""

from __future__ import annotations

import csv
import io
import time
import zipfile
from datetime import date, datetime

from protocols.business_day import CHINA
from protocols.money import yuan
from protocols.statements import ALIPAY_HEADER, WECHAT_HEADER
from simulators.wallet_books import Books, payer_of


def _china(at: float) -> datetime:
    return datetime.fromtimestamp(at, CHINA)


def _on(day: date, at: float) -> bool:
    return bool(at) and _china(at).date() == day


def _stamp(at: float) -> str:
    return _china(at).strftime("%Y-%m-%d %H:%M:%S")


def _fee(amount: int) -> str:
    """WeChat Pay's 0.6% service fee, in yuan to five places (a figure on the statement, not ours to keep)."""
    micro = amount * 6  # fen * 0.6% = fen * 6 / 1000, in thousandths of a fen; yuan = / 100
    return f"{micro // 100000}.{micro % 100000:05d}"


def wechat_bill(books: Books, day: date, appid: str, mch_id: str) -> str:
    """``pay/downloadbill`` (``bill_type=ALL``) for ``day``: every row's fields prefixed with a backtick."""
    rows: list[list[str]] = []
    for p in books.payments.values():
        if p.state == "paid" and _on(day, p.paid_at):
            rows.append([_stamp(p.paid_at), appid, mch_id, "0", "", p.txn_id, p.order, "o" + payer_of(p.code),
                         "MICROPAY", "SUCCESS", "OTHERS", "CNY", yuan(p.amount), "0.00", "0", "0", "0.00", "0.00",
                         "", "", "商品", "", _fee(p.amount), "0.60%", yuan(p.amount), "0.00", ""])  # fmt: skip
        if p.order in books.reversed_at and _on(day, books.reversed_at[p.order]):
            when = _stamp(books.reversed_at[p.order])
            rows.append([when, appid, mch_id, "0", "", p.txn_id, p.order, "o" + payer_of(p.code), "MICROPAY",
                         "REVOKED", "OTHERS", "CNY", "0.00", "0.00", "0", "0", "0.00", "0.00", "", "", "商品", "",
                         "0.00000", "0.60%", yuan(p.amount), "0.00", ""])  # fmt: skip
    for refund_no, (order, amount) in books.refunds.items():
        p, at = books.payments[order], books.refunded_at[refund_no]
        if _on(day, at):
            rows.append([_stamp(at), appid, mch_id, "0", "", p.txn_id, order, "o" + payer_of(p.code), "MICROPAY",
                         "REFUND", "OTHERS", "CNY", "0.00", "0.00", "50" + p.txn_id[2:], refund_no, yuan(amount),
                         "0.00", "ORIGINAL", "SUCCESS", "商品", "", "0.00000", "0.60%", "0.00", yuan(amount),
                         ""])  # fmt: skip
    rows.sort(key=lambda row: row[0])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(WECHAT_HEADER)
    writer.writerows([["`" + cell for cell in row] for row in rows])
    paid = sum(p.amount for p in books.payments.values() if p.state == "paid" and _on(day, p.paid_at))
    refunded = sum(a for n, (_, a) in books.refunds.items() if _on(day, books.refunded_at[n]))
    writer.writerow(
        [
            "总交易单数",
            "应结订单总金额",
            "退款总金额",
            "充值券退款总金额",
            "手续费总金额",
            "订单总金额",
            "申请退款总金额",
        ]
    )
    writer.writerow(["`" + v for v in (str(len(rows)), yuan(paid), yuan(refunded), "0.00", "0.00", yuan(paid),
                                        yuan(refunded))])  # fmt: skip
    return out.getvalue()


def alipay_bill(books: Books, day: date, account: str) -> bytes:
    """The trade bill for ``day``: a zip of the detail CSV and its summary, in GBK, as Alipay ships them."""
    rows = [
        [p.txn_id, p.order, "交易", "商品", _stamp(p.paid_at), _stamp(p.paid_at), "", "", "", "", "159****5620",
         yuan(p.amount), yuan(p.amount), "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00", "0.00", "",
         f"-{yuan(p.amount * 6 // 1000)}", "0.00", ""]
        for p in books.payments.values()
        if p.state == "paid" and _on(day, p.paid_at)
    ]  # fmt: skip
    for refund_no, (order, amount) in books.refunds.items():
        p, at = books.payments[order], books.refunded_at[refund_no]
        if _on(day, at):
            rows.append([p.txn_id, order, "退款", "商品", _stamp(at), _stamp(at), "", "", "", "", "159****5620",
                         f"-{yuan(amount)}", f"-{yuan(amount)}", "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00",
                         "0.00", refund_no, "0.00", "0.00", ""])  # fmt: skip
    rows.sort(key=lambda row: row[5])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    rule = "#-----------------------------------------"
    out.write(f"#支付宝业务明细查询\r\n#账号：[{account}]\r\n")
    out.write(f"#起始日期：[{day:%Y年%m月%d日} 00:00:00]   终止日期：[{day:%Y年%m月%d日} 23:59:59]\r\n")
    out.write(f"{rule}业务明细列表{rule}\r\n")
    writer.writerow(ALIPAY_HEADER)
    writer.writerows(rows)
    out.write(f"{rule}业务明细列表结束{rule}\r\n")
    out.write(f"#导出时间：[{time.strftime('%Y年%m月%d日 %H:%M:%S', time.gmtime(time.time() + 8 * 3600))}]\r\n")
    bundle = io.BytesIO()
    stem = f"{account}_{day:%Y%m%d}"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{stem}_业务明细.csv", out.getvalue().encode("gb18030"))
        z.writestr(f"{stem}_业务明细(汇总).csv", "#支付宝业务汇总查询\r\n".encode("gb18030"))
    return bundle.getvalue()
