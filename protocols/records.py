"""The transaction record: the unit of the offline journal and of sync.

A record is immutable once committed. Amounts are integer fen. The wire form
is a JSON object (``to_wire`` / ``from_wire``); ``from_wire`` checks every
field and reports all problems together, and bounds every integer.

Format versions (``docs/protocols/sync.md``): version 1 records carry the
benefits as totals only; version 2 records (``"version": 2``) carry, per line,
the fen paid with points and the points and growth it earned and the points
it consumed (on a refund: what its units give back), and the member's tier
the sale was priced at. A record keeps the form it was signed in for ever:
the fields a version does not know are not on its wire at all.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Annotated, Any

from msgspec import Meta

from protocols.business_day import INSTANT_PATTERN
from protocols.gift_cards import GIFT_CARD_CATEGORY, NUMBER_PATTERN, loads
from protocols.paid_tiers import PAID_TIER_CATEGORY, tier_sold
from protocols.promotions import CODE_PATTERN
from protocols.schema import Fields, Problems
from protocols.shifts import EVENT_KINDS, ShiftReport, read_report
from protocols.staff import STAFF_ID
from protocols.stored_value import TOPUP_SKU

MAX_LINES = 500
# Cash, the scan-to-pay wallets, the member's stored value, a bank card, a gift card.
TENDER_KINDS = ("cash", "wechat", "alipay", "wallet", "card", "giftcard")
RECORD_KINDS = ("sale", "refund", "void", "join", "topup", *EVENT_KINDS)
BENEFIT_KINDS = ("tier", "promotion", "coupon", "exchange", "offset")  # ``protocols/pricing`` Adjustment kinds
MAX_PROMO_CODES = 5
ID_PATTERN = r"[A-Za-z0-9_.:-]{1,64}"
MASKED_PAN = r"[0-9]{6}\*{2,9}[0-9]{4}"  # never a full card number
RECORD_VERSION = 2  # the format this posgw writes
# Bounds on every integer a record may carry: far above any real till, far below
# what JSON numbers, SQLite and PostgreSQL BIGINT hold exactly (2**53).
MAX_FEN = 10**15
MAX_POINTS = 10**12
MAX_SEQ = 2**53
TXN_ID = r"[0-9a-f-]{36}"
HASH, SIGNATURE = r"([0-9a-f]{64})?", r"([0-9a-f]{128})?"  # empty until the journal seals the record
CODE_NONCE = r"[A-Za-z0-9_.:-]{1,128}"  # a member or wallet code's kid:nonce
JOINED_PATTERN = r"phone:[0-9A-Za-z_-]{22}"  # a salted phone hash (``protocols/phone.py``)


# The same bounds on the fields themselves, for the reader in C (``protocols/fast_records.py``); read_record
# below is the reference, and a property test holds the two to one answer.
def _exactly(pattern: str) -> Meta:
    """``pattern`` as ``fullmatch`` reads it; msgspec searches, and ``$`` would let a trailing newline in."""
    return Meta(pattern=f"^(?:{pattern})\\Z")


def _choice(choices: tuple[str, ...]) -> Meta:
    return _exactly("|".join(map(re.escape, choices)))


Id = Annotated[str, _exactly(ID_PATTERN)]
Fen = Annotated[int, Meta(ge=0, le=MAX_FEN)]
Points = Annotated[int, Meta(ge=0, le=MAX_POINTS)]
Price = Annotated[int, Meta(ge=0, le=10**10)]


@dataclass(frozen=True, slots=True)
class RecordLine:
    sku: Annotated[str, Meta(max_length=64)]
    name: Annotated[str, Meta(max_length=200)]
    category: Annotated[str, Meta(max_length=64)]
    quantity: Annotated[int, Meta(ge=1, le=100_000)]
    unit_price: Price
    gross: Fen
    discount: Fen
    net: Fen
    # On a refund: which line of the sale (1-based) this gives back.
    refund_line: Annotated[int, Meta(ge=0, le=MAX_LINES)] = 0
    # Version 2: the line's share of the benefits (a refund's line: what its units give back).
    offset: Fen = 0  # fen of it paid with points (part of ``discount``)
    points: Points = 0  # points earned (a refund: clawed back)
    growth: Points = 0  # growth value earned (a refund: taken back)
    points_spent: Points = 0  # points consumed: offset share, exchange price (a refund: returned)
    # A price changed by hand at the till (a supervisor approves it where the till holds staff): the price the
    # line was rung up at. 0: not changed (and not on the wire, so every earlier record keeps its signed form).
    list_price: Price = 0
    # A department store's central checkout: the counter (merchant) the line was sold for (only when set).
    merchant: Id | None = None


@dataclass(frozen=True, slots=True)
class Tender:
    kind: Annotated[str, _choice(TENDER_KINDS)]
    amount: Fen
    ref: Id | None = None  # the payment's reference at its provider (not for cash)
    # A bank card: what the terminal reported and the gateway may keep. The PAN
    # is masked (first 6, last 4 at most); the record schema refuses anything else.
    scheme: Annotated[str, _exactly(r"[A-Za-z0-9 _-]{1,32}")] | None = None
    pan: Annotated[str, _exactly(MASKED_PAN)] | None = None
    auth: Annotated[str, _exactly(r"[A-Za-z0-9]{1,12}")] | None = None
    # A stored-value tender: the wallet code's ``kid:nonce`` that paid it (a code pays once; the ledger
    # records a second use, even between two offline tills, as a conflict).
    code: Annotated[str, _exactly(CODE_NONCE)] | None = None
    # A wallet's own id for the payment (WeChat Pay's transaction_id, Alipay's trade_no): what its
    # statement names, so a day can be reconciled line by line.
    provider_txn: Annotated[str, _exactly(r"[0-9A-Za-z_-]{1,64}")] | None = None
    # A gift card tender: the card's number (``protocols/gift_cards.py``).
    card: Annotated[str, _exactly(NUMBER_PATTERN)] | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"kind": self.kind, "amount": self.amount}
        # Optional keys only when set: cash tenders keep the form records always had.
        for key in ("ref", "scheme", "pan", "auth", "code", "provider_txn", "card"):
            if (value := getattr(self, key)) is not None:
                wire[key] = value
        return wire


@dataclass(frozen=True, slots=True)
class Benefit:
    """What one rule took off a sale: ``kind`` (tier, promotion, coupon, exchange, offset), the rule (tier
    name, promotion or coupon id, ``offset``) and the fen. A sale's benefits add up to its discount; they
    say who bears it (the tenant settlement) and the ledger re-derives the promotions'."""

    kind: Annotated[str, _choice(BENEFIT_KINDS)]
    rule: Annotated[str, Meta(max_length=64)]
    amount: Annotated[int, Meta(ge=1, le=MAX_FEN)]

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind, "rule": self.rule, "amount": self.amount}


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    txn_id: Annotated[str, _exactly(TXN_ID)]
    terminal_id: Id
    seq: Annotated[int, Meta(ge=1, le=MAX_SEQ)]
    kind: Annotated[str, _choice(RECORD_KINDS)]
    created_at: Annotated[str, _exactly(INSTANT_PATTERN)]
    store_id: Id
    merchant_id: Id
    currency: Annotated[str, _exactly("[A-Z]{3}")]
    lines: Annotated[tuple[RecordLine, ...], Meta(max_length=MAX_LINES)]
    total_gross: Fen
    total_discount: Fen
    total_due: Fen
    tenders: Annotated[tuple[Tender, ...], Meta(max_length=20)]
    change: Fen
    member_id: Id | None
    member_via: Annotated[str, Meta(max_length=32)] | None
    points_earned: Points
    rulebook_version: Annotated[int, Meta(ge=0, le=MAX_SEQ)]
    offline: bool
    coupons: tuple[str, ...] = ()  # coupon instances redeemed by this sale
    points_redeemed: Points = 0
    growth_earned: Points = 0
    # A refund names the sale it reverses and what it gives back or takes back.
    refund_of: Annotated[str, _exactly(TXN_ID)] | None = None
    points_clawback: Points = 0
    points_returned: Points = 0
    coupons_restored: tuple[str, ...] = ()
    # The ledger's hold on the points this sale spends, when it was online.
    reservation: Annotated[str, _exactly("[0-9a-f]{1,64}")] | None = None
    growth_clawback: Points = 0  # a refund: the growth value the refunded lines had earned, taken back
    # The member or wallet code (its ``kid:nonce``) that named the member: good for one sale, so the ledger
    # notes one used at two tills (offline, neither could know).
    member_code: Annotated[str, _exactly(CODE_NONCE)] | None = None
    version: Annotated[int, Meta(ge=1, le=RECORD_VERSION)] = 1  # the record format (see the module docstring)
    # Version 2: the tier the sale was priced and earned at.
    member_tier: Annotated[str, _exactly("[A-Za-z0-9_-]{1,32}")] | None = None
    epoch: Annotated[int, Meta(ge=1, le=10**6)] = 1  # the terminal's chain epoch: a replaced till starts the next one
    # A join (开卡): the identifier the customer joined with (``phone:<salted hash>``, never the number);
    # the record names the member the till made for them, ``J-<terminal>-<n>`` (``joined_member_id``).
    joined: Annotated[str, _exactly(JOINED_PATTERN)] | None = None
    # A top-up (充值): the bonus the rulebook gives it, in fen (``protocols/stored_value.py``), credited as a
    # separate grant that lapses.
    bonus: Fen = 0
    # A sale: its discount by rule (tier, promotions, coupons, offset), and the promo codes it was given.
    benefits: Annotated[tuple[Benefit, ...], Meta(max_length=100)] = ()
    promo_codes: tuple[str, ...] = ()
    # Who did it (``protocols/staff.py``): the cashier signed in at the till, the supervisor who approved it
    # (a void, a refund above the policy's amount, a drawer opened without a sale, a price changed by hand),
    # and the shift it belongs to (``protocols/shifts.py``). A shift's open and close carry its report.
    cashier: Annotated[str, _exactly(STAFF_ID)] | None = None
    approved_by: Annotated[str, _exactly(STAFF_ID)] | None = None
    shift: Id | None = None
    shift_report: ShiftReport | None = None
    # A return at another till (a refund or void of a sale this till did not make): the terminal that made it.
    sale_terminal: Id | None = None
    # Set by the journal when the record is committed (see protocols/chain.py):
    # hex SHA-256 of the previous record, hex hash of this one, hex Ed25519 signature.
    prev_hash: Annotated[str, _exactly(HASH)] = ""
    hash: Annotated[str, _exactly(HASH)] = ""
    signature: Annotated[str, _exactly(SIGNATURE)] = ""

    def to_wire(self) -> dict[str, Any]:
        """A JSON-ready dict (lists, not tuples). Hand-written: this is on the journal's hot path."""
        v2 = self.version >= 2
        wire = {f: getattr(self, f) for f in (_V2_FIELDS if v2 else _V1_FIELDS)}
        line_fields = _LINE_FIELDS if v2 else _V1_LINE_FIELDS
        wire["lines"] = [_line_wire(line, line_fields) for line in self.lines]
        wire["tenders"] = [t.to_wire() for t in self.tenders]
        wire["coupons"] = list(self.coupons)
        wire["coupons_restored"] = list(self.coupons_restored)
        if not self.growth_clawback:  # only when set: every record made before it keeps its signed form
            del wire["growth_clawback"]
        if self.member_code is None:  # likewise
            del wire["member_code"]
        if self.epoch > 1:  # likewise: a first chain's records never carry it
            wire["epoch"] = self.epoch
        if self.joined is None:  # only joins carry it
            del wire["joined"]
        if not self.bonus:  # only top-ups with a bonus
            del wire["bonus"]
        if self.benefits:  # only when set: records made before them keep their signed form
            wire["benefits"] = [b.to_wire() for b in self.benefits]
        else:
            del wire["benefits"]
        if self.promo_codes:
            wire["promo_codes"] = list(self.promo_codes)
        else:
            del wire["promo_codes"]
        for key in _STAFF_FIELDS:  # only when set: records made before these fields keep their signed form
            if wire[key] is None:
                del wire[key]
        if self.shift_report is not None:
            wire["shift_report"] = self.shift_report.to_wire()
        return wire

    @classmethod
    def from_wire(cls, data: object, source: str = "record") -> TransactionRecord:
        problems = Problems(source)
        record = read_record(Fields(data, problems))
        problems.raise_if_any()
        return record


_V2_FIELDS = tuple(f.name for f in dataclasses.fields(TransactionRecord) if f.name != "epoch")
_STAFF_FIELDS = ("cashier", "approved_by", "shift", "shift_report", "sale_terminal")
_V1_FIELDS = tuple(f for f in _V2_FIELDS if f not in ("version", "member_tier"))
_LINE_FIELDS = tuple(f.name for f in dataclasses.fields(RecordLine) if f.name not in ("list_price", "merchant"))
_V1_LINE_FIELDS = _LINE_FIELDS[: _LINE_FIELDS.index("refund_line") + 1]
# What only a version 2 record and its lines hold (read_record reads these from no other).
V2_RECORD_KEYS = frozenset({"member_tier"})
V2_LINE_KEYS = frozenset(_LINE_FIELDS) - frozenset(_V1_LINE_FIELDS)


def _line_wire(line: RecordLine, fields: tuple[str, ...]) -> dict[str, Any]:
    wire = {f: getattr(line, f) for f in fields}
    if line.list_price:
        wire["list_price"] = line.list_price
    if line.merchant is not None:
        wire["merchant"] = line.merchant
    return wire


def joined_member_id(terminal_id: str, n: int) -> str:
    """The id a till gives a member it enrols: its own namespace, so no till can name another's member."""
    return f"J-{terminal_id}-{n}"


def made_by(member_id: str, terminal_id: str) -> bool:
    """Whether ``member_id`` is one ``terminal_id`` may have made (``joined_member_id``)."""
    prefix = f"J-{terminal_id}-"
    return member_id.startswith(prefix) and member_id[len(prefix) :].isdigit()


def read_record(f: Fields) -> TransactionRecord:
    """Read one record from ``f``; problems go to ``f.problems``."""
    version = f.integer("version", 1, minimum=1, maximum=RECORD_VERSION)
    lines = tuple(_read_line(lf, version) for lf in f.tables("lines", max_items=MAX_LINES))
    tenders = tuple(_read_tender(tf) for tf in f.tables("tenders", max_items=20))

    def fen(key: str) -> int:
        return f.integer(key, minimum=0, maximum=MAX_FEN)

    def points(key: str) -> int:
        return f.integer(key, 0, minimum=0, maximum=MAX_POINTS)

    record = TransactionRecord(
        txn_id=f.text("txn_id", pattern=TXN_ID),
        terminal_id=f.text("terminal_id", pattern=ID_PATTERN),
        seq=f.integer("seq", minimum=1, maximum=MAX_SEQ),
        kind=f.text("kind", choices=RECORD_KINDS),
        created_at=f.text("created_at", pattern=INSTANT_PATTERN),
        store_id=f.text("store_id", pattern=ID_PATTERN),
        merchant_id=f.text("merchant_id", pattern=ID_PATTERN),
        currency=f.text("currency", pattern=r"[A-Z]{3}"),
        lines=lines,
        total_gross=fen("total_gross"),
        total_discount=fen("total_discount"),
        total_due=fen("total_due"),
        tenders=tenders,
        change=fen("change"),
        member_id=f.optional_text("member_id", pattern=ID_PATTERN),
        member_via=f.optional_text("member_via", max_len=32),
        points_earned=f.integer("points_earned", minimum=0, maximum=MAX_POINTS),
        rulebook_version=f.integer("rulebook_version", minimum=0, maximum=MAX_SEQ),
        offline=f.flag("offline"),
        coupons=tuple(f.texts("coupons")),
        points_redeemed=points("points_redeemed"),
        growth_earned=points("growth_earned"),
        refund_of=f.optional_text("refund_of", pattern=TXN_ID),
        points_clawback=points("points_clawback"),
        points_returned=points("points_returned"),
        coupons_restored=tuple(f.texts("coupons_restored")),
        reservation=f.optional_text("reservation", pattern=r"[0-9a-f]{1,64}"),
        growth_clawback=points("growth_clawback"),
        member_code=f.optional_text("member_code", pattern=CODE_NONCE),
        version=version,
        member_tier=f.optional_text("member_tier", pattern=r"[A-Za-z0-9_-]{1,32}") if version >= 2 else None,
        epoch=f.integer("epoch", 1, minimum=1, maximum=10**6),
        joined=f.optional_text("joined", pattern=JOINED_PATTERN),
        bonus=f.integer("bonus", 0, minimum=0, maximum=MAX_FEN),
        benefits=tuple(_read_benefit(bf) for bf in f.tables("benefits", max_items=100)),
        promo_codes=tuple(f.texts("promo_codes")),
        cashier=f.optional_text("cashier", pattern=STAFF_ID),
        approved_by=f.optional_text("approved_by", pattern=STAFF_ID),
        shift=f.optional_text("shift", pattern=ID_PATTERN),
        shift_report=None if (rf := f.optional_table("shift_report")) is None else read_report(rf),
        sale_terminal=f.optional_text("sale_terminal", pattern=ID_PATTERN),
        prev_hash=f.text("prev_hash", "", pattern=HASH),
        hash=f.text("hash", "", pattern=HASH),
        signature=f.text("signature", "", pattern=SIGNATURE),
    )
    f.done()
    check_record(record, f.problems, f.path)
    return record


def check_record(r: TransactionRecord, problems: Problems, path: str = "") -> None:
    """What a record's fields say together (each field's own bounds read): its lists, lines, tenders, sums."""
    if len(r.coupons) > 20 or len(r.coupons_restored) > 20:
        problems.add(path, "at most 20 coupons a record")
    if len(r.promo_codes) > MAX_PROMO_CODES or not all(_is_code(c) for c in r.promo_codes):
        problems.add(f"{path}.promo_codes", f"at most {MAX_PROMO_CODES} promo codes, each {CODE_PATTERN}")
    for i, line in enumerate(r.lines):
        _check_line(line, problems, f"{path}.lines[{i}]")
    for i, tender in enumerate(r.tenders):
        if (tender.kind == "giftcard") != (tender.card is not None):
            problems.add(f"{path}.tenders[{i}]", "a gift card tender names its card, and only a gift card tender does")
    _check_sums(r, problems, path)


def _is_code(text: str) -> bool:
    return re.fullmatch(CODE_PATTERN, text) is not None


def _read_benefit(f: Fields) -> Benefit:
    benefit = Benefit(
        f.text("kind", choices=BENEFIT_KINDS),
        f.text("rule", max_len=64),
        f.integer("amount", minimum=1, maximum=MAX_FEN),
    )
    f.done()
    return benefit


def _read_tender(f: Fields) -> Tender:
    tender = Tender(
        f.text("kind", choices=TENDER_KINDS),
        f.integer("amount", minimum=0, maximum=MAX_FEN),
        f.optional_text("ref", pattern=ID_PATTERN),
        f.optional_text("scheme", pattern=r"[A-Za-z0-9 _-]{1,32}"),
        f.optional_text("pan", pattern=MASKED_PAN),
        f.optional_text("auth", pattern=r"[A-Za-z0-9]{1,12}"),
        f.optional_text("code", pattern=CODE_NONCE),
        f.optional_text("provider_txn", pattern=r"[0-9A-Za-z_-]{1,64}"),
        f.optional_text("card", pattern=NUMBER_PATTERN),
    )
    f.done()
    return tender


def _read_line(f: Fields, version: int) -> RecordLine:
    def benefit(key: str, maximum: int) -> int:
        return f.integer(key, 0, minimum=0, maximum=maximum) if version >= 2 else 0

    line = RecordLine(
        sku=f.text("sku", max_len=64),
        name=f.text("name", max_len=200),
        category=f.text("category", max_len=64),
        quantity=f.integer("quantity", minimum=1, maximum=100_000),
        unit_price=f.integer("unit_price", minimum=0, maximum=10**10),
        gross=f.integer("gross", minimum=0, maximum=MAX_FEN),
        discount=f.integer("discount", minimum=0, maximum=MAX_FEN),
        net=f.integer("net", minimum=0, maximum=MAX_FEN),
        refund_line=f.integer("refund_line", 0, minimum=0, maximum=MAX_LINES),
        offset=benefit("offset", MAX_FEN),
        points=benefit("points", MAX_POINTS),
        growth=benefit("growth", MAX_POINTS),
        points_spent=benefit("points_spent", MAX_POINTS),
        list_price=f.integer("list_price", 0, minimum=0, maximum=10**10),
        merchant=f.optional_text("merchant", pattern=ID_PATTERN),
    )
    f.done()
    return line


def _check_line(line: RecordLine, problems: Problems, path: str) -> None:
    if line.gross != line.unit_price * line.quantity or line.net != line.gross - line.discount:
        problems.add(path, "line amounts do not add up (gross = unit_price × quantity, net = gross − discount)")
    if line.offset > line.discount:
        problems.add(path, "the part paid with points (offset) is more than the line's discount")


def _check_sums(r: TransactionRecord, problems: Problems, path: str) -> None:
    if problems.items:
        return
    if r.total_gross != sum(x.gross for x in r.lines) or r.total_discount != sum(x.discount for x in r.lines):
        problems.add(path, "totals do not equal the sum of the lines")
    if r.total_due != r.total_gross - r.total_discount:
        problems.add(path, "total_due is not total_gross − total_discount")
    if sum(t.amount for t in r.tenders) - r.change != r.total_due:
        problems.add(path, "tenders minus change do not equal total_due")
    if r.change > sum(t.amount for t in r.tenders if t.kind == "cash"):
        problems.add(path, "change is more than the cash tendered (only cash gives change)")
    if r.sale_terminal is not None and r.kind not in ("refund", "void"):
        problems.add(path, "only a refund or void names the terminal of the sale it gives back (sale_terminal)")
    if (r.kind in ("refund", "void")) != (r.refund_of is not None):
        problems.add(path, "a refund or void names the sale it reverses (refund_of), and only they do")
    if (r.kind == "join") != (r.joined is not None):
        problems.add(path, "a join names the identifier the member joined with (joined), and only a join does")
    if r.kind in EVENT_KINDS:
        _check_event(r, problems, path)
    elif r.shift_report is not None:
        problems.add(path, "only a shift's open and close carry a shift report")
    if r.kind == "join" and (r.lines or r.tenders or r.member_id is None or r.version < 2 or r.coupons):
        problems.add(path, "a join names its member and nothing else: no lines, tenders or coupons")
    if r.kind == "sale" and any(x.category == PAID_TIER_CATEGORY for x in r.lines):
        _check_paid_tier(r, problems, path)
    if cards := loads(r.lines):
        _check_gift_card_loads(r, problems, path, len(cards))
    if r.kind == "topup":
        _check_topup(r, problems, path)
    elif r.bonus:
        problems.add(path, "only a top-up is given a bonus")
    if r.version >= 2:
        _check_benefits(r, problems, path)
    if (r.benefits or r.promo_codes) and r.kind != "sale":
        problems.add(path, "only a sale names its benefits and promo codes")
    elif r.benefits and sum(b.amount for b in r.benefits) != r.total_discount:
        problems.add(path, "the benefits do not add up to the sale's discount")


def _check_event(r: TransactionRecord, problems: Problems, path: str) -> None:
    """A shift's open or close, or a drawer opened without a sale: no money moves, a cashier did it."""
    if r.lines or r.tenders or r.total_gross or r.change or r.member_id or r.coupons or r.version < 2:
        problems.add(path, f"a {r.kind} moves nothing: no lines, tenders or member")
    if r.cashier is None and r.kind != "no_sale":  # a drawer opened where the till holds no staff names nobody
        problems.add(path, f"a {r.kind} names the cashier who did it")
    if r.kind != "no_sale" and (r.shift is None or r.shift_report is None):
        problems.add(path, f"a {r.kind} names its shift and carries the shift's report")
    elif r.kind == "no_sale" and r.shift_report is not None:
        problems.add(path, "a no_sale carries no shift report")
    elif r.shift_report is not None and (r.shift_report.totals is None) != (r.kind == "shift_open"):
        problems.add(path, "a shift_open carries the float only, a shift_close its totals and count too")
    if r.points_earned or r.points_redeemed or r.points_clawback or r.points_returned or r.reservation:
        problems.add(path, f"a {r.kind} earns and spends nothing")


def _check_paid_tier(r: TransactionRecord, problems: Problems, path: str) -> None:
    """A paid tier is sold to its member on its own: one line ``tier:<name>``, quantity 1, at full price,
    earning and spending nothing (``protocols/paid_tiers.py``)."""
    if tier_sold(r) is None or r.lines[0].quantity != 1 or r.total_discount:
        problems.add(path, f"a paid tier is one line tier:<name> in {PAID_TIER_CATEGORY}, quantity 1, full price")
    if r.member_id is None or r.version < 2:
        problems.add(path, "a paid tier names the member it is sold to")
    if r.coupons or r.promo_codes or r.reservation or r.points_earned or r.points_redeemed or r.growth_earned:
        problems.add(path, "a paid tier earns and spends nothing: no coupons, promo codes, points or growth")


def _check_gift_card_loads(r: TransactionRecord, problems: Problems, path: str, n: int) -> None:
    """Gift card loads: one card a line, quantity 1, at face value; never paid with stored value or a gift card."""
    lines = [x for x in r.lines if x.category == GIFT_CARD_CATEGORY]
    if len(lines) != n or any(x.quantity != 1 or x.discount for x in lines) or r.kind not in ("sale", "refund"):
        problems.add(path, f"a gift card load is a line giftcard:<number> ({GIFT_CARD_CATEGORY}), quantity 1, full")
    if len({card for card, _ in loads(r.lines)}) != n:
        problems.add(path, "a card is loaded once a sale")
    if r.kind == "sale" and any(t.kind in ("wallet", "giftcard") for t in r.tenders):
        problems.add(path, "stored value and gift cards do not buy gift card value")


def _check_topup(r: TransactionRecord, problems: Problems, path: str) -> None:
    """A top-up sells stored value to its member: one line of it at full price, paid with anything but stored
    value, earning and spending nothing."""
    one = len(r.lines) == 1 and r.lines[0].sku == r.lines[0].category == TOPUP_SKU
    if not one or r.lines[0].quantity != 1 or r.total_discount:
        problems.add(path, f"a top-up is one line of {TOPUP_SKU}, quantity 1, at full price")
    if r.member_id is None or r.version < 2:
        problems.add(path, "a top-up names the member whose stored value it is")
    if any(t.kind == "wallet" for t in r.tenders):
        problems.add(path, "stored value does not buy stored value")
    if r.coupons or r.reservation or r.points_earned or r.points_redeemed or r.growth_earned:
        problems.add(path, "a top-up earns and spends nothing: no coupons, points or growth")


def _check_benefits(r: TransactionRecord, problems: Problems, path: str) -> None:
    """Version 2: the lines' benefits add up to the record's, which say what a sale earns or a refund gives back."""
    sale = r.kind == "sale"
    totals = (
        (r.points_earned, r.growth_earned, r.points_redeemed)
        if sale
        else (r.points_clawback, r.growth_clawback, r.points_returned)
    )
    lines = (sum(x.points for x in r.lines), sum(x.growth for x in r.lines), sum(x.points_spent for x in r.lines))
    if lines != totals:
        what = "earned, growth and spent" if sale else "clawed back, growth taken back and returned"
        problems.add(path, f"the lines' points {what} {lines} do not add up to the record's {totals}")
    other = (
        (r.points_clawback, r.growth_clawback, r.points_returned)
        if sale
        else (r.points_earned, r.growth_earned, r.points_redeemed)
    )
    if any(other):
        problems.add(path, "a sale gives nothing back and a refund earns and spends nothing")
