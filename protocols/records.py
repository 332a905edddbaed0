"""The transaction record: the unit of the offline journal and of sync.

A record is immutable once committed. Amounts are integer fen. The wire form
is a JSON object (``to_wire`` / ``from_wire``); ``from_wire`` checks every
field and reports all problems together.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from protocols.schema import Fields, Problems

MAX_LINES = 500
# Cash, the scan-to-pay wallets, the member's stored value, a bank card.
TENDER_KINDS = ("cash", "wechat", "alipay", "wallet", "card")
RECORD_KINDS = ("sale", "refund", "void")
ID_PATTERN = r"[A-Za-z0-9_.:-]{1,64}"
MASKED_PAN = r"[0-9]{6}\*{2,9}[0-9]{4}"  # never a full card number


@dataclass(frozen=True, slots=True)
class RecordLine:
    sku: str
    name: str
    category: str
    quantity: int
    unit_price: int
    gross: int
    discount: int
    net: int
    refund_line: int = 0  # on a refund: which line of the sale (1-based) this gives back


@dataclass(frozen=True, slots=True)
class Tender:
    kind: str
    amount: int
    ref: str | None = None  # the payment's reference at its provider (not for cash)
    # A bank card: what the terminal reported and the gateway may keep. The PAN
    # is masked (first 6, last 4 at most); the record schema refuses anything else.
    scheme: str | None = None
    pan: str | None = None
    auth: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"kind": self.kind, "amount": self.amount}
        # Optional keys only when set: cash tenders keep the form records always had.
        for key in ("ref", "scheme", "pan", "auth"):
            if (value := getattr(self, key)) is not None:
                wire[key] = value
        return wire


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    txn_id: str
    terminal_id: str
    seq: int
    kind: str
    created_at: str
    store_id: str
    merchant_id: str
    currency: str
    lines: tuple[RecordLine, ...]
    total_gross: int
    total_discount: int
    total_due: int
    tenders: tuple[Tender, ...]
    change: int
    member_id: str | None
    member_via: str | None
    points_earned: int
    rulebook_version: int
    offline: bool
    coupons: tuple[str, ...] = ()  # coupon instances redeemed by this sale
    points_redeemed: int = 0
    growth_earned: int = 0
    # A refund names the sale it reverses and what it gives back or takes back.
    refund_of: str | None = None
    points_clawback: int = 0
    points_returned: int = 0
    coupons_restored: tuple[str, ...] = ()
    reservation: str | None = None  # the ledger's hold on the points this sale spends, when it was online
    growth_clawback: int = 0  # a refund: the growth value the refunded lines had earned, taken back
    # Set by the journal when the record is committed (see protocols/chain.py):
    # hex SHA-256 of the previous record, hex hash of this one, hex Ed25519 signature.
    prev_hash: str = ""
    hash: str = ""
    signature: str = ""

    def to_wire(self) -> dict[str, Any]:
        """A JSON-ready dict (lists, not tuples). Hand-written: this is on the journal's hot path."""
        wire = {f: getattr(self, f) for f in _RECORD_FIELDS}
        wire["lines"] = [{f: getattr(line, f) for f in _LINE_FIELDS} for line in self.lines]
        wire["tenders"] = [t.to_wire() for t in self.tenders]
        wire["coupons"] = list(self.coupons)
        wire["coupons_restored"] = list(self.coupons_restored)
        if not self.growth_clawback:  # only when set: every record made before it keeps its signed form
            del wire["growth_clawback"]
        return wire

    @classmethod
    def from_wire(cls, data: object, source: str = "record") -> TransactionRecord:
        problems = Problems(source)
        record = read_record(Fields(data, problems))
        problems.raise_if_any()
        return record


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(TransactionRecord))
_LINE_FIELDS = tuple(f.name for f in dataclasses.fields(RecordLine))


def read_record(f: Fields) -> TransactionRecord:
    """Read one record from ``f``; problems go to ``f.problems``."""
    lines = tuple(_read_line(lf) for lf in f.tables("lines", max_items=MAX_LINES))
    tenders = tuple(_read_tender(tf) for tf in f.tables("tenders", max_items=20))
    record = TransactionRecord(
        txn_id=f.text("txn_id", pattern=r"[0-9a-f-]{36}"),
        terminal_id=f.text("terminal_id", pattern=ID_PATTERN),
        seq=f.integer("seq", minimum=1),
        kind=f.text("kind", choices=RECORD_KINDS),
        created_at=f.text("created_at", max_len=40),
        store_id=f.text("store_id", pattern=ID_PATTERN),
        merchant_id=f.text("merchant_id", pattern=ID_PATTERN),
        currency=f.text("currency", pattern=r"[A-Z]{3}"),
        lines=lines,
        total_gross=f.integer("total_gross", minimum=0),
        total_discount=f.integer("total_discount", minimum=0),
        total_due=f.integer("total_due", minimum=0),
        tenders=tenders,
        change=f.integer("change", minimum=0),
        member_id=f.optional_text("member_id", pattern=ID_PATTERN),
        member_via=f.optional_text("member_via", max_len=32),
        points_earned=f.integer("points_earned", minimum=0),
        rulebook_version=f.integer("rulebook_version", minimum=0),
        offline=f.flag("offline"),
        coupons=tuple(f.texts("coupons")),
        points_redeemed=f.integer("points_redeemed", 0, minimum=0),
        growth_earned=f.integer("growth_earned", 0, minimum=0),
        refund_of=f.optional_text("refund_of", pattern=r"[0-9a-f-]{36}"),
        points_clawback=f.integer("points_clawback", 0, minimum=0),
        points_returned=f.integer("points_returned", 0, minimum=0),
        coupons_restored=tuple(f.texts("coupons_restored")),
        reservation=f.optional_text("reservation", pattern=r"[0-9a-f]{1,64}"),
        growth_clawback=f.integer("growth_clawback", 0, minimum=0),
        prev_hash=f.text("prev_hash", "", pattern=r"([0-9a-f]{64})?"),
        hash=f.text("hash", "", pattern=r"([0-9a-f]{64})?"),
        signature=f.text("signature", "", pattern=r"([0-9a-f]{128})?"),
    )
    f.done()
    _check_sums(record, f)
    return record


def _read_tender(f: Fields) -> Tender:
    tender = Tender(
        f.text("kind", choices=TENDER_KINDS),
        f.integer("amount", minimum=0),
        f.optional_text("ref", pattern=ID_PATTERN),
        f.optional_text("scheme", pattern=r"[A-Za-z0-9 _-]{1,32}"),
        f.optional_text("pan", pattern=MASKED_PAN),
        f.optional_text("auth", pattern=r"[A-Za-z0-9]{1,12}"),
    )
    f.done()
    return tender


def _read_line(f: Fields) -> RecordLine:
    line = RecordLine(
        sku=f.text("sku", max_len=64),
        name=f.text("name", max_len=200),
        category=f.text("category", max_len=64),
        quantity=f.integer("quantity", minimum=1, maximum=100_000),
        unit_price=f.integer("unit_price", minimum=0, maximum=10**10),
        gross=f.integer("gross", minimum=0),
        discount=f.integer("discount", minimum=0),
        net=f.integer("net", minimum=0),
        refund_line=f.integer("refund_line", 0, minimum=0, maximum=MAX_LINES),
    )
    f.done()
    if line.gross != line.unit_price * line.quantity or line.net != line.gross - line.discount:
        f.problems.add(f.path, "line amounts do not add up (gross = unit_price × quantity, net = gross − discount)")
    return line


def _check_sums(r: TransactionRecord, f: Fields) -> None:
    if f.problems.items:
        return
    if r.total_gross != sum(x.gross for x in r.lines) or r.total_discount != sum(x.discount for x in r.lines):
        f.problems.add(f.path, "totals do not equal the sum of the lines")
    if r.total_due != r.total_gross - r.total_discount:
        f.problems.add(f.path, "total_due is not total_gross − total_discount")
    if sum(t.amount for t in r.tenders) - r.change != r.total_due:
        f.problems.add(f.path, "tenders minus change do not equal total_due")
    if r.change > sum(t.amount for t in r.tenders if t.kind == "cash"):
        f.problems.add(f.path, "change is more than the cash tendered (only cash gives change)")
    if (r.kind in ("refund", "void")) != (r.refund_of is not None):
        f.problems.add(f.path, "a refund or void names the sale it reverses (refund_of), and only they do")
