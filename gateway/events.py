"""What happens at the till, as typed events, and their fan-out to the POS application's WebSocket connections.

Every event is a frozen dataclass with one ``to_wire()``: the WebSocket, the
status page and the metrics consume the types, and the AsyncAPI document of
``/v1/events`` is generated from them (``gateway/api/asyncapi.py``).
A field marked ``SENT_WHEN_SET`` is left out of the wire form while it is
``None`` (it says what happened, when it did); every other field is always sent.

Each subscriber has a bounded queue. A subscriber that stops reading is cut
off (its queue closed with an ``overflow`` event) rather than letting memory
grow or slowing the till; the POS app reconnects and re-reads the basket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from protocols.errors import RetryableError

QUEUE_SIZE = 1000
MAX_SUBSCRIBERS = 32  # the POS app's event streams at once: a flood gets a clear refusal, memory stays bounded
MAX_STATUS_SUBSCRIBERS = 4  # status pages at once, counted apart: they can never take the POS app's streams
STREAM_CAPS = {"pos": MAX_SUBSCRIBERS, "status": MAX_STATUS_SUBSCRIBERS}
Wire = dict[str, Any]


class TooManySubscribersError(RetryableError):
    """Every event stream slot is taken."""

    code = "too-many-streams"


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """A refusal the cashier can act on: the problem type's code and a sentence."""

    code: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberSeen:
    """A member identified at the till (never a name or a number: the id and tier only)."""

    member_id: str
    tier: str
    via: str
    weak: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """The base of every event: its wire ``type`` and when it happened (Unix seconds)."""

    type: ClassVar[str]
    at: float = field(default_factory=time.time)

    def to_wire(self) -> Wire:
        wire: Wire = {"type": self.type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            wire[f.name] = _wire(value)
        return wire


def _wire(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    return value


# A field sent only when it has a value: ``field(default=None, metadata=SENT_WHEN_SET)``.
SENT_WHEN_SET = MappingProxyType({"omit_none": True})


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSeen(Event):
    """A code scanned or typed; a member code also says who (or why not), a payment code is never echoed."""

    type: ClassVar[str] = "scan"
    device: str
    kind: str
    data: str | None
    detail: str | None
    symbology: str | None
    problem: str | None
    scanned_at: float | None
    basket_id: str | None = None
    member: MemberSeen | None = field(default=None, metadata=SENT_WHEN_SET)
    member_error: Refusal | None = field(default=None, metadata=SENT_WHEN_SET)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanNotUnderstood(Event):
    type: ClassVar[str] = "scan_rejected"
    device: str
    reason: str
    length: int
    message: str = "scan not understood, please scan again"


@dataclass(frozen=True, slots=True, kw_only=True)
class CardRead(Event):
    """A card put on, taken off, or failed on a reader; a verified card says who, a refused one why."""

    type: ClassVar[str] = "card"
    device: str
    reader: str
    kind: str
    pcsc_ms: float
    read_at: float
    basket_id: str | None = None
    member: MemberSeen | None = field(default=None, metadata=SENT_WHEN_SET)
    card_error: Refusal | None = field(default=None, metadata=SENT_WHEN_SET)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderChanged(Event):
    type: ClassVar[str] = "reader"
    device: str
    reader: str
    present: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceChanged(Event):
    """A device's state (UnifiedPOS: closed, opening, idle, busy, error; retrying while it is reopened)."""

    type: ClassVar[str] = "device"
    device: str
    state: str
    error: str | None
    retry_in: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BasketChanged(Event):
    """A basket started, changed or ended: what changed is the field that is set."""

    type: ClassVar[str] = "basket"
    basket_id: str
    state: str | None = field(default=None, metadata=SENT_WHEN_SET)
    lines: int | None = field(default=None, metadata=SENT_WHEN_SET)
    member_id: str | None = field(default=None, metadata=SENT_WHEN_SET)
    tier: str | None = field(default=None, metadata=SENT_WHEN_SET)
    coupon: str | None = field(default=None, metadata=SENT_WHEN_SET)
    promotion: str | None = field(default=None, metadata=SENT_WHEN_SET)  # a promo code unlocked it
    # A correction: what was taken off or changed ("line 3", "line 3 quantity 2", "member", "coupon C-…").
    corrected: str | None = field(default=None, metadata=SENT_WHEN_SET)


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentStep(Event):
    """A payment's progress: each provider call (``step`` + ``answer``), then its ``outcome`` and the message."""

    type: ClassVar[str] = "payment"
    basket_id: str
    payment_id: str
    wallet: str
    amount: int
    step: str | None = field(default=None, metadata=SENT_WHEN_SET)
    answer: str | None = field(default=None, metadata=SENT_WHEN_SET)
    outcome: str | None = field(default=None, metadata=SENT_WHEN_SET)
    message: str | None = field(default=None, metadata=SENT_WHEN_SET)


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRefused(Event):
    """A scanned payment code that could not start a payment (no basket, not a code this till takes…)."""

    type: ClassVar[str] = "payment"
    error: Refusal
    basket_id: str | None = field(default=None, metadata=SENT_WHEN_SET)


@dataclass(frozen=True, slots=True, kw_only=True)
class CouponHeld(Event):
    type: ClassVar[str] = "coupon"
    basket_id: str
    coupon_id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CouponRefused(Event):
    type: ClassVar[str] = "coupon"
    error: Refusal
    basket_id: str | None = field(default=None, metadata=SENT_WHEN_SET)


@dataclass(frozen=True, slots=True, kw_only=True)
class SaleRecorded(Event):
    type: ClassVar[str] = "sale"
    basket_id: str
    txn_id: str
    seq: int
    total_due: int
    points_earned: int
    offline: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundRecorded(Event):
    type: ClassVar[str] = "refund"
    txn_id: str
    refund_of: str
    total_due: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PrinterChanged(Event):
    """The receipt printer's state: paper, cover, the cash drawer; ``problem`` says what stops it printing."""

    type: ClassVar[str] = "printer"
    device: str
    paper_out: bool
    cover_open: bool
    drawer_open: bool
    problem: str | None = field(default=None, metadata=SENT_WHEN_SET)


@dataclass(frozen=True, slots=True, kw_only=True)
class CashierChanged(Event):
    """A cashier signed in (``staff_id`` and ``role``) or out (``staff_id`` null)."""

    type: ClassVar[str] = "cashier"
    staff_id: str | None
    role: str | None = field(default=None, metadata=SENT_WHEN_SET)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShiftChanged(Event):
    """A shift opened or closed (``state``), with the seq of its record; a close says the over/short."""

    type: ClassVar[str] = "shift"
    shift: str
    state: str
    seq: int
    over_short: int | None = field(default=None, metadata=SENT_WHEN_SET)


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerStatus(Event):
    """The ledger came into or went out of reach (``error``), or a sync round ended (``synced``, ``rejected``)."""

    type: ClassVar[str] = "sync"
    online: bool
    error: str | None = field(default=None, metadata=SENT_WHEN_SET)
    synced: int | None = field(default=None, metadata=SENT_WHEN_SET)
    rejected: int | None = field(default=None, metadata=SENT_WHEN_SET)


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalStatus(Event):
    """What waits to be synced, after each sale and sync round."""

    type: ClassVar[str] = "journal"
    pending: int
    pending_amount: dict[str, int]
    oldest_pending: str | None
    last_seq: int
    last_synced_at: str | None
    online: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert(Event):
    """Something store IT must know (``docs/api.md`` lists the codes)."""

    type: ClassVar[str] = "alert"
    code: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Overflow(Event):
    """The client read too slowly and is cut off; it reconnects and re-reads the basket."""

    type: ClassVar[str] = "overflow"


# Every event the till publishes, for the AsyncAPI document and its test.
EVENT_TYPES: tuple[type[Event], ...] = (
    ScanSeen,
    ScanNotUnderstood,
    CardRead,
    ReaderChanged,
    DeviceChanged,
    BasketChanged,
    PaymentStep,
    PaymentRefused,
    CouponHeld,
    CouponRefused,
    SaleRecorded,
    RefundRecorded,
    CashierChanged,
    ShiftChanged,
    PrinterChanged,
    LedgerStatus,
    JournalStatus,
    Alert,
    Overflow,
)


class EventHub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        self._kinds: dict[asyncio.Queue[Event | None], str] = {}  # which cap each stream counts against
        # Called with every event, in the publisher's call (metrics): must be quick and never raise.
        self.listeners: list[Callable[[Event], None]] = []

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)
        for queue in list(self._subscribers):
            if queue.qsize() >= QUEUE_SIZE:
                self._subscribers.discard(queue)
                queue.put_nowait(Overflow())
                queue.put_nowait(None)
            else:
                queue.put_nowait(event)

    def check_room(self, kind: str = "pos") -> None:
        """Refuse a stream of ``kind`` ("pos": the POS app's, "status": a status page's) past its own cap."""
        cap = STREAM_CAPS[kind]
        if sum(1 for q in self._subscribers if self._kinds.get(q) == kind) >= cap:
            raise TooManySubscribersError(
                f"{cap} {kind} event streams are open already; close one (or reconnect later)"
            )

    @asynccontextmanager
    async def subscribe(self, kind: str = "pos") -> AsyncIterator[asyncio.Queue[Event | None]]:
        self.check_room(kind)
        queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE + 2)
        self._subscribers.add(queue)
        self._kinds[queue] = kind
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
            self._kinds.pop(queue, None)

    def close(self) -> None:
        """Tell every subscriber the stream has ended."""
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        self._subscribers.clear()
