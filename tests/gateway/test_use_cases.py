"""The sale's use cases, each built from in-memory fakes of its collaborators: no process, no socket, no file."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from drivers.events import CardEvent, CardEventKind
from gateway.config import TerminalConfig
from gateway.devices.cards import CardRouter
from gateway.devices.scans import ScanRouter
from gateway.errors import (
    ConflictError,
    DrainingError,
    LedgerRefusedError,
    PointsRefusedError,
    RiskLimitError,
    RulesUnavailableError,
    TenderError,
)
from gateway.events import EventHub
from gateway.ledger_link.link import LedgerLink
from gateway.members.directory import MemberDirectory
from gateway.members.identify import Identification
from gateway.members.match import MemberMatch
from gateway.members.points import PointsSpending
from gateway.sale.basket import Basket, BasketState, BasketStore
from gateway.sale.building import Building
from gateway.sale.completion import Completion
from gateway.sale.intake import Intake
from gateway.sale.paying import Paying
from gateway.sale.pricing import Pricer
from offline_queue.payments import PaymentIntent
from protocols.micropay import Outcome
from protocols.records import Tender, TransactionRecord
from protocols.rulebook import MemberEntry

NOON = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
ALICE = MemberEntry("M1", "gold", points=5_000)


class FakeJournal:
    """What the use cases ask of the journal, kept in dicts."""

    def __init__(self) -> None:
        self.records: dict[str, TransactionRecord] = {}
        self.keys: dict[tuple[str, str], str] = {}
        self.used_codes: set[str] = set()
        self.redeemed: dict[str, str] = {}
        self.spent_since = 0

    async def replay(self, idempotency_key: str, fingerprint: str) -> TransactionRecord | None:
        txn = self.keys.get((idempotency_key, fingerprint))
        return None if txn is None else self.records[txn]

    async def get(self, txn_id: str) -> TransactionRecord | None:
        return self.records.get(txn_id)

    async def append(
        self,
        draft: TransactionRecord,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        personal: dict[str, str] | None = None,
        member_code: str | None = None,
        payments: tuple[str, ...] = (),
    ) -> tuple[TransactionRecord, bool]:
        record = dataclasses.replace(draft, seq=len(self.records) + 1)
        self.records[record.txn_id] = record
        if idempotency_key:
            self.keys[(idempotency_key, fingerprint)] = record.txn_id
        if member_code:
            self.used_codes.add(member_code)
        return record, False

    async def member_code_used(self, nonce: str) -> bool:
        return nonce in self.used_codes

    async def coupon_redeemed(self, instance: str) -> str | None:
        return self.redeemed.get(instance)

    async def points_spent_since(self, member_id: str, since: str) -> int:
        return self.spent_since

    async def offline_spending(self, member_id: str) -> tuple[int, int]:
        return 0, 0


class FakeLedger:
    """The ledger's answers: points holds granted or refused, identifiers unknown."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.held: list[tuple[str, int]] = []
        self.released: list[str] = []

    async def reserve_points(self, member_id: str, points: int, txn_id: str, terminal_id: str) -> str:
        if self.refuse:
            raise LedgerRefusedError("not enough points")
        self.held.append((member_id, points))
        return f"hold-{len(self.held)}"

    async def release_points(self, reservation: str) -> None:
        self.released.append(reservation)

    async def lookup_identifier(self, identifier: str) -> MemberEntry | None:
        return None


class FakeReports:
    def __init__(self) -> None:
        self.reports = 0

    def report_soon(self) -> None:
        self.reports += 1


class FakeDesk:
    """A payment desk whose provider answers at once: paid, or declined."""

    def __init__(self, answer: Outcome = Outcome.PAID) -> None:
        self.answer = answer
        self.intents: dict[str, PaymentIntent] = {}
        self.given_back: list[str] = []

    async def earlier(
        self, basket_id: str, key: str, code: str | None = None, amount: int | None = None
    ) -> PaymentIntent | None:
        return self.intents.get(key)

    def route(self, code: str | None) -> tuple[str, object]:
        return ("wallet" if code and code.startswith("PW1.") else "wechat" if code else "card"), None

    async def begin(self, basket_id: str, left: int, code: str | None, amount: int | None, key: str) -> PaymentIntent:
        if left <= 0:
            raise ConflictError("nothing is left to pay on this basket")
        wallet = "wechat" if code else "card"
        intent = PaymentIntent(
            f"P{len(self.intents) + 1}",
            basket_id,
            key,
            wallet,
            wallet,
            "",
            amount or left,
            "CNY",
            Outcome.PENDING,
            (),
            "",
            "",
        )
        self.intents[key] = intent
        return intent

    async def outcome(self, intent: PaymentIntent) -> PaymentIntent:
        return dataclasses.replace(intent, state=self.answer)

    async def give_back_held(self, intent: PaymentIntent) -> PaymentIntent:
        self.given_back.append(intent.payment_id)
        return dataclasses.replace(intent, state=Outcome.REVERSED)


@dataclasses.dataclass
class Till:
    hub: EventHub
    events: list[dict[str, Any]]
    link: LedgerLink
    journal: FakeJournal
    ledger: FakeLedger
    reports: FakeReports
    desk: FakeDesk
    intake: Intake
    baskets: BasketStore
    building: Building
    paying: Paying
    completion: Completion
    scans: ScanRouter
    points: PointsSpending


def till(*, online: bool = True, refuse_points: bool = False, desk_answer: Outcome = Outcome.PAID) -> Till:
    hub = EventHub()
    events: list[dict[str, Any]] = []
    hub.listeners.append(lambda event: events.append(event.to_wire()))
    now = NOON.timestamp()
    link = LedgerLink(hub, clock=lambda: now)
    if online:
        link.set_online(True)
    journal, ledger, reports, desk = FakeJournal(), FakeLedger(refuse_points), FakeReports(), FakeDesk(desk_answer)
    directory = MemberDirectory()
    intake, baskets = Intake(), BasketStore()
    pricer = Pricer(directory, "M-SHOP", clock=lambda: NOON)
    identification = Identification(directory, ledger, journal, leeway=0, clock=lambda: now)
    points = PointsSpending("T-1", directory, journal, link, ledger)
    building = Building(baskets, intake, directory, journal, points, hub, leeway=0, clock=lambda: now)
    paying = Paying(desk, pricer, identification, building, intake, hub)
    terminal = TerminalConfig("T-1", "S-1", "M-SHOP")
    completion = Completion(terminal, journal, pricer, identification, points, link, reports, ledger, intake, hub)
    scans = ScanRouter(baskets, building, identification, paying, hub)
    return Till(
        hub, events, link, journal, ledger, reports, desk, intake, baskets, building, paying, completion, scans, points
    )


def basket_with_line(t: Till, price: int = 10_000) -> Basket:
    basket = t.building.new_basket()
    t.building.add_line(basket, "6901234567892", "tea", "food", 1, price)
    return basket


def test_a_new_basket_is_announced_and_refused_while_draining() -> None:
    t = till()
    basket = basket_with_line(t)
    assert [e["type"] for e in t.events[-2:]] == ["basket", "basket"]
    assert t.baskets.active() is basket
    t.intake.draining = True
    with pytest.raises(DrainingError):
        t.building.new_basket()


def test_a_member_identified_before_the_basket_is_attached_when_it_starts() -> None:
    t = till()
    basket = t.building.new_basket(MemberMatch(ALICE, "qr"))
    assert basket.member is not None
    assert basket.member.member.member_id == "M1"
    assert t.events[-1]["member_id"] == "M1"


async def test_a_cash_sale_is_journaled_once_and_a_retry_gets_the_same_record() -> None:
    t = till()
    basket = basket_with_line(t)
    sale = await t.completion.complete(basket, [Tender("cash", 20_000)], "key-00000001")
    assert (sale.record.total_due, sale.record.change, sale.record.seq, sale.replayed) == (10_000, 10_000, 1, False)
    assert sale.record.created_at == "2026-12-02T04:00:00.000Z"  # the injected clock
    assert basket.state is BasketState.COMPLETED
    assert basket.txn_id == sale.record.txn_id
    assert t.reports.reports == 1
    await asyncio.wait_for(t.link.wait_for_records(30), 1)  # the sync worker was rung at once
    again = await t.completion.complete(basket, [Tender("cash", 20_000)], "key-00000001")
    assert (again.record.txn_id, again.replayed, len(t.journal.records)) == (sale.record.txn_id, True, 1)
    with pytest.raises(ConflictError, match="already completed"):
        await t.completion.complete(basket, [Tender("cash", 20_000)], "key-00000002")


async def test_too_little_tendered_is_refused_and_nothing_is_journaled() -> None:
    t = till()
    basket = basket_with_line(t)
    with pytest.raises(TenderError, match="less than"):
        await t.completion.complete(basket, [Tender("cash", 9_999)], "key-00000001")
    assert t.journal.records == {}
    assert basket.state is BasketState.OPEN


async def test_a_paid_payment_freezes_the_basket_and_counts_as_a_tender() -> None:
    t = till()
    basket = basket_with_line(t)
    intent, replayed = await t.paying.pay(basket, "134567890123456789", None, "pay-00000001")
    assert (intent.state, intent.amount, replayed) == ("paid", 10_000, False)
    assert basket.left_to_pay(10_000) == 0
    with pytest.raises(ConflictError, match="a payment was taken"):
        t.building.add_line(basket, "X", "more", "food", 1, 100)
    again, replayed = await t.paying.pay(basket, "134567890123456789", None, "pay-00000001")
    assert (again.payment_id, replayed, len(basket.payments)) == (intent.payment_id, True, 1)
    sale = await t.completion.complete(basket, [], "key-00000001")
    assert [(x.kind, x.amount) for x in sale.record.tenders] == [("wechat", 10_000)]


async def test_cancelling_gives_every_held_payment_back_and_is_done_once() -> None:
    t = till()
    basket = basket_with_line(t)
    await t.paying.pay(basket, None, 4_000, "pay-00000001")
    payments = await t.paying.cancel(basket)
    assert t.desk.given_back == ["P1"]
    assert [p.state for p in payments] == ["reversed"]
    assert basket.state is BasketState.CANCELLED
    assert t.events[-1]["state"] == "cancelled"
    with pytest.raises(ConflictError, match="cannot be cancelled"):
        await t.paying.cancel(basket)
    with pytest.raises(ConflictError, match="no payment can be taken"):
        await t.paying.pay(basket, None, None, "pay-00000002")


async def test_a_declined_payment_leaves_the_basket_open_to_change() -> None:
    t = till(desk_answer=Outcome.DECLINED)
    basket = basket_with_line(t)
    intent, _ = await t.paying.pay(basket, None, None, "pay-00000001")
    assert intent.state == "declined"
    assert basket.payments_held() == []
    t.building.add_line(basket, "X", "more", "food", 1, 100)  # still open


async def test_points_online_are_held_at_the_ledger_and_refused_when_it_says_no() -> None:
    t = till()
    match = MemberMatch(ALICE, "qr")
    assert await t.points.check_spend(match, 1_000) == 5_000
    assert await t.points.reserve("M1", 1_000, "txn") == "hold-1"
    refused = till(refuse_points=True)
    with pytest.raises(PointsRefusedError, match="not enough points"):
        await refused.points.reserve("M1", 1_000, "txn")
    with pytest.raises(ConflictError, match="UID alone"):
        await t.points.check_spend(MemberMatch(ALICE, "card-uid", weak=True), 1)
    with pytest.raises(ConflictError, match="identify the member"):
        await t.points.check_spend(None, 1)


async def test_offline_with_no_ledger_contact_ever_no_points_are_spent() -> None:
    t = till(online=False)
    with pytest.raises(RiskLimitError, match="out of reach"):
        await t.points.reserve("M1", 100, "txn")
    assert t.ledger.held == []


async def test_a_phone_number_cannot_be_looked_up_before_the_first_rulebook() -> None:
    t = till()
    with pytest.raises(RulesUnavailableError):
        await t.completion.identification.by_phone("13800138000")


async def test_a_product_scan_is_published_and_a_payment_scan_without_a_basket_is_refused() -> None:
    t = till()
    result = await t.scans.handle("scanner-1", "6901234567892")
    assert (result.kind, result.data) == ("product", "6901234567892")
    await t.scans.handle("scanner-1", "134567890123456789")
    await asyncio.sleep(0)  # the payment runs beside the scan
    await asyncio.sleep(0)
    payment = [e for e in t.events if e["type"] == "payment"][-1]
    assert payment["error"]["code"] == "no-basket"
    scan = [e for e in t.events if e["type"] == "scan"][-1]
    assert scan["data"] is None  # a payment code is never echoed


async def test_a_card_that_could_not_be_read_is_told_and_attaches_nobody() -> None:
    t = till()
    basket = basket_with_line(t)
    cards = CardRouter(t.completion.identification, t.completion.pricer, t.scans, t.hub)
    failed = CardEvent("reader", "R1", CardEventKind.ERROR, 1.0, error="card removed too soon", error_code="card-io")
    read = await cards.handle(failed)
    assert read.card_error is not None
    assert (read.card_error.code, read.member) == ("card-io", None)
    assert basket.member is None
    removed = await cards.handle(CardEvent("reader", "R1", CardEventKind.REMOVED, 2.0))
    assert (removed.card_error, removed.member) == (None, None)
    assert t.events[-1]["type"] == "card"
