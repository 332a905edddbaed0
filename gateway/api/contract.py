"""The local API's contract: every request and response as a typed model, in one place.

Validation, the JSON sent back, and the OpenAPI document's ``components``
(``gateway/api/openapi.py``) are all derived from these models, so the
document cannot drift from what the handlers accept and answer.

The models are msgspec ``Struct`` classes, chosen for size on a terminal (2.0 MB of
RSS to import and decode a model, where pydantic 2 takes 12.8 MB; the idle
budget is 60 MB), strictness (no coercion of ``"5"`` to ``5``, unknown keys
refused), speed (decoding and validating in one C pass) and JSON Schema
2020-12 output, which OpenAPI 3.1 speaks. msgspec stops at a body's first
problem; :func:`read` then walks the model's fields to report every problem
at once, as the API always has.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from gateway.errors import BadRequestError
from gateway.sale.basket import BasketState
from protocols.micropay import Outcome
from protocols.records import TransactionRecord
from protocols.refund import RefundOutcome
from protocols.schema import Problems
from protocols.untrusted_json import UntrustedJsonError, read_json

Money = Annotated[int, Meta(ge=0, le=10**10, description="fen")]
Quantity = Annotated[int, Meta(ge=1, le=100_000)]
TxnId = Annotated[str, Meta(pattern="^[0-9a-f-]{36}$")]
Token = Annotated[str, Meta(min_length=1, max_length=1024)]
KEY_PATTERN = "^[A-Za-z0-9_.:-]{8,128}$"
# Digits and what people type between them; that it is a mainland mobile number is checked after
# (``protocols/phone.py``), so the cashier hears "not a mainland mobile number" (code-error), not a schema error.
PHONE_PATTERN = "^[0-9+ ()-]{11,32}$"

M = TypeVar("M", bound=msgspec.Struct)


class Request(msgspec.Struct, forbid_unknown_fields=True):
    """A request body: unknown keys are refused, never ignored."""


class NewLine(Request):
    sku: Annotated[str, Meta(pattern="^[\\x21-\\x7e]{1,64}$")]
    unit_price: Money
    name: Annotated[str, Meta(max_length=200)] = ""
    category: Annotated[str, Meta(max_length=64)] = "general"
    quantity: Quantity = 1
    # A department store's central checkout: the counter the line is sold for (one of ``[terminal] counters``).
    merchant: Annotated[str, Meta(pattern="^[A-Za-z0-9_.:-]{1,64}$")] | None = None


class QuantityChange(Request):
    """A line's quantity, corrected."""

    quantity: Quantity


class MemberIdentification(Request):
    """Exactly one of ``token`` (a member code the customer shows) or ``phone`` (typed by the cashier)."""

    token: Token | None = None
    phone: Annotated[str, Meta(pattern=PHONE_PATTERN, max_length=32)] | None = None


class Joiner(Request):
    """A customer joining at the till (开卡): their phone number, typed by the cashier (hashed at once,
    never stored)."""

    phone: Annotated[str, Meta(pattern=PHONE_PATTERN, max_length=32)]


class CardToBind(Request):
    """Bind a member card to the basket's member. ``number``: typed by the cashier (a weak identity, like a
    UID: nothing on the card was checked). Without it, the last card tapped at this till that no member
    carries, within two minutes, is bound (its certificate checked when it has one). ``code``: the member's
    own code from the app, scanned now: the ledger's proof the member is here, needed unless the member was
    attached with their code."""

    number: Annotated[str, Meta(pattern="^[0-9]{6,19}$")] | None = None
    code: Token | None = None


class TopUp(Request):
    """Sell the basket's member stored value (充值): ``amount`` in fen; the basket must be empty."""

    amount: Annotated[int, Meta(ge=1, le=10**9)]


class TierPurchase(Request):
    """Sell the basket's member a paid tier (a black-gold card): its name in the rulebook; the basket must be
    empty."""

    tier: Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{1,32}$")]


class OrderCollection(Request):
    """Hand over a points mall order: the member's own code from the app (``PM1.``/``PW1.``), scanned now."""

    code: Token


class GiftCardLoad(Request):
    """Load a gift card on the basket: its ``code`` (the ``GC1.`` QR on it) or its typed ``number`` (online
    only), and the ``amount`` in fen."""

    amount: Annotated[int, Meta(ge=1, le=10**9)]
    code: Token | None = None
    number: Annotated[str, Meta(pattern="^GC[0-9]{12}$")] | None = None


class GiftCardAsked(Request):
    """A gift card to look up: its ``code`` or its ``number``."""

    code: Token | None = None
    number: Annotated[str, Meta(pattern="^GC[0-9]{12}$")] | None = None


class CouponToken(Request):
    token: Token


class PromoCode(Request):
    """A promo code the customer shows (typed: case and spaces do not matter; scanned: ``PR1.<code>``)."""

    code: Annotated[str, Meta(min_length=1, max_length=40)]


class PointsToSpend(Request):
    points: Annotated[int, Meta(ge=0, le=10**9)]


class PaymentRequest(Request):
    """Exactly one of ``code`` (a scanned payment code) or ``method: "card"`` (the card terminal)."""

    code: Annotated[str, Meta(pattern="^[\\x21-\\x7e]{1,1024}$")] | None = None
    method: Literal["card"] | None = None
    amount: Annotated[int, Meta(ge=1, le=10**10, description="fen; default: all that is left")] | None = None


class CashTender(Request):
    kind: Literal["cash"]
    amount: Money


class Completion(Request):
    tenders: Annotated[list[CashTender], Meta(max_length=20)] = []
    receipt_phone: Annotated[str, Meta(pattern="^1[3-9][0-9]{9}$")] | None = None


class RefundLine(Request):
    line: Annotated[int, Meta(ge=1, le=500)]
    quantity: Quantity


StaffId = Annotated[str, Meta(pattern="^[A-Za-z0-9_.-]{1,32}$")]
Pin = Annotated[str, Meta(pattern="^[0-9]{4,8}$")]


class Approval(Request):
    """A supervisor's staff id and PIN, typed at the till for an act the policy makes them approve."""

    staff_id: StaffId
    pin: Pin


class RefundRequest(Request):
    """``lines`` absent: all that is left of the sale. A top-up is given back (all that is left of it that the
    member still holds as their own money) with ``code``: the member's wallet pay code, scanned now.
    ``approval``: a supervisor's, where the till holds staff and the refund is above the policy's amount."""

    txn_id: TxnId
    lines: Annotated[list[RefundLine], Meta(max_length=500)] | None = None
    code: Token | None = None
    approval: Approval | None = None


class VoidRequest(Request):
    """``approval``: a supervisor's, where the till holds staff (a cashier who is one approves their own)."""

    txn_id: TxnId
    approval: Approval | None = None


class TypedCode(Request):
    data: Annotated[str, Meta(pattern="^[\\x20-\\x7e]{1,1024}$")]


class Response(msgspec.Struct):
    """An answer body."""


class Health(Response):
    status: Literal["ok"]


class Check(Response):
    name: str
    ok: bool
    critical: bool
    reason: str | None


class Readiness(Response):
    ready: bool
    checks: list[Check]


class MemberView(Response):
    member_id: str
    tier: str
    via: str
    weak: bool


class PricedLineView(Response):
    line_id: int
    sku: str
    name: str
    category: str
    quantity: int
    unit_price: int
    gross: int
    rate: Annotated[int, Meta(description="the tier rate applied, basis points (10000 = none)")]
    discount: int
    tier_discount: int
    coupon_discount: int
    offset: Annotated[int, Meta(description="fen paid with points")]
    net: int
    promotion_discount: int = 0
    merchant: str | None = None  # a central checkout: the counter the line is sold for


class PromotionView(Response):
    """A promotion that gave this basket something: member price, bundle or 满减."""

    promotion_id: str
    name: str
    amount: int


class CouponView(Response):
    coupon_id: str
    name: str
    applied: bool


class PaymentView(Response):
    payment_id: str
    wallet: str
    code_hint: str
    amount: int
    state: Annotated[str, Meta(extra_json_schema={"enum": [*Outcome, *RefundOutcome]})]
    message: str
    history: list[str]
    txn_id: str | None


class BasketView(Response):
    basket_id: str
    state: BasketState
    member: MemberView | None
    lines: list[PricedLineView]
    total_gross: int
    total_discount: int
    total_due: int
    total_tier_discount: int
    total_coupon_discount: int
    total_offset: int
    points_earned: int
    growth_earned: int
    points_redeemed: int
    points_available: int
    coupons: list[CouponView]
    breakdown: list[str]
    notices: list[str]
    rulebook_version: int
    txn_id: str | None
    payments: list[PaymentView]
    left_to_pay: int
    # A top-up basket: the stored value it sells, and the bonus the rulebook gives it (credited by the ledger
    # when it accepts the top-up, the bonus as a grant that lapses).
    topup: int | None = None
    topup_bonus: int = 0
    membership: Annotated[str | None, Meta(description="the paid tier this basket sells")] = None
    total_promotion_discount: int = 0
    promotions: list[PromotionView] = msgspec.field(default_factory=list)
    promo_codes: list[str] = msgspec.field(default_factory=list)


class PaymentTaken(Response):
    payment: PaymentView
    basket: BasketView


class OrderHandedOver(Response):
    """A points mall order as the ledger has it after the hand-over: its held points are taken."""

    order_id: str
    member_id: str
    item_id: str
    quantity: int
    points: int
    state: Literal["placed", "fulfilled", "cancelled"]


class GiftCardView(Response):
    """A gift card as the ledger has it now."""

    number: str
    state: Literal["stock", "active", "expired"]
    balance: int
    available: Annotated[int, Meta(description="what it may still pay: the balance less live holds")]
    expires_on: str | None


class CardBound(Response):
    member_id: str
    identifier: str
    bound: Literal["now", "already"]
    weak: bool


class Joined(Response):
    """A customer enrolled here: the member this till made for them, in the joining tier. ``offline``: the
    ledger hears of them when it is back (and merges them into the member who carries the number, if any)."""

    member_id: str
    tier: str
    offline: bool


class BonusLeft(Response):
    remaining: int  # fen of a top-up bonus still to spend
    expires_on: str  # the mall's business day it lapses on


class WalletMove(Response):
    amount: int  # fen, + in, - out
    kind: str  # topup, bonus, pay, refund, topup-refund, bonus-back, expiry, opening, merge, overdraft
    at: str  # when its record was made ('' for the ledger's own: opening, expiry)
    terminal_id: str  # the till that made it ('-' for the ledger's own)


class WalletStatement(Response):
    """The stored value of the basket's member as the ledger holds it now (they showed their code)."""

    member_id: str
    balance: int
    bonus: list[BonusLeft]
    history: list[WalletMove]  # the latest, newest first


class Sale(Response):
    """A sale, refund or void as journaled (the signed record), and whether this answer repeats an earlier one."""

    replayed: bool
    record: TransactionRecord


class DeviceView(Response):
    device: str
    state: str
    error: str | None
    retry_in: float | None


class JournalView(Response):
    total: int
    pending: int
    pending_amount: dict[str, int]
    oldest_pending: str | None
    last_seq: int
    rejected: int
    last_synced_at: str | None
    file_bytes: int
    key_ids: list[str]
    quarantined: int
    limits_breached: list[str]


class LedgerView(Response):
    online: bool
    last_sync: str | None
    last_error: str | None
    synced_total: int
    rejected_total: int
    integrity_error: str | None


class MqttView(Response):
    connected: bool
    last_error: str | None


class Unresolved(Response):
    payment_id: str
    wallet: str
    reason: str


class PaymentsView(Response):
    running: int
    resolved_after_restart: list[PaymentView]
    unresolved: list[Unresolved]
    attention: list[PaymentView]


class Status(Response):
    terminal_id: str
    version: str
    draining: bool
    devices: list[DeviceView]
    journal: JournalView
    ledger: LedgerView
    rulebook_version: int
    members_cached: int
    checks: list[Check]  # every named check (gateway/ops/health.py), ok or with its reason
    active_basket: str | None
    mqtt: MqttView | None
    payments: PaymentsView


class StatusPage(Status):
    """What ``/status/ws`` pushes: the status and the last few problems."""

    recent_errors: list[str]


class EventTicket(Response):
    """Opens one ``/v1/events?ticket=…`` WebSocket within ``expires_in`` seconds (a browser sets no header on one)."""

    ticket: str
    expires_in: float


class Problem(Response):
    """RFC 9457: every error the API answers."""

    type: Annotated[str, Meta(description="urn:posgw:problem:<code>; docs/api.md lists the codes")]
    title: str
    status: int
    detail: str
    retryable: bool | None = None
    problems: list[str] | None = None


def read(raw: bytes, model: type[M], what: str) -> M:
    """The body as ``model``; every problem in it at once (422), or 400 when it is not JSON at all."""
    raw = raw or b"{}"  # no body: an empty object, whose missing keys are told
    try:
        try:
            return msgspec.json.decode(raw, type=model)
        except msgspec.ValidationError:
            # Told below, every problem at once, from what the one reader of untrusted JSON makes of it
            # (which also refuses a key given twice: msgspec judged the first, a plain parse keeps the last).
            data = read_json(raw, f"the {what} body", max_bytes=len(raw))
    except msgspec.DecodeError as err:  # not JSON, or not UTF-8 (a lone surrogate escape too)
        raise BadRequestError(f"the {what} body is not valid JSON: {err}") from err
    except RecursionError as err:  # msgspec's own depth guard: no body of ours nests past a few levels
        raise BadRequestError(f"the {what} body is nested too deep") from err
    except UntrustedJsonError as err:
        raise BadRequestError(str(err)) from err
    problems = Problems(what)
    for path, message in problems_in(data, model, ""):
        problems.add(path, message)
    problems.raise_if_any()
    # The contract refused it and no field can be named: still the client's body, never a 500.
    raise BadRequestError(f"the {what} body does not match the contract (docs/api.md)")


def problems_in(data: Any, model: type[msgspec.Struct], at: str) -> list[tuple[str, str]]:
    """Every way ``data`` misses ``model``: a missing or unknown key, and each field's own problem."""
    if not isinstance(data, dict):
        return [(at.rstrip(".") or "body", "expected an object")]
    found: list[tuple[str, str]] = []
    hints = typing.get_type_hints(model, include_extras=True)
    for name in model.__struct_fields__:
        path = f"{at}{name}"
        if name not in data:
            if model.__struct_fields__.index(name) < _required_count(model):
                found.append((path, "required"))
            continue
        value = data[name]
        try:
            msgspec.convert(value, type=hints[name], strict=True)
        except msgspec.ValidationError as err:
            item = _items_model(hints[name])
            inside = []
            if item is not None and isinstance(value, list):
                inside = [p for i, v in enumerate(value) for p in problems_in(v, item, f"{path}[{i}].")]
            told = _plain(str(err))  # "expected int >= 1", or "expected int, got str"
            got = "" if repr(value) in told else f" {_short(value)}" if ", got " in told else f", got {_short(value)}"
            found.extend(inside[:_MAX_TOLD] or [(path, told + got)])
    found.extend((f"{at}{key}", "unknown key") for key in data if key not in model.__struct_fields__)
    return found


_MAX_TOLD = 20  # problems inside one list: enough to fix a body, not a flood


def _required_count(model: type[msgspec.Struct]) -> int:
    return len(model.__struct_fields__) - len(model.__struct_defaults__)


def _items_model(hint: Any) -> type[msgspec.Struct] | None:
    """The struct a list field holds (``list[X]``, annotated or optional), if any."""
    while True:
        origin = typing.get_origin(hint)
        if origin is Annotated:
            hint = typing.get_args(hint)[0]
        elif origin in (typing.Union, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        elif origin is list:
            item = typing.get_args(hint)[0]
            return item if isinstance(item, type) and issubclass(item, msgspec.Struct) else None
        else:
            return None


def _plain(message: str) -> str:
    """msgspec's "Expected `int` >= 1" as "expected int >= 1"."""
    return message[:1].lower() + message[1:].replace("`", "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
