"""Tiers follow growth value: up during a year at ingest, up or down at the yearly review."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from ledger.store import LedgerStore
from ledger.tiers import AlreadyReviewedError, Ladder, TierReviewError
from offline_queue.ids import uuid7
from protocols.business_day import business_day
from protocols.errors import SchemaError
from protocols.records import TransactionRecord
from protocols.refunds import plan_refund
from protocols.rulebook import MemberEntry, Rulebook, Tier
from tests.gateway.records import draft
from tests.harness import LedgerHandle, ledger_cli, member_news, post_batch, register_key, sealed

pytestmark = [pytest.mark.ledger]

# classic from 0, gold from 500 growth a year, silver in between; vip off the ladder (a paid card).
LADDER = Ladder(((0, "classic"), (200, "silver"), (500, "gold")))


def test_a_member_moves_up_only_to_a_tier_the_growth_reaches() -> None:
    assert LADDER.upgrade("classic", 199) is None
    assert LADDER.upgrade("classic", 200) == "silver"
    assert LADDER.upgrade("classic", 10_000) == "gold"  # straight past silver
    assert LADDER.upgrade("gold", 250) is None  # never down during the year
    assert LADDER.upgrade("vip", 10_000) is None  # off the ladder: never moved
    assert Ladder().upgrade("classic", 10_000) is None  # no thresholds in the rulebook: tiers stay as loaded


def test_the_review_sets_the_tier_the_year_reached_up_or_down() -> None:
    assert LADDER.review("gold", 0) == "classic"
    assert LADDER.review("classic", 300) == "silver"
    assert LADDER.review("silver", 250) is None
    assert LADDER.review("vip", 0) is None
    assert Ladder(((100, "classic"),)).review("classic", 5) is None  # below the lowest rung: nothing lower
    # Run late (in March): what the new year's growth already reached is kept.
    assert LADDER.review("gold", 0, since=600) is None
    assert LADDER.review("gold", 0, since=300) == "silver"


def test_the_ladder_is_read_from_the_rulebook_and_kept_on_the_wire_only_when_set() -> None:
    book = Rulebook(
        1, "CNY", {"classic": Tier("classic", growth=0), "gold": Tier("gold", 9000, growth=500), "vip": Tier("vip")},
        frozenset(), {},
    )  # fmt: skip
    assert Ladder.of(book).rungs == ((0, "classic"), (500, "gold"))
    wire = book.to_wire()
    assert wire["tiers"]["gold"]["growth"] == 500
    assert "growth" not in wire["tiers"]["vip"]  # rulebooks without a ladder read as they always did
    assert Rulebook.from_wire(wire).tiers == book.tiers
    wire["tiers"]["gold"]["growth"] = -1
    with pytest.raises(SchemaError, match=r"tiers\.gold\.growth: must be at least 0"):
        Rulebook.from_wire(wire)


def grown(terminal: str, member: str, growth: list[int], year: str = "2026") -> list[TransactionRecord]:
    records = [
        dataclasses.replace(draft(terminal, g * 100, member), growth_earned=g, created_at=f"{year}-06-01T10:00:00.000Z")
        for g in growth
    ]
    return sealed(records)


def ladder_book(rungs: Ladder = LADDER, version: int = 1) -> Rulebook:
    """A rulebook whose tiers carry ``rungs``' growth thresholds (and vip, off the ladder)."""
    tiers = {name: Tier(name, growth=growth) for growth, name in rungs.rungs}
    return Rulebook(version, "CNY", {**tiers, "vip": Tier("vip")}, frozenset(), {})


async def stocked(tmp_path: Path, database: str | None) -> LedgerStore:
    store = await LedgerStore.open(tmp_path, database)
    await store.members.upsert(
        [MemberEntry("A", "classic"), MemberEntry("B", "gold"), MemberEntry("C", "vip"), MemberEntry("D", "classic")]
    )
    book = ladder_book()
    wire = book.to_wire()
    await store.rules.add({k: v for k, v in wire.items() if k not in ("phone_salt", "issuer_keys")})
    store.rules.use(book)
    return store


async def test_growth_moves_a_member_up_in_the_batch_that_reaches_the_tier(
    tmp_path: Path, ledger_database: str | None
) -> None:
    store = await stocked(tmp_path, ledger_database)
    try:
        before, held = await store.members.since(0)
        chain = grown("T-1", "A", [150, 40, 30, 400])
        first = await store.ingest("T-1", chain[:2], [None, None])
        assert [r.status for r in first.results] == ["accepted"] * 2
        assert (await store.members.account("A") or {})["tier"] == "classic"  # 190: not silver yet
        again = await store.ingest("T-1", chain, [None] * 4)  # the first two again: no growth twice
        assert [r.status for r in again.results] == ["duplicate", "duplicate", "accepted", "accepted"]
        assert (await store.members.account("A") or {})["tier"] == "gold"
        assert await store.members.growth("A") == {"2026": 620}
        moves = await store.members.tier_changes("A")
        assert [(c["from_tier"], c["to_tier"], c["growth"], c["reason"]) for c in moves] == [
            ("classic", "silver", 220, "growth 2026"),
            ("silver", "gold", 620, "growth 2026"),
        ]
        # Terminals hear of the new tier in the next member delta.
        _, changed = await store.members.since(before)
        news = member_news(changed, held, lambda m: m.member_id, ledger_database)
        assert [(m.member_id, m.tier) for m in news] == [("A", "gold")]
        assert await store.reports.check() == []
    finally:
        await store.close()


async def test_growth_counts_for_the_year_the_sale_was_made_in(tmp_path: Path, ledger_database: str | None) -> None:
    store = await stocked(tmp_path, ledger_database)
    try:
        late = grown("T-2", "D", [150], year="2025")  # made offline on the old year's last days, synced now
        this_year = [dataclasses.replace(r, created_at="2026-01-02T09:00:00.000Z") for r in grown("T-3", "D", [100])]
        await store.ingest("T-2", late, [None])
        await store.ingest("T-3", sealed(this_year), [None])
        assert await store.members.growth("D") == {"2025": 150, "2026": 100}
        assert (await store.members.account("D") or {})["tier"] == "classic"  # neither year reached 200
        assert (await store.members.account("D") or {})["growth"] == 250  # the lifetime sum stays
        await store.ingest("T-3", grown("T-3", "C", [900]), [None])
        assert (await store.members.account("C") or {})["tier"] == "vip"  # off the ladder: never moved
    finally:
        await store.close()


async def test_the_yearly_review_moves_members_up_and_down_once(tmp_path: Path, ledger_database: str | None) -> None:
    store = await stocked(tmp_path, ledger_database)
    try:
        await store.ingest("T-4", grown("T-4", "A", [120, 100], year="2025"), [None, None])  # silver during 2025
        await store.ingest("T-5", grown("T-5", "D", [300], year="2025"), [None])
        store.rules.use(ladder_book(Ladder(((0, "classic"), (250, "silver"), (500, "gold"))), 2))  # silver raised
        moves = await store.members.review_tiers(2025)
        assert sorted(moves) == [
            ("A", "silver", "classic", 220),  # 220 no longer holds silver
            ("B", "gold", "classic", 0),  # nothing earned in 2025; D's 300 still holds silver
        ]
        assert (await store.members.account("B") or {})["tier"] == "classic"
        assert (await store.members.account("C") or {})["tier"] == "vip"
        assert (await store.members.tier_changes("B"))[-1]["reason"] == "review 2025"
        with pytest.raises(AlreadyReviewedError, match="2025 was reviewed already"):
            await store.members.review_tiers(2025)
        with pytest.raises(TierReviewError, match="2099 has not ended"):
            await store.members.review_tiers(2099)
        assert (await store.members.account("A") or {})["tier"] == "classic"  # the refused runs moved nobody
    finally:
        await store.close()


async def test_the_review_command_and_a_live_upgrade_through_the_ledger(ledger: LedgerHandle) -> None:
    """The demo ledger's ladder (classic → supreme at 50,000 growth) applied to batches it receives."""
    await register_key(ledger, "T-TIER")
    this_year = business_day(datetime.now(UTC)).year
    records = grown("T-TIER", "M0001", [30_000, 25_000], year=str(this_year - 1))
    status, reply = await post_batch(ledger, {"terminal_id": "T-TIER", "records": [r.to_wire() for r in records]})
    assert status == 200, reply
    assert (await ledger.account("M0001"))["tier"] == "supreme"
    _, envelope = await (await ledger.observer()).call("GET", "/v1/members")
    snapshot = envelope["members"]["members"]  # inside the signed envelope
    assert {m["member_id"]: m["tier"] for m in snapshot}["M0001"] == "supreme"  # what terminals cache
    shown = ledger_cli("member", "show", "M0001", *ledger.store_args())
    assert "tier supreme" in shown.stdout
    assert f"classic → supreme (growth {this_year - 1}, growth 55,000)" in shown.stdout

    reviewed = ledger_cli("tiers", "review", "--year", str(this_year), *ledger.store_args())
    assert reviewed.returncode == 65
    assert f"{this_year} has not ended" in reviewed.stderr
    done = ledger_cli("tiers", "review", *ledger.store_args())  # last year, by default
    assert done.returncode == 0, done.stderr
    assert "M0001" not in done.stdout  # last year's 55,000 holds supreme
    assert "M0002: supreme → classic (growth 0" in done.stdout  # loaded supreme, earned nothing
    assert "M0003" not in done.stdout  # radiant: by invitation, off the ladder
    again = ledger_cli("tiers", "review", "--year", str(this_year - 1), *ledger.store_args())
    assert again.returncode == 0  # a timer that runs twice is told, not failed
    assert f"{this_year - 1} was reviewed already" in again.stdout


def test_a_refund_undoes_only_the_moves_its_growth_had_made() -> None:
    assert LADDER.undo("gold", 220, before="classic") == "silver"  # what is left still reaches silver
    assert LADDER.undo("gold", 50, before="silver") == "silver"  # never below the tier held before
    assert LADDER.undo("silver", 300, before="classic") is None  # still holds
    assert LADDER.undo("vip", 0, before="classic") is None  # off the ladder: never moved


def refund_of(sale: TransactionRecord, year: str = "2026") -> TransactionRecord:
    """All of ``sale`` given back at its own till, planned as a till plans it."""
    fields = {"txn_id": str(uuid7()), "terminal_id": sale.terminal_id, "seq": 0,
              "created_at": f"{year}-07-01T10:00:00.000Z", "offline": True}  # fmt: skip
    return plan_refund(sale, [], None, rulebook=ladder_book(), today=date(int(year), 7, 1), draft_fields=fields)


async def test_a_refund_takes_growth_back_from_the_sales_year_and_the_tier_it_bought(
    tmp_path: Path, ledger_database: str | None
) -> None:
    store = await stocked(tmp_path, ledger_database)
    try:
        sales = grown("T-6", "A", [150, 70, 400])  # classic → silver (220) → gold (620)
        await store.ingest("T-6", sales, [None] * 3)
        assert (await store.members.account("A") or {})["tier"] == "gold"
        # The 400 brought back in the next year: taken from the sale's year.
        refund = sealed([*sales, refund_of(sales[2], year="2027")])[3]
        assert [r.status for r in (await store.ingest("T-6", [refund], [None])).results] == ["accepted"]
        assert await store.members.growth("A") == {"2026": 220}
        account = await store.members.account("A") or {}
        assert (account["tier"], account["growth"]) == ("silver", 220)
        assert [(c["from_tier"], c["to_tier"], c["reason"]) for c in await store.members.tier_changes("A")][-1] == (
            "gold",
            "silver",
            "refund 2026",
        )
        # A refund of a sale the ledger never held is not believed: quarantined, nothing taken back.
        stranger = grown("T-8", "A", [999])[0]
        (refund,) = sealed([refund_of(stranger)])
        (result,) = (await store.ingest("T-8", [refund], [None])).results
        assert (result.status, result.reason) == (
            "quarantined",
            f"it refunds sale {stranger.txn_id}, which the ledger does not hold",
        )
        assert await store.members.growth("A") == {"2026": 220}
        assert await store.reports.check() == []
    finally:
        await store.close()
