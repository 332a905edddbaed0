"""The mall's controls at the ledger (seed 003's fraud controls): a member's daily cap holds the excess for
review (released or rejected by an operator, with the audit trail), a surge is raised once, a black-listed
member earns nothing until reviewed, and manual adjustments keep the points books conserved."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from offline_queue.ids import uuid7
from protocols.business_day import business_day
from protocols.pricing import BasketLine, price, with_earning
from protocols.pricing.earning import payments_of
from protocols.pricing.record import sale_record
from protocols.records import Tender, TransactionRecord
from protocols.refunds import plan_refund
from protocols.rulebook import MemberEntry, Rulebook
from tests.harness import LedgerHandle, TestTerminal, ledger_cli

pytestmark = [pytest.mark.ledger]

CLASSIC = MemberEntry("M0001", "classic")


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sale(book: Rulebook, member: MemberEntry, fen: int) -> TransactionRecord:
    """A ¥``fen / 100`` sale at the bakery, as an honest till prices it now."""
    day = business_day(datetime.now(UTC), book.zone)
    line = BasketLine(1, "6909876543212", "Cake", "bakery", 1, fen)
    priced = price([line], member, book, "M-BAKERY", day=day)
    tenders = (Tender("cash", priced.total_due),)
    paid = payments_of([("cash", priced.total_due)], 0)
    priced = with_earning(priced, member, book, "M-BAKERY", day=day, payments=paid)
    return sale_record(
        priced, txn_id=str(uuid7()), terminal_id="", store_id="S-1", merchant_id="M-BAKERY", currency="CNY",
        created_at=now_text(), tenders=tenders, change=0, member_id=member.member_id, member_via="qr",
        member_tier=member.tier, offline=False, coupons=(),
    )  # fmt: skip


async def tight_rules(tmp_path: Path, ledger: LedgerHandle) -> Rulebook:
    """Rulebook version 2: 100 points a member a day, surges past 150 points at 2× the usual."""
    body = (await ledger.rulebook()).to_wire()
    for own in ("phone_salt", "issuer_keys"):
        del body[own]
    body |= {"version": 2, "controls": {"member_daily_points": 100, "surge_factor": 2, "surge_floor": 150}}
    (tmp_path / "rules.json").write_text(json.dumps(body))
    loaded = ledger_cli("rulebook", "load", str(tmp_path / "rules.json"), *ledger.store_args())
    assert loaded.returncode == 0, loaded.stderr
    return await ledger.wait_rulebook(2)


def cli(ledger: LedgerHandle, *args: str) -> str:
    done = ledger_cli(*args, *ledger.store_args())
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
async def till(ledger: LedgerHandle) -> TestTerminal:
    return await ledger.terminal("T-CTRL", store="S-1", merchant="M-BAKERY")


async def test_past_the_daily_cap_is_held_for_review_then_released_or_rejected(
    tmp_path: Path, ledger: LedgerHandle, till: TestTerminal
) -> None:
    book = await tight_rules(tmp_path, ledger)
    before = await ledger.points("M0001")
    # Classic at the bakery pays 85 %: ¥10,000 → ¥8,500 paid → 85 points; the second 85 passes 100.
    first, second, third = (sale(book, CLASSIC, 1_000_000) for _ in range(3))
    results = await till.send(first, second, third)
    assert [r.status for r in results] == ["accepted"] * 3, results
    assert results[0].reason is None
    assert (results[1].reason or "").startswith("held: 70 points and 0 growth for review (past the member's 100")
    assert "held: 85 points" in (results[2].reason or "")
    assert "surge: member:M0001 earned 170 points" in (results[1].reason or "")  # once, not again on the third
    assert "surge" not in (results[2].reason or "")
    assert await ledger.points("M0001") == before + 100
    held = json.loads(cli(ledger, "controls", "held", "--json"))
    assert [(h["txn_id"], h["points"]) for h in held] == [(second.txn_id, 70), (third.txn_id, 85)]
    # A refund of the third takes back from what it still holds, not from the balance.
    refund = plan_refund(
        dataclasses.replace(third, terminal_id="T-CTRL", seq=3), [], None, rulebook=book,
        today=business_day(datetime.now(UTC), book.zone),
        draft_fields={"txn_id": str(uuid7()), "terminal_id": "T-CTRL", "seq": 0, "created_at": now_text(),
                      "offline": False},
    )  # fmt: skip
    assert (await till.send(refund))[0].status == "accepted"
    assert await ledger.points("M0001") == before + 100
    released = cli(ledger, "controls", "release", str(held[0]["id"]), "--note", "a wedding order", "--by", "ops1")
    assert "released: 70 points" in released
    rejected = cli(ledger, "controls", "reject", str(held[1]["id"]), "--note", "refunded anyway")
    assert "rejected: 0 points" in rejected
    assert await ledger.points("M0001") == before + 170
    assert "held-released" in cli(ledger, "audit")
    twice = ledger_cli("controls", "release", str(held[0]["id"]), "--note", "again", *ledger.store_args())
    assert twice.returncode == 65
    assert "released already" in twice.stderr
    assert "M0001" in cli(ledger, "controls", "surges")
    assert "books hold" in cli(ledger, "check")  # exit 0: the books and points conservation hold


async def test_a_black_listed_member_earns_nothing_until_reviewed_and_adjustments_are_audited(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book = await ledger.rulebook()
    before = await ledger.points("M0002")
    said = cli(ledger, "member", "status", "M0002", "--to", "blacklisted", "--reason", "card fraud ring")
    assert "active → blacklisted" in said
    supreme = MemberEntry("M0002", "supreme")
    (result,) = await till.send(sale(book, supreme, 100_000))  # sold offline before the till heard
    assert result.status == "accepted"
    assert "held: 13 points" in (result.reason or "")
    assert "member M0002 is blacklisted" in (result.reason or "")
    assert await ledger.points("M0002") == before
    assert "+20 points" in cli(ledger, "member", "adjust", "M0002", "--points", "20", "--reason", "goodwill")
    adjusted = cli(ledger, "member", "adjust", "M0002", "--points", "-5", "--reason", "goodwill reversed")
    assert "-5 points" in adjusted
    assert await ledger.points("M0002") == before + 15
    too_far = ledger_cli("member", "adjust", "M0002", "--points", "-99999999", "--reason", "x", *ledger.store_args())
    assert too_far.returncode == 65
    assert "would go below zero" in too_far.stderr
    no_reason = ledger_cli("member", "adjust", "M0002", "--points", "5", *ledger.store_args())
    assert no_reason.returncode == 2
    trail = cli(ledger, "audit")
    assert "status" in trail
    assert "goodwill reversed" in trail
    books = json.loads(cli(ledger, "report", "points", "--json"))
    assert books["adjusted"] == 15
    assert "books hold" in cli(ledger, "check")
