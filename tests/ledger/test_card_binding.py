"""A till binds an unbound member card to the member at its counter: once, audited, learnt by every till;
another member's card refused naming that member only masked; only a terminal may, only for real members, and
only with the member there: their own fresh code from the member app (``PM1.`` or ``PW1.``), checked by the
ledger and good for one binding."""

from __future__ import annotations

import secrets
import time

import aiohttp
import pytest

from protocols.rulebook import open_members
from protocols.tokens import TokenClaims, key_id, sign_token
from tests.harness import LedgerHandle, ledger_cli, member_news

pytestmark = [pytest.mark.ledger]


async def test_a_till_binds_an_unbound_card_once_and_every_till_learns_it(ledger: LedgerHandle) -> None:
    till, other = await ledger.terminal("T-BIND-01"), await ledger.terminal("T-BIND-02")
    key = ledger.issuer_key().public_key()
    _, snapshot = await other.call("GET", "/v1/members")
    held = open_members(snapshot, key)
    before = held.version
    body = {"member_id": "M0001", "identifier": "card:8600000777", "code": await ledger.member_qr("M0001")}
    status, answer = await till.call("POST", "/v1/cards", body)
    assert (status, answer["bound"]) == (201, "now")
    status, answer = await till.call("POST", "/v1/cards", body)
    assert (status, answer["bound"]) == (200, "already")
    status, found = await other.call("GET", "/v1/identifiers/card:8600000777")
    assert (status, found["member_id"]) == (200, "M0001")
    _, delta = await other.call("GET", "/v1/members", params={"since": str(before)})
    news = member_news(open_members(delta, key).members, held.members, lambda m: m.member_id, ledger.database)
    assert [m.member_id for m in news] == ["M0001"]  # the caches hear of it
    trail = ledger_cli("audit", *ledger.store_args())
    assert "terminal:T-BIND-01" in trail.stdout
    assert "bind-card" in trail.stdout


async def test_another_member_s_card_is_refused_masked_with_the_operator_s_way_out(ledger: LedgerHandle) -> None:
    till = await ledger.terminal("T-BIND-01")
    await ledger.add_identifier("M0003", "card:8600000888")
    body = {"member_id": "M0001", "identifier": "card:8600000888", "code": await ledger.member_qr("M0001")}
    status, refused = await till.call("POST", "/v1/cards", body)
    assert status == 409
    assert refused["title"] == "identifier-owned"
    assert refused["owner"] == "M…3"
    assert "M0003" not in refused["detail"]
    assert "posgw-ledger member move-identifier card:8600000888" in refused["detail"]
    assert "posgw-ledger member merge" in refused["detail"]
    status, found = await till.call("GET", "/v1/identifiers/card:8600000888")
    assert found["member_id"] == "M0003"  # never moved


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"member_id": "M9999", "identifier": "card:8600000999"}, 404),
        ({"member_id": "M0001", "identifier": "phone:13800138000"}, 422),  # a till binds cards, nothing else
        ({"member_id": "M0001", "identifier": "payer:wechat:abc"}, 422),
        ({"member_id": "M0001", "identifier": "card:12"}, 422),
        ({"member_id": "M0001"}, 422),
    ],
)
async def test_what_a_till_may_not_bind(ledger: LedgerHandle, body: dict[str, str], status: int) -> None:
    till = await ledger.terminal("T-BIND-01")
    code = forged_code(ledger, body.get("member_id", "M0001"))  # signed by the ledger's key: good
    got, _ = await till.call("POST", "/v1/cards", {**body, "code": code})
    assert got == status


def forged_code(ledger: LedgerHandle, member_id: str, *, age: int = 0, prefix: str = "PM1.") -> str:
    key = ledger.issuer_key()
    now = int(time.time()) - age
    claims = TokenClaims(prefix, member_id, now, now + 60, secrets.token_urlsafe(9), key_id(key.public_key()))
    return sign_token(prefix, claims, key)


async def test_a_card_is_bound_only_with_the_member_s_own_fresh_code(ledger: LedgerHandle) -> None:
    """A till's credentials alone bind nothing: without the member there (their code), a hostile till could
    bind a card it holds to anyone and be them at every till."""
    till = await ledger.terminal("T-BIND-01")
    body = {"member_id": "M0001", "identifier": "card:8600000555"}
    refusals = {
        "no code": {},
        "another member's code": {"code": await ledger.member_qr("M0002")},
        "an expired code": {"code": forged_code(ledger, "M0001", age=600)},
        "a code not the ledger's": {"code": await ledger.member_qr("M0001") + "x"},
        "not a member code": {"code": "CP1.abc.def"},
    }
    for why, extra in refusals.items():
        status, answer = await till.call("POST", "/v1/cards", {**body, **extra})
        assert status == 422, (why, answer)
    status, _ = await till.call("GET", "/v1/identifiers/card:8600000555")
    assert status == 404  # nothing was bound
    wallet_code = await ledger.wallet_code("M0001")  # the wallet pay code shows the member is there too
    status, answer = await till.call("POST", "/v1/cards", {**body, "code": wallet_code})
    assert (status, answer["bound"]) == (201, "now")


async def test_one_code_binds_one_card(ledger: LedgerHandle) -> None:
    till, other = await ledger.terminal("T-BIND-01"), await ledger.terminal("T-BIND-02")
    code = await ledger.member_qr("M0001")
    status, _ = await till.call(
        "POST", "/v1/cards", {"member_id": "M0001", "identifier": "card:8600000561", "code": code}
    )
    assert status == 201
    for caller in (till, other):
        body = {"member_id": "M0001", "identifier": "card:8600000562", "code": code}
        status, refused = await caller.call("POST", "/v1/cards", body)
        assert (status, refused["title"]) == (409, "code-used")
    status, _ = await other.call("GET", "/v1/identifiers/card:8600000562")
    assert status == 404


async def test_only_a_signed_till_may_bind(ledger: LedgerHandle) -> None:
    body = {"member_id": "M0001", "identifier": "card:8600000777"}
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": f"Bearer {ledger.tokens['app']}"}):
            async with http.post(f"{ledger.url}/v1/cards", json=body, headers=headers) as r:
                assert r.status in (401, 403)
