"""The receipt: one document made from a journaled record, rendered as text, as ESC/POS, and as HTML. Sans I/O.

The document (:func:`receipt_of`) says what the customer reads: the shop, the
till, the cashier, the time in the mall's zone; each line; the discount rule
by kind (tier, promotion, coupon, exchange, offset); the total; each tender
(a card by scheme and masked PAN only); the change; points earned and spent
and the balance the till knows; the member masked; and a return code
(``RC1.<terminal>.<seq>.<txn_id>``, printed as a QR code) that finds the sale
again at any till. The three renderings come from the same document, so what
the screen shows, what the printer prints and what the web POS shows agree;
the printer simulator decodes the ESC/POS back to the text rendering's lines.
"""

from __future__ import annotations

import html
import unicodedata
from dataclasses import dataclass

from protocols import escpos
from protocols.business_day import mall_zone, parse_instant
from protocols.masking import mask_member_id
from protocols.money import format_cny
from protocols.records import TransactionRecord

WIDTH = 42  # characters on an 80 mm roll in font A (a double-width CJK character takes two)
TITLES = {"sale": "SALE", "refund": "REFUND", "void": "VOID", "topup": "STORED VALUE TOP-UP"}
BENEFIT_NAMES = {
    "tier": "member discount",
    "promotion": "promotion",
    "coupon": "coupon",
    "exchange": "points exchange",
    "offset": "paid with points",
}
TENDER_NAMES = {
    "cash": "cash",
    "wechat": "WeChat Pay",
    "alipay": "Alipay",
    "wallet": "stored value",
    "card": "bank card",
    "giftcard": "gift card",
}


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    name: str
    quantity: int
    unit_price: int
    gross: int
    discount: int
    list_price: int = 0  # a price changed by hand: the price it was rung up at


@dataclass(frozen=True, slots=True)
class Receipt:
    title: str
    shop: str
    terminal_id: str
    seq: int
    txn_id: str
    at: str  # local time in the mall's zone, to the minute
    cashier: str | None
    lines: tuple[ReceiptLine, ...]
    benefits: tuple[tuple[str, int], ...]  # (what, fen), by kind
    total_gross: int
    total_discount: int
    total_due: int
    tenders: tuple[tuple[str, int], ...]  # (how, fen)
    change: int
    member: str | None  # masked
    points_earned: int
    points_spent: int
    points_balance: int | None  # as this till knows it, when a member is named
    refund_of: str | None
    return_code: str

    @property
    def is_refund(self) -> bool:
        return self.refund_of is not None


def return_code(r: TransactionRecord) -> str:
    return f"RC1.{r.terminal_id}.{r.seq}.{r.txn_id}"


def receipt_of(r: TransactionRecord, zone: str, shop: str = "", points_balance: int | None = None) -> Receipt:
    """The receipt of a sale, refund, void or top-up as journaled; ``points_balance``: the member's balance as
    this till knows it after the record (None: not shown)."""
    local = parse_instant(r.created_at).astimezone(mall_zone(zone)).strftime("%Y-%m-%d %H:%M")
    by_kind: dict[str, int] = {}
    for b in r.benefits:
        by_kind[b.kind] = by_kind.get(b.kind, 0) + b.amount
    named = sum(by_kind.values())
    benefits = [(BENEFIT_NAMES.get(k, k), v) for k, v in by_kind.items()]
    if r.total_discount > named:  # a record that does not name its benefits (version 1), or a refund's
        benefits.append(("discount", r.total_discount - named))
    tenders = []
    for t in r.tenders:
        how = TENDER_NAMES.get(t.kind, t.kind)
        if t.kind == "card" and t.pan:
            how = f"{t.scheme or 'card'} {t.pan[-4:].rjust(8, '*')}"
        elif t.kind == "giftcard" and t.card:
            how = f"gift card ****{t.card[-4:]}"
        tenders.append((how, t.amount))
    return Receipt(
        title=TITLES.get(r.kind, r.kind.upper()),
        shop=shop or f"{r.store_id} / {r.merchant_id}",
        terminal_id=r.terminal_id,
        seq=r.seq,
        txn_id=r.txn_id,
        at=local,
        cashier=r.cashier,
        lines=tuple(
            ReceiptLine(x.name or x.sku, x.quantity, x.unit_price, x.gross, x.discount, x.list_price) for x in r.lines
        ),
        benefits=tuple(benefits),
        total_gross=r.total_gross,
        total_discount=r.total_discount,
        total_due=r.total_due,
        tenders=tuple(tenders),
        change=r.change,
        member=mask_member_id(r.member_id) if r.member_id else None,
        points_earned=r.points_earned or r.points_returned,
        points_spent=r.points_redeemed or r.points_clawback,
        points_balance=points_balance if r.member_id else None,
        refund_of=r.refund_of,
        return_code=return_code(r),
    )


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pair(left: str, right: str, width: int) -> str:
    """``left`` and ``right`` on one line, the left cut (never the amount) if both do not fit."""
    room = width - _width(right) - 1
    while _width(left) > room and left:
        left = left[:-1]
    return left + " " * (width - _width(left) - _width(right)) + right


def text_lines(r: Receipt, width: int = WIDTH) -> list[str]:
    """The receipt as lines of at most ``width`` columns: the screen's form, and what the printer prints."""
    sign = "-" if r.is_refund else ""
    out = [r.shop, r.title, f"{r.at}  till {r.terminal_id}  #{r.seq}"]
    if r.cashier:
        out.append(f"cashier {r.cashier}")
    if r.refund_of:
        out.append(f"gives back {r.refund_of[:8]}")
    out.append("-" * width)
    for x in r.lines:
        out.append(_pair(x.name, f"{sign}{format_cny(x.gross)}", width))
        if x.quantity != 1:
            out.append(f"  {x.quantity} x {format_cny(x.unit_price)}")
        if x.list_price:
            out.append(f"  price changed from {format_cny(x.list_price)}")
    out.append("-" * width)
    out.append(_pair("subtotal", f"{sign}{format_cny(r.total_gross)}", width))
    out.extend(_pair(f"  {what}", f"-{format_cny(amount)}" if not sign else format_cny(amount), width)
               for what, amount in r.benefits)  # fmt: skip
    out.append(_pair("TOTAL", f"{sign}{format_cny(r.total_due)}", width))
    out.extend(_pair(how, f"{sign}{format_cny(amount)}", width) for how, amount in r.tenders)
    if r.change:
        out.append(_pair("change", format_cny(r.change), width))
    if r.member:
        out.append(f"member {r.member}")
        if r.points_earned:
            out.append(_pair("points " + ("returned" if r.is_refund else "earned"), str(r.points_earned), width))
        if r.points_spent:
            out.append(_pair("points " + ("taken back" if r.is_refund else "spent"), str(r.points_spent), width))
        if r.points_balance is not None:
            out.append(_pair("points balance", str(r.points_balance), width))
    out.append("return code (any till):")
    out.extend(r.return_code[i : i + width] for i in range(0, len(r.return_code), width))
    return out


def render_text(r: Receipt, width: int = WIDTH) -> str:
    return "\n".join(text_lines(r, width)) + "\n"


def render_escpos(r: Receipt, width: int = WIDTH) -> bytes:
    """The receipt for a thermal printer: the text lines (the title large and bold), the return code as a QR
    code, then feed and cut."""
    lines = text_lines(r, width)
    out = [escpos.INIT, escpos.CHINESE_ON, escpos.align("center"), escpos.text_line(lines[0])]
    out += [escpos.bold(True), escpos.size(True), escpos.text_line(lines[1]), escpos.size(False), escpos.bold(False)]
    out.append(escpos.align("left"))
    out += [escpos.text_line(line) for line in lines[2:]]
    out += [escpos.align("center"), escpos.qr_code(r.return_code), escpos.text_line(""), escpos.CUT]
    return b"".join(out)


def render_html(r: Receipt) -> str:
    """The receipt as a self-contained HTML fragment (every text escaped) for a web POS or an e-receipt."""
    rows = "".join(f"<tr><td>{html.escape(line)}</td></tr>" for line in text_lines(r))
    return (
        f'<article class="posgw-receipt" data-txn="{html.escape(r.txn_id)}">'
        f'<table style="font-family:monospace;white-space:pre">{rows}</table>'
        f"<p>return code <code>{html.escape(r.return_code)}</code></p></article>"
    )
