"""The wallets' daily statements, read: WeChat Pay's ``downloadbill`` and Alipay's trade bill, sans I/O.

**WeChat Pay** (``pay/downloadbill``, ``bill_type=ALL``) answers a CSV text:
a header row (交易时间, 公众账号ID, 商户号, …), one row per order event with
every field prefixed by a backtick, then a totals header (总交易单数, …) and
its row. Amounts are yuan. A ``SUCCESS`` row is a payment, a ``REFUND`` row a
refund (退款金额, 商户退款单号), a ``REVOKED`` row an order reversed (no money).

**Alipay** (``alipay.data.dataservice.bill.downloadurl.query``,
``bill_type=trade``) gives the URL of a zip of GBK CSV files; the detail file
(业务明细) has ``#`` comment lines, a header row (支付宝交易号, 商户订单号, 业务类型,
…), one row per 交易 (payment) or 退款 (refund, its amount negative) and a closing
``#-----…业务明细列表结束`` line.

Both are read into :class:`StatementLine` s: the order number (the merchant's,
derived from the payment intent), the wallet's transaction id, payment or
refund, the amount in fen, exactly.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from protocols.errors import MoneyError, ProtocolError
from protocols.money import fen_from_yuan

MAX_STATEMENT = 64 * 1024 * 1024
WECHAT_HEADER = [
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
]
ALIPAY_HEADER = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
]


class StatementError(ProtocolError):
    """A file that is not a wallet's statement, or a row that cannot be read; the message names the line."""

    code = "statement-invalid"


@dataclass(frozen=True, slots=True)
class StatementLine:
    kind: str  # "pay" | "refund"
    order: str  # the merchant's order number (out_trade_no)
    provider_txn: str  # the wallet's own id for the order (WeChat Pay's transaction_id, Alipay's trade_no)
    amount: int  # fen, always positive
    at: str  # when, as the statement says it (China time)
    refund_no: str = ""  # a refund's own number (out_refund_no / out_request_no)


@dataclass(frozen=True, slots=True)
class Statement:
    provider: str  # "wechat" | "alipay"
    lines: tuple[StatementLine, ...]
    reversed_orders: int = 0  # orders the statement lists as reversed: no money moved


def read_statement(data: bytes) -> Statement:
    """A statement file as either wallet publishes it (the format is recognised by its content)."""
    if len(data) > MAX_STATEMENT:
        raise StatementError(f"a statement of {len(data)} bytes (at most {MAX_STATEMENT})")
    if data.startswith(b"PK"):
        return read_alipay_zip(data)
    text = _decode(data)
    if text.startswith("交易时间"):
        return read_wechat(text)
    if text.startswith("#支付宝"):
        return read_alipay(text)
    raise StatementError("not a WeChat Pay downloadbill or Alipay trade bill (its first line is neither)")


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # WeChat Pay writes UTF-8; Alipay's files are GBK
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise StatementError("a statement in neither UTF-8 nor GBK")


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """The CSV rows with their line numbers; a row the csv module cannot read is a :class:`StatementError`."""
    reader = csv.reader(io.StringIO(text))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise StatementError(f"line {reader.line_num}: not a CSV row ({err})") from None
        yield reader.line_num, row


def _yuan(text: str, where: str) -> int:
    try:
        return fen_from_yuan(text.strip().lstrip("-"))
    except MoneyError:
        raise StatementError(f"{where}: not an amount in yuan: {text[:20]!r}") from None


def read_wechat(text: str) -> Statement:
    rows = _rows(text)
    first = next(rows, (1, []))[1]
    if [c.strip() for c in first][: len(WECHAT_HEADER)] != WECHAT_HEADER:
        raise StatementError("line 1: not WeChat Pay's downloadbill header")
    lines, reversed_orders = [], 0
    for n, row in rows:
        if not row or row[0].startswith("总交易单数"):
            break
        cells = [c.strip().removeprefix("`") for c in row]
        if len(cells) < len(WECHAT_HEADER):
            raise StatementError(f"line {n}: {len(cells)} fields, not {len(WECHAT_HEADER)}")
        field = dict(zip(WECHAT_HEADER, cells, strict=False))
        state = field["交易状态"]
        if state == "SUCCESS":
            amount = _yuan(field["应结订单金额"], f"line {n}")
            lines.append(StatementLine("pay", field["商户订单号"], field["微信订单号"], amount, field["交易时间"]))
        elif state == "REFUND":
            amount = _yuan(field["退款金额"], f"line {n}")
            refund = StatementLine(
                "refund", field["商户订单号"], field["微信订单号"], amount, field["交易时间"], field["商户退款单号"]
            )
            lines.append(refund)
        elif state == "REVOKED":
            reversed_orders += 1
        else:
            raise StatementError(f"line {n}: a transaction state {state[:20]!r} this reader does not know")
    return Statement("wechat", tuple(lines), reversed_orders)


def read_alipay_zip(data: bytes) -> Statement:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as bundle:
            details = [i for i in bundle.infolist() if "业务明细" in i.filename and "汇总" not in i.filename]
            if len(details) != 1:
                raise StatementError("an Alipay bill zip without exactly one 业务明细 (detail) file")
            if details[0].file_size > MAX_STATEMENT:
                raise StatementError("an Alipay bill whose detail file is too large")
            return read_alipay(_decode(bundle.read(details[0])))
    except (zipfile.BadZipFile, OSError) as err:
        raise StatementError(f"not a readable zip: {err}") from None


def read_alipay(text: str) -> Statement:
    lines = []
    header: list[str] | None = None
    for n, row in _rows(text):
        if not row or row[0].startswith("#"):
            if header is not None and row and "结束" in row[0]:
                break
            continue
        cells = [c.strip() for c in row]
        if header is None:
            if cells[: len(ALIPAY_HEADER)] != ALIPAY_HEADER:
                raise StatementError(f"line {n}: not the Alipay trade bill's header")
            header = cells
            continue
        if len(cells) < len(ALIPAY_HEADER):
            raise StatementError(f"line {n}: {len(cells)} fields, not {len(ALIPAY_HEADER)}")
        field = dict(zip(ALIPAY_HEADER, cells, strict=False))
        amount = _yuan(field["订单金额（元）"], f"line {n}")
        when = field["完成时间"] or field["创建时间"]
        if field["业务类型"] == "交易":
            lines.append(StatementLine("pay", field["商户订单号"], field["支付宝交易号"], amount, when))
        elif field["业务类型"] == "退款":
            refund = StatementLine(
                "refund", field["商户订单号"], field["支付宝交易号"], amount, when, field["退款批次号/请求号"]
            )
            lines.append(refund)
        else:
            raise StatementError(f"line {n}: a business type {field['业务类型'][:20]!r} this reader does not know")
    if header is None:
        raise StatementError("an Alipay bill without its header row")
    return Statement("alipay", tuple(lines))
