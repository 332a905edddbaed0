"""Binding a member card at the till: tap an unbound card (or type its number) while the member is at the
counter; the ledger binds it once, every till learns it; another member's card is refused, masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.demo_data import DEMO_CARD_M0002
from simulators.pos_client import ApiProblemError, PosClient
from simulators.vcard import VirtualCard, make_applet
from tests.harness import LedgerHandle, gateway_config, running_gateway
from tests.integration.test_card_checkout import ready, tap

pytestmark = [pytest.mark.ledger]


async def with_member(pos: PosClient, ledger: LedgerHandle, member_id: str = "M0001") -> str:
    basket: str = (await pos.new_basket())["basket_id"]
    await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr(member_id)})
    return basket


async def refused(pos: PosClient, path: str, body: object) -> dict[str, object]:
    with pytest.raises(ApiProblemError) as caught:
        await pos.call("POST", path, body)
    assert caught.value.status == 409
    problem: dict[str, object] = caught.value.body
    return problem


async def test_a_typed_card_number_binds_once_as_a_weak_identity(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]) and s["ledger"]["online"])
        basket = await with_member(pos, ledger)
        bound = await pos.call("POST", f"/v1/baskets/{basket}/card", {"number": "8600000777"})
        assert bound == {"member_id": "M0001", "identifier": "card:8600000777", "bound": "now", "weak": True}
        again = await pos.call("POST", f"/v1/baskets/{basket}/card", {"number": "8600000777"})
        assert again["bound"] == "already"
        # Another member's card: refused, that member masked, the operator's way out named.
        owned = await refused(pos, f"/v1/baskets/{basket}/card", {"number": DEMO_CARD_M0002})
        assert owned["type"] == "urn:posgw:problem:card-owned"
        assert "(M…2)" in str(owned["detail"])
        assert "M0002" not in str(owned["detail"])
        assert "member move-identifier" in str(owned["detail"])
        # No member at the counter, or no card tapped: nothing to bind, said so.
        empty = (await pos.new_basket())["basket_id"]
        assert "attach the member first" in str((await refused(pos, f"/v1/baskets/{empty}/card", {}))["detail"])
        assert "no unbound card was tapped" in str((await refused(pos, f"/v1/baskets/{basket}/card", {}))["detail"])
    till = await ledger.observer()
    _, found = await till.call("GET", "/v1/identifiers/card:8600000777")
    assert found["member_id"] == "M0001"


@pytest.mark.pcsc
@pytest.mark.usefixtures("pcscd")
async def test_an_unbound_card_tapped_is_bound_to_the_member_and_then_identifies_them(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], cards: list[VirtualCard]
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, card_reader=True)
    async with running_gateway(config) as (_gw, pos):
        await ready(pos)
        new_card = make_applet("member", ledger.issuer_key(), "8600000555")
        first = await tap(pos, cards, VirtualCard(new_card))
        assert first["card_error"]["code"] == "unknown-member"  # nobody carries it yet
        cards.pop().remove()
        basket = await with_member(pos, ledger)
        bound = await pos.call("POST", f"/v1/baskets/{basket}/card", {})
        assert bound == {"member_id": "M0001", "identifier": "card:8600000555", "bound": "now", "weak": False}
        await pos.cancel(basket)
        basket = (await pos.new_basket())["basket_id"]
        again = await tap(pos, cards, VirtualCard(new_card))
        assert again["member"] == {"member_id": "M0001", "tier": "classic", "via": "card", "weak": False}
        assert again["basket_id"] == basket


async def test_a_member_found_by_phone_binds_a_card_only_by_showing_their_code(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    """Typing a phone number proves nothing about who stands at the counter: the member's own code from the
    app does, and the ledger checks it; without it nothing is bound."""
    async with running_gateway(gateway_config(tmp_path / "gw", ledger.url, tokens)) as (_gw, pos):
        await pos.wait_status(lambda s: bool(s["members_cached"]) and s["ledger"]["online"])
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"phone": "13800000001"})
        path = f"/v1/baskets/{basket}/card"
        asked = await refused(pos, path, {"number": "8600000601"})
        assert "member code" in str(asked["detail"])
        another = await refused(pos, path, {"number": "8600000601", "code": await ledger.member_qr("M0002")})
        assert "another member's" in str(another["detail"])
        code = await ledger.member_qr("M0001")
        bound = await pos.call("POST", path, {"number": "8600000601", "code": code})
        assert bound["bound"] == "now"
        # The ledger lets one code bind one card, whichever till asks.
        used = await refused(pos, path, {"number": "8600000602", "code": code})
        assert "already bound a card" in str(used["detail"])
    till = await ledger.observer()
    status, _ = await till.call("GET", "/v1/identifiers/card:8600000602")
    assert status == 404
