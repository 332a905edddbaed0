"""A hostile terminal: a real till, enrolled with a genuine code, that tries to lie to the ledger.

With nothing but its own credentials it tries to mint stored value and
points, refund what it never sold, act as another terminal, squat a terminal
id, read others' data and move a card. Every attempt is refused (a problem
document) or quarantined (kept, never applied), and the books and balances
stay as they were. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from offline_queue.ids import uuid7
from protocols.business_day import business_day
from protocols.enrolment import proof_message
from protocols.pricing import BasketLine, price, with_earning
from protocols.pricing.earning import payments_of
from protocols.pricing.record import record_lines
from protocols.records import RECORD_VERSION, Tender, TransactionRecord
from protocols.refunds import plan_refund
from protocols.rulebook import MemberEntry, Rulebook
from protocols.tokens import public_key_text
from simulators.ledger_session import SignedSession, enrol
from tests.harness import LedgerHandle, TestTerminal, ledger_cli

pytestmark = [pytest.mark.ledger]

TART = BasketLine(1, "6901234567892", "Egg tart", "bakery", 1, 0)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def honest_sale(
    book: Rulebook, member: MemberEntry | None, amount: int, tenders: list[Tender] | None = None, **kw: Any
) -> TransactionRecord:
    """A sale as a genuine till prices and records it (version 2)."""
    day = business_day(now(), book.zone)
    priced = price([dataclasses.replace(TART, unit_price=amount)], member, book, "M-BAKERY", day=day, **kw)
    tenders = tenders or [Tender("cash", priced.total_due)]
    priced = with_earning(
        priced, member, book, "M-BAKERY", day=day, payments=payments_of([(t.kind, t.amount) for t in tenders], 0)
    )
    return TransactionRecord(
        str(uuid7()), "", 0, "sale", now(), "S-1", "M-BAKERY", "CNY", record_lines(priced), priced.total_gross,
        priced.total_discount, priced.total_due, tuple(tenders), 0, member.member_id if member else None,
        "qr" if member else None, priced.points_earned, book.version, True, points_redeemed=priced.points_redeemed,
        growth_earned=priced.growth_earned, version=RECORD_VERSION, member_tier=member.tier if member else None,
    )  # fmt: skip


def refund_of(book: Rulebook, sale: TransactionRecord, earlier: list[TransactionRecord] = ()) -> TransactionRecord:  # type: ignore[assignment]
    fields = {"txn_id": str(uuid7()), "terminal_id": sale.terminal_id, "seq": 0, "created_at": now(), "offline": True}
    return plan_refund(
        sale, list(earlier), None, rulebook=book, today=business_day(now(), book.zone), draft_fields=fields
    )


async def balances(ledger: LedgerHandle) -> list[tuple[object, object, object]]:
    accounts = [await ledger.account(m) for m in ("M0001", "M0002", "M0003")]
    return [(a["points"], a["wallet"], a["growth"]) for a in accounts]


@pytest.fixture
async def till(ledger: LedgerHandle) -> TestTerminal:
    """A genuine till of the bakery, enrolled with its code."""
    return await ledger.terminal("T-REAL", store="S-1", merchant="M-BAKERY")


async def test_it_cannot_mint_stored_value_or_points(ledger: LedgerHandle, till: TestTerminal) -> None:
    book = await ledger.rulebook()
    classic, supreme = MemberEntry("M0001", "classic"), MemberEntry("M0002", "supreme")
    before = await balances(ledger)
    # The attack of the report: a refund of a sale that never existed, paid back to the wallet.
    ghost = honest_sale(book, classic, 100_000_000, [Tender("wallet", 85_000_000, "pay-ghost")])
    ghost = dataclasses.replace(ghost, terminal_id="T-REAL", seq=1)
    fake_refund = refund_of(book, ghost)
    # A sale that claims far more points than its lines earn; one that moves the points between its lines;
    # one priced at a tier the member never held (supreme earns ×1.5); a rulebook the ledger never issued.
    inflated = dataclasses.replace(honest_sale(book, classic, 10_000), points_earned=1_000_000)
    inflated = dataclasses.replace(inflated, lines=(dataclasses.replace(inflated.lines[0], points=1_000_000),))
    two = honest_sale(book, classic, 200_000)
    moved = dataclasses.replace(two, lines=(dataclasses.replace(two.lines[0], growth=two.lines[0].growth + 1),),
                                growth_earned=two.growth_earned + 1)  # fmt: skip
    promoted = honest_sale(book, dataclasses.replace(classic, tier="supreme"), 1_000_000)
    unknown_rules = dataclasses.replace(honest_sale(book, classic, 10_000), rulebook_version=99)
    # Stored value with no hold, beyond the offline limits; and with a hold made for another member.
    unheld = honest_sale(book, supreme, 90_000, [Tender("wallet", 81_000, "pay-unheld")])
    results = await till.send(fake_refund, inflated, moved, promoted, unknown_rules, unheld)
    assert [r.status for r in results] == ["quarantined"] * 6, results
    assert "which the ledger does not hold" in (results[0].reason or "")
    assert "rulebook version 1 gives" in (results[1].reason or "")
    assert "tier supreme, which member M0001 does not and did not hold" in (results[3].reason or "")
    assert "never issued" in (results[4].reason or "")
    assert "past the offline limits" in (results[5].reason or "")
    # Nothing moved, the books hold, and an operator sees all six.
    assert await balances(ledger) == before
    assert await ledger.books_problems() == []
    held = ledger_cli("quarantine", "list", "--json", *ledger.store_args())
    assert held.returncode == 0, held.stderr
    assert len([q for q in json.loads(held.stdout) if q["terminal_id"] == "T-REAL"]) == 6


async def test_it_cannot_refund_more_than_it_sold_or_to_another_tender(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book = await ledger.rulebook()
    classic = MemberEntry("M0001", "classic")
    (sale,) = till.seal([honest_sale(book, classic, 100_000)])  # cash, earns points
    status, _ = await till.post_batch([sale])
    assert status == 200
    points_after_sale = await ledger.points("M0001")
    honest = refund_of(book, sale)
    wallet_back = dataclasses.replace(
        honest, txn_id=str(uuid7()), tenders=(Tender("wallet", honest.total_due, "pay-x"),)
    )
    more_money = dataclasses.replace(
        honest, txn_id=str(uuid7()),
        lines=(dataclasses.replace(honest.lines[0], net=honest.lines[0].net + 1,
                                   discount=honest.lines[0].discount - 1),),
        total_due=honest.total_due + 1, total_discount=honest.total_discount - 1,
        tenders=(Tender("cash", honest.total_due + 1),),
    )  # fmt: skip
    fewer_points = dataclasses.replace(
        honest, txn_id=str(uuid7()), points_clawback=0, lines=(dataclasses.replace(honest.lines[0], points=0),)
    )
    results = await till.send(wallet_back, more_money, fewer_points, honest)
    assert [r.status for r in results] == ["quarantined", "quarantined", "quarantined", "accepted"], results
    assert "more than that tender has left" in (results[0].reason or "")
    assert await ledger.points("M0001") == points_after_sale - honest.points_clawback
    (again,) = await till.send(dataclasses.replace(honest, txn_id=str(uuid7())))  # the same units twice
    assert again.status == "quarantined"
    assert "only 0 left to refund, asked for 1" in (again.reason or "")
    assert await ledger.books_problems() == []


async def test_it_cannot_act_as_another_terminal(ledger: LedgerHandle, till: TestTerminal) -> None:
    other = await ledger.terminal("T-OTHER", store="S-1", merchant="M-BAKERY")
    book = await ledger.rulebook()
    sale = other.seal([honest_sale(book, None, 1_000)])
    # Another's records, signed with this till's key: refused before anything is read.
    status, body = await till.call(
        "POST", "/v1/sync/batch", {"terminal_id": "T-OTHER", "records": [r.to_wire() for r in sale]}
    )
    assert (status, body["type"]) == (403, "urn:posgw:problem:not-your-terminal")
    status, body = await till.call("GET", "/v1/terminals/T-OTHER/transactions")
    assert status == 403
    # Holds: not in another's name, not another's released, not another's read.
    code = await ledger.wallet_code("M0002")
    hold = {"member_id": "M0002", "amount": 100_000, "ref": "p1", "terminal_id": "T-OTHER", "code": code}
    status, _ = await till.call("POST", "/v1/wallet/holds", hold)
    assert status == 403
    hold = {"member_id": "M0002", "amount": 1_000, "ref": "p-other", "code": code}
    status, _ = await other.call("POST", "/v1/wallet/holds", hold)
    assert status == 201
    status, body = await till.call("DELETE", "/v1/wallet/holds/p-other")
    assert (status, body["type"]) == (403, "urn:posgw:problem:not-your-terminal")
    assert await ledger.wallet_hold("p-other") == "held"
    status, body = await till.call("GET", "/v1/wallet/holds/p-other")
    assert body == {"state": "none"}
    status, body = await till.call(
        "POST",
        "/v1/reservations",
        {"member_id": "M0001", "points": 1, "txn_id": str(uuid7()), "terminal_id": "T-OTHER"},
    )
    assert status == 403
    # A wallet spend on another terminal's hold is not believed either.
    stolen = honest_sale(book, MemberEntry("M0002", "supreme"), 1_000, [Tender("wallet", 900, "p-other")])
    (result,) = await till.send(stolen)
    assert result.status == "quarantined"
    assert "held by the ledger for another member, terminal or amount" in (result.reason or "")


async def test_it_cannot_squat_a_terminal_id_or_replay_a_request(ledger: LedgerHandle) -> None:
    attacker = Ed25519PrivateKey.generate()
    async with aiohttp.ClientSession() as http:
        # No code for a terminal nobody added; a guessed code for one the operator added.
        status, body = await enrol(http, ledger.url, "T-NEXT", attacker, "PE1-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA")
        assert (status, body["type"]) == (403, "urn:posgw:problem:enrolment-code-invalid")
        (code,) = (await ledger.codes("T-NEXT")).values()
        status, body = await enrol(http, ledger.url, "T-NEXT", attacker, "PE1-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA")
        assert status == 403
        # The code, but a proof made with another key than the one offered.
        public = public_key_text(attacker.public_key())
        bad_proof = Ed25519PrivateKey.generate().sign(proof_message("T-NEXT", code, public)).hex()
        async with http.post(
            f"{ledger.url}/v1/enrol",
            json={"terminal_id": "T-NEXT", "code": code, "public_key": public, "proof": bad_proof},
        ) as r:
            assert (r.status, (await r.json())["type"]) == (403, "urn:posgw:problem:enrolment-proof-invalid")
        # The genuine till enrols; the code is spent.
        genuine = Ed25519PrivateKey.generate()
        status, first = await enrol(http, ledger.url, "T-NEXT", genuine, code)
        assert status == 201
        # Its answer lost, the genuine till asks again: the same enrolment (it holds the key), nothing new.
        status, again = await enrol(http, ledger.url, "T-NEXT", genuine, code)
        assert (status, again) == (201, first)
        status, body = await enrol(http, ledger.url, "T-NEXT", attacker, code)
        assert (status, body["type"]) == (403, "urn:posgw:problem:enrolment-code-used")
    # The attacker's key is nobody's; the genuine till's works.
    status, body = await TestTerminal(ledger.url, "T-NEXT", attacker).call("GET", "/v1/rulebook")
    assert (status, body["type"]) == (401, "urn:posgw:problem:signature-refused")
    till = TestTerminal(ledger.url, "T-NEXT", genuine)
    assert (await till.call("GET", "/v1/rulebook"))[0] == 200
    # A request replayed byte for byte is refused.
    async with aiohttp.ClientSession() as http:
        session = SignedSession(http, ledger.url, "T-NEXT", genuine)
        headers = session.headers("GET", f"{ledger.url}/v1/rulebook", b"")
        async with http.get(f"{ledger.url}/v1/rulebook", headers=headers) as r:
            assert r.status == 200
        async with http.get(f"{ledger.url}/v1/rulebook", headers=headers) as r:
            assert (r.status, (await r.json())["type"]) == (401, "urn:posgw:problem:signature-replayed")
    # Retired: refused from then on.
    retired = ledger_cli("terminal", "retire", "T-NEXT", *ledger.store_args())
    assert retired.returncode == 0, retired.stderr
    await _until_refused(till)


async def _until_refused(till: TestTerminal) -> None:
    for _ in range(100):  # the ledger looks a terminal's key up afresh within seconds
        status, body = await till.call("GET", "/v1/rulebook")
        if status == 401:
            assert body["type"] == "urn:posgw:problem:terminal-unknown"
            return
        await asyncio.sleep(0.1)
    raise AssertionError("a retired terminal was still served")


async def test_ten_wrong_codes_void_the_one_issued(ledger: LedgerHandle) -> None:
    (code,) = (await ledger.codes("T-BRUTE")).values()
    key = Ed25519PrivateKey.generate()
    async with aiohttp.ClientSession() as http:
        for _ in range(10):
            await enrol(http, ledger.url, "T-BRUTE", key, "PE1-BBBB-BBBB-BBBB-BBBB-BBBB-BBBB")
        status, body = await enrol(http, ledger.url, "T-BRUTE", key, code)
    assert (status, body["type"]) == (403, "urn:posgw:problem:enrolment-code-used")


async def test_it_cannot_read_what_its_work_does_not_need(ledger: LedgerHandle, till: TestTerminal) -> None:
    for method, path in (
        ("GET", "/v1/members/M0001"),  # a member's balances: the member app's
        ("GET", "/v1/conflicts"),  # the operators'
        ("GET", "/v1/quarantine"),
        ("GET", "/metrics"),
        ("POST", "/v1/members/M0001/qr"),
        ("POST", "/v1/coupons/C-20-OFF-200:0123456789abcdef/revoke"),
    ):
        status, _ = await till.call(method, path)
        assert status == 401, (method, path)
    status, _ = await till.call("GET", "/v1/identifiers")  # no listing of identifiers at all
    assert status in (404, 405)


async def test_an_oversized_number_is_a_clear_problem_not_a_500(ledger: LedgerHandle, till: TestTerminal) -> None:
    book = await ledger.rulebook()
    (sale,) = till.seal([honest_sale(book, None, 1_000)])
    wire = sale.to_wire() | {"points_earned": 2**62}  # fits 64 bits: the schema names the field
    status, body = await till.call("POST", "/v1/sync/batch", {"terminal_id": "T-REAL", "records": [wire]})
    assert status == 422
    assert any("points_earned: must be at most" in p for p in body["problems"])
    for too_long in (2**64, 10**400):  # past 64 bits: refused at the door, by the one reader of untrusted JSON
        status, body = await till.call(
            "POST", "/v1/reservations", {"member_id": "M0001", "points": too_long, "txn_id": str(uuid7())}
        )
        assert status == 400
        assert "an integer of" in body["detail"]


async def test_a_card_never_moves_silently(ledger: LedgerHandle) -> None:
    headers = {"Authorization": f"Bearer {ledger.tokens['app']}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        url = f"{ledger.url}/v1/members/M0001/identifiers"
        async with http.post(url, json={"identifier": "card:8600000002"}) as r:  # M0002's card
            body = await r.json()
            assert (r.status, body["type"]) == (409, "urn:posgw:problem:identifier-owned")
            assert "bound to member M0002" in body["detail"]
    store = await ledger.open_store()
    try:
        owner = await store.members.by_identifier("card:8600000002")
        assert owner is not None
        assert owner.member_id == "M0002"
    finally:
        await store.close()
    # The operator moves it, on purpose, with a reason; it is in the audit trail.
    moved = ledger_cli(
        "member",
        "move-identifier",
        "card:8600000002",
        "--to",
        "M0001",
        "--reason",
        "card lost and re-issued",
        "--by",
        "ops-1",
        *ledger.store_args(),
    )
    assert moved.returncode == 0, moved.stderr
    trail = ledger_cli("audit", *ledger.store_args())
    assert "ops-1" in trail.stdout
    assert "move-identifier" in trail.stdout
    assert "card lost and re-issued" in trail.stdout
    # Merging two accounts: balances, growth and identifiers go to the one kept; the other is frozen.
    wallets = (await ledger.wallet("M0001"), await ledger.wallet("M0002"))
    merged = ledger_cli(
        "member", "merge", "M0002", "--to", "M0001", "--reason", "one person, two accounts", *ledger.store_args()
    )
    assert merged.returncode == 0, merged.stderr
    assert await ledger.wallet("M0001") == sum(wallets)
    assert (await ledger.account("M0002"))["status"] == "frozen"
    assert await ledger.books_problems() == []


async def test_a_quarantined_record_is_released_or_rejected_by_an_operator(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book = await ledger.rulebook()
    classic = MemberEntry("M0001", "classic")
    generous = dataclasses.replace(honest_sale(book, classic, 10_000), points_earned=7)
    generous = dataclasses.replace(generous, lines=(dataclasses.replace(generous.lines[0], points=7),))
    other = dataclasses.replace(generous, txn_id=str(uuid7()))
    results = await till.send(generous, other)
    assert [r.status for r in results] == ["quarantined", "quarantined"]
    before = await ledger.points("M0001")
    missing = ledger_cli("quarantine", "release", generous.txn_id, *ledger.store_args())
    assert missing.returncode == 2  # a note is required
    released = ledger_cli(
        "quarantine", "release", generous.txn_id, "--note", "goodwill, agreed by the mall", *ledger.store_args()
    )
    assert released.returncode == 0, released.stderr
    assert await ledger.points("M0001") == before + 7
    rejected = ledger_cli("quarantine", "reject", other.txn_id, "--note", "tampered till", *ledger.store_args())
    assert rejected.returncode == 0, rejected.stderr
    twice = ledger_cli("quarantine", "release", other.txn_id, "--note", "x", *ledger.store_args())
    assert twice.returncode == 65
    assert "rejected already" in twice.stderr
    assert await ledger.points("M0001") == before + 7
    decided = ledger_cli("quarantine", "list", "--state", "released", *ledger.store_args())
    assert generous.txn_id in decided.stdout
    assert await ledger.books_problems() == []


async def test_it_cannot_walk_the_member_list_through_lookups(ledger: LedgerHandle, till: TestTerminal) -> None:
    """One identifier at a time, paced: a burst of guesses is told to wait (429), not answered."""
    statuses = [(await till.call("GET", f"/v1/identifiers/card:87000{i:05d}"))[0] for i in range(40)]
    assert statuses[:30] == [404] * 30  # the burst a till's cache misses may need
    assert 429 in statuses[30:]


async def test_it_cannot_spend_points_it_was_not_given_or_pay_with_points_it_did_not_spend(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book = await ledger.rulebook()
    classic = MemberEntry("M0001", "classic")
    # M0001 earns 85 points first (¥10,000 at the bakery, classic pays 85 %), honestly.
    (earned,) = await till.send(honest_sale(book, classic, 1_000_000))
    assert earned.status == "accepted"
    # A hold of 1 point is no authority to spend 5.
    status, body = await till.call(
        "POST", "/v1/reservations", {"member_id": "M0001", "points": 1, "txn_id": str(uuid7())}
    )
    assert status == 201, body
    spend = dataclasses.replace(honest_sale(book, classic, 1_000), points_redeemed=5, reservation=body["reservation"])
    spend = dataclasses.replace(spend, lines=(dataclasses.replace(spend.lines[0], points_spent=5),))
    # An offset claiming ¥9.00 of the bill paid with 1 point (the rule is 100 points to ¥1).
    offset = dataclasses.replace(honest_sale(book, classic, 10_000), points_redeemed=1)
    line = offset.lines[0]
    offset = dataclasses.replace(
        offset,
        lines=(dataclasses.replace(line, offset=900, discount=line.discount + 900, net=line.net - 900,
                                   points_spent=1),),
        total_discount=offset.total_discount + 900, total_due=offset.total_due - 900,
        tenders=(Tender("cash", offset.total_due - 900),),
    )  # fmt: skip
    results = await till.send(spend, offset)
    assert [r.status for r in results] == ["quarantined", "quarantined"], results
    assert "5 points" in (results[0].reason or "")  # no offset nor exchange to spend them on, and no hold for 5
    assert await ledger.points("M0001") == 85  # what the honest sale earned (85 % of ¥10,000 → ¥8,500), no more
    assert await ledger.books_problems() == []


async def test_a_wallet_code_pays_once_online_and_two_offline_tills_sharing_one_are_a_recorded_conflict(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    other = await ledger.terminal("T-NEIGHBOUR", store="S-1", merchant="M-BAKERY")
    code = await ledger.wallet_code("M0002")
    hold = {"member_id": "M0002", "amount": 1_000, "ref": "pay-once", "code": code}
    status, _ = await till.call("POST", "/v1/wallet/holds", hold)
    assert status == 201
    status, _ = await till.call("POST", "/v1/wallet/holds", hold)  # the same payment again: the same hold
    assert status == 201
    status, body = await other.call("POST", "/v1/wallet/holds", {**hold, "ref": "pay-twice"})
    assert (status, body["type"]) == (409, "urn:posgw:problem:code-used")
    assert "payment pay-once at T-REAL" in body["detail"]
    for forged, why in [(code[:-2] + "xx", "does not hold"), (await ledger.wallet_code("M0001"), "another member")]:
        status, body = await other.call("POST", "/v1/wallet/holds", {**hold, "ref": "pay-forged", "code": forged})
        assert (status, body["type"]) == (422, "urn:posgw:problem:wallet-code-refused")
        assert why in body["detail"]
    # Offline, two tills shown one code: both sales stand (the money changed hands), the second is a conflict.
    book = await ledger.rulebook()
    supreme = MemberEntry("M0002", "supreme")
    nonce = "k:offline-shared-nonce"
    first = honest_sale(book, supreme, 1_000, [Tender("wallet", 900, "pay-a", code=nonce)])
    second = honest_sale(book, supreme, 1_000, [Tender("wallet", 900, "pay-b", code=nonce)])
    (a,) = await till.send(first)
    (b,) = await other.send(second)
    assert (a.status, a.reason) == ("accepted", None)
    assert b.status == "accepted"
    assert f"wallet code {nonce} paid twice: here and payment pay-a at T-REAL" in (b.reason or "")
    assert await ledger.books_problems() == []


async def test_a_member_code_used_at_two_tills_is_noted(ledger: LedgerHandle, till: TestTerminal) -> None:
    """A PM1 code names the member of one sale; two offline tills shown it both sell, and the ledger notes it."""
    other = await ledger.terminal("T-ACROSS", store="S-1", merchant="M-BAKERY")
    book = await ledger.rulebook()
    classic = MemberEntry("M0001", "classic")
    code = "k:member-code-nonce"
    first = dataclasses.replace(honest_sale(book, classic, 1_000), member_code=code)
    second = dataclasses.replace(honest_sale(book, classic, 2_000), member_code=code)
    (a,) = await till.send(first)
    (b,) = await other.send(second)
    assert (a.status, a.reason) == ("accepted", None)
    assert b.status == "accepted"  # the sale stands: the customer paid
    assert f"member code {code} used for two sales: here and sale {first.txn_id} at T-REAL" in (b.reason or "")
    # The same record sent again is the same use, not a second one.
    (again,) = await till.send(first)
    assert again.status == "duplicate"


async def test_batches_fuzzing_broke_are_clear_refusals_never_a_500(ledger: LedgerHandle, till: TestTerminal) -> None:
    """Each answered 500 before: a lone surrogate anywhere, nesting just under json's own limit, no records."""
    book = await ledger.rulebook()
    record = till.seal([honest_sale(book, None, 1_000)])[0].to_wire()
    surrogate = json.dumps({"terminal_id": "T-REAL", "records": [record]}).replace('"S-1"', '"\\ud800"', 1)
    cases: list[tuple[bytes, int, str]] = [
        (surrogate.encode(), 400, "lone surrogate"),
        (b'{"terminal_id": "T-REAL", "records": [' + b"[" * 900 + b"]" * 900 + b"]}", 400, "nested more than"),
        (b'{"terminal_id": "T-REAL"}', 422, "records"),
        (b'{"terminal_id": "T-REAL", "records": {}}', 422, "records"),
    ]  # fmt: skip
    for body, status, said in cases:
        answered, problem = await till.call("POST", "/v1/sync/batch", raw=body)
        assert answered == status, (said, problem)
        assert said in json.dumps(problem), problem
    assert await ledger.books_problems() == []
