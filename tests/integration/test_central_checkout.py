"""A department store's central checkout (one till, many counters): each line is sold for its counter, priced
and earned at that counter's rates, and settled to that counter, to the fen; a till that is no central
checkout, or a counter it does not serve, is refused at the till and quarantined at the ledger."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from protocols.business_day import business_day
from protocols.pricing import BasketLine, price
from protocols.rulebook import MemberEntry
from simulators.pos_client import ApiProblemError
from tests.harness import LedgerHandle, gateway_config, ledger_cli, running_gateway
from tests.integration.test_checkout import online_with_rules
from tests.ledger.test_hostile_terminal import honest_sale

pytestmark = [pytest.mark.ledger]

TART = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 12_00}
BAG = {"sku": "6900000000031", "name": "Bag", "category": "fashion", "unit_price": 100_00}


async def test_each_line_is_priced_earned_and_settled_for_its_counter(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    done = ledger_cli("terminal", "counters", "T-CC", "--counters", "M-BAKERY,M-LUXURY", *ledger.store_args())
    assert done.returncode != 0  # not enrolled yet: the operator hears it
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, terminal_id="T-CC", merchant_id="M-DEPT")
    config = dataclasses.replace(
        config, terminal=dataclasses.replace(config.terminal, counters=("M-BAKERY", "M-LUXURY"))
    )
    async with running_gateway(config) as (_gw, pos):
        done = ledger_cli("terminal", "counters", "T-CC", "--counters", "M-BAKERY,M-LUXURY", *ledger.store_args())
        assert done.returncode == 0, done.stderr
        await pos.wait_status(online_with_rules)
        basket = (await pos.new_basket())["basket_id"]
        await pos.call("POST", f"/v1/baskets/{basket}/member", {"token": await ledger.member_qr("M0001")})
        with pytest.raises(ApiProblemError) as caught:
            await pos.add_line(basket, **TART, merchant="M-TOYS")
        assert caught.value.status == 409
        assert "does not sell for counter M-TOYS" in str(caught.value.body["detail"])
        await pos.add_line(basket, **TART, merchant="M-BAKERY")
        view = await pos.add_line(basket, **BAG, merchant="M-LUXURY")
        # The classic tier pays 85 % at the bakery's counter and 95 % elsewhere: each line at its counter's rate.
        assert [(x["merchant"], x["rate"]) for x in view["lines"]] == [("M-BAKERY", 8500), ("M-LUXURY", 9500)]
        book = await ledger.rulebook()
        member = MemberEntry("M0001", "classic", "active", ())
        lines = [
            BasketLine(1, "6901234567892", "", "bakery", 1, 12_00, "M-BAKERY"),
            BasketLine(2, "6900000000031", "", "fashion", 1, 100_00, "M-LUXURY"),
        ]
        alone = price(lines, member, book, "M-DEPT", day=business_day(datetime.now(UTC), book.zone))
        assert view["total_due"] == alone.total_due == 10_20 + 95_00
        record = (await pos.complete_cash(basket, 110_00))["record"]
        assert [x["merchant"] for x in record["lines"]] == ["M-BAKERY", "M-LUXURY"]
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await pos.status())["journal"]["quarantined"] == 0
    settled = json.loads(ledger_cli("report", "settlement", "--json", *ledger.store_args()).stdout)
    tenants = (
        {t["merchant_id"]: t for t in settled["tenants"]}
        if isinstance(settled, dict)
        else {t["merchant_id"]: t for t in settled}
    )
    assert tenants["M-BAKERY"]["sales_net"] == 10_20
    assert tenants["M-LUXURY"]["sales_net"] == 95_00
    # The cash, net of the change, fills the counters in line order: each counter's tenders are its due.
    assert tenants["M-BAKERY"]["tenders"] == {"cash": 10_20}
    assert tenants["M-LUXURY"]["tenders"] == {"cash": 95_00}


async def test_a_till_that_is_no_central_checkout_cannot_sell_for_a_counter(ledger: LedgerHandle) -> None:
    till = await ledger.terminal("T-PLAIN", store="S-1", merchant="M-BAKERY")
    book = await ledger.rulebook()
    sale = honest_sale(book, None, 5_00)
    sale = dataclasses.replace(sale, lines=(dataclasses.replace(sale.lines[0], merchant="M-LUXURY"),))
    (result,) = await till.send(sale)
    assert result.status == "quarantined"
    assert "not a central checkout for" in str(result.reason)
