"""Customers who join at a till: a signed ``join`` record makes the member the till named, who earns from the
first sale on; someone who was a member already is merged, not made twice; a till makes no member it may not."""

from __future__ import annotations

import dataclasses
import json

import aiohttp
import pytest

from offline_queue.ids import uuid7
from protocols.phone import phone_identifier
from protocols.records import RECORD_VERSION, TransactionRecord, joined_member_id
from protocols.rulebook import MemberEntry, Rulebook
from protocols.tokens import b64url_decode
from tests.harness import LedgerHandle, TestTerminal, ledger_cli
from tests.ledger.test_hostile_terminal import honest_sale, now

pytestmark = [pytest.mark.ledger]


def join(book: Rulebook, terminal_id: str, n: int, phone: str, **changes: object) -> TransactionRecord:
    """A join as a genuine till records it."""
    record = TransactionRecord(
        str(uuid7()), terminal_id, 0, "join", now(), "S-1", "M-BAKERY", "CNY", (), 0, 0, 0, (), 0,
        joined_member_id(terminal_id, n), "phone", 0, book.version, True, version=RECORD_VERSION,
        member_tier=book.joining_tier, joined=phone_identifier(phone, b64url_decode(book.phone_salt)),
    )  # fmt: skip
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


async def exists(ledger: LedgerHandle, member_id: str) -> bool:
    try:
        await ledger.account(member_id)
    except aiohttp.ClientResponseError as err:
        if err.status == 404:
            return False
        raise
    return True


@pytest.fixture
async def till(ledger: LedgerHandle) -> TestTerminal:
    return await ledger.terminal("T-JOIN", store="S-1", merchant="M-BAKERY")


async def test_a_customer_who_joins_earns_from_the_first_sale_and_every_till_learns_them(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book = await ledger.rulebook()
    joined = join(book, "T-JOIN", 1, "13912345678")
    member = MemberEntry(joined.member_id or "", book.joining_tier)
    sale = dataclasses.replace(honest_sale(book, member, 250_00), member_via="phone")
    results = await till.send(joined, sale)
    assert [r.status for r in results] == ["accepted", "accepted"], results
    account = await ledger.account("J-T-JOIN-1")
    assert account["tier"] == book.joining_tier
    assert account["points"] == sale.points_earned > 0
    other = await ledger.terminal("T-OTHER", store="S-1", merchant="M-BAKERY")
    status, found = await other.call("GET", f"/v1/identifiers/{joined.joined}")
    assert (status, found["member_id"]) == (200, "J-T-JOIN-1")
    trail = ledger_cli("audit", *ledger.store_args())
    assert "terminal:T-JOIN" in trail.stdout
    assert "join" in trail.stdout
    assert await ledger.books_problems() == []


async def test_someone_already_a_member_is_merged_and_keeps_what_they_earn(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    """Two tills enrolled one person offline, or the cashier never looked the number up: one member, and every
    sale naming the till's member moves theirs."""
    book = await ledger.rulebook()
    before = await ledger.points("M0001")
    joined = join(book, "T-JOIN", 2, "13800000001")  # M0001's number
    member = MemberEntry(joined.member_id or "", book.joining_tier)
    first, later = honest_sale(book, member, 300_00), honest_sale(book, member, 120_00)
    results = await till.send(joined, first)
    assert [r.status for r in results] == ["accepted", "accepted"], results
    results = await till.send(later)  # a later batch, before the till's cache learnt
    assert [r.status for r in results] == ["accepted"], results
    assert await ledger.points("M0001") == before + first.points_earned + later.points_earned
    assert not await exists(ledger, "J-T-JOIN-2")  # never made twice
    trail = ledger_cli("audit", *ledger.store_args())
    assert "join-merged" in trail.stdout
    assert await ledger.books_problems() == []


async def test_a_till_makes_no_member_it_may_not(ledger: LedgerHandle, till: TestTerminal) -> None:
    book = await ledger.rulebook()
    other_tier = next(t for t in book.tiers if t != book.joining_tier)
    attempts = [
        join(book, "T-JOIN", 3, "13900000003", member_id="M0001"),  # an existing member's id
        join(book, "T-JOIN", 4, "13900000004", member_id="J-T-OTHER-4"),  # another till's namespace
        join(book, "T-JOIN", 5, "13900000005", member_tier=other_tier),  # straight into a better tier
    ]
    first = join(book, "T-JOIN", 6, "13900000006")
    again = join(book, "T-JOIN", 6, "13900000007")  # the same member made twice
    results = await till.send(*attempts, first, again)
    assert [r.status for r in results] == ["quarantined"] * 3 + ["accepted", "quarantined"], results
    assert "makes only J-T-JOIN-<n>" in (results[0].reason or "")
    assert "makes only J-T-JOIN-<n>" in (results[1].reason or "")
    assert "starts those who join in" in (results[2].reason or "")
    assert "enrolled already" in (results[4].reason or "")
    assert not await exists(ledger, "J-T-OTHER-4")
    held = ledger_cli("quarantine", "list", "--json", *ledger.store_args())
    assert len([q for q in json.loads(held.stdout) if q["terminal_id"] == "T-JOIN"]) == 4
