"""A store's day as its auditor reads it: two tills and a service desk, each with its cashier and shift; sales,
a void a supervisor approved, a return at the desk of another till's sale; every shift closed with its Z
report; then the ledger alone answers who sold, refunded and voided what, on which till, in which shift,
and every Z report agrees to the fen with the ledger's own figures for that till."""

from __future__ import annotations

import json
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from simulators.pos_client import PosClient
from tests.harness import LedgerHandle, add_staff, gateway_config, ledger_cli, running_gateway
from tests.integration.test_cashiers import staffed

pytestmark = [pytest.mark.ledger]

TART = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 12_00}
CAKE = {"sku": "6909876543212", "name": "Cake", "category": "bakery", "unit_price": 168_00}
SUPERVISOR = {"staff_id": "SUP", "pin": "9090"}


async def sell(pos: PosClient, lines: list[tuple[dict[str, Any], int]], cash: int) -> dict[str, Any]:
    basket = (await pos.new_basket())["basket_id"]
    for line, quantity in lines:
        await pos.add_line(basket, **line, quantity=quantity)
    return (await pos.complete_cash(basket, cash))["record"]  # type: ignore[no-any-return]


async def post(pos: PosClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return (await pos.call("POST", path, body, {"Idempotency-Key": uuid.uuid4().hex}))["record"]  # type: ignore[no-any-return]


async def test_two_tills_and_a_service_desk_reconcile_to_the_fen_at_the_ledger(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str]
) -> None:
    staff = {"T-A": ("CA", "1111"), "T-B": ("CB", "2222"), "T-DESK": ("CD", "3333")}
    for staff_id, pin in staff.values():
        add_staff(ledger, staff_id, pin)
    add_staff(ledger, SUPERVISOR["staff_id"], SUPERVISOR["pin"], role="supervisor")
    floats = {"T-A": 500_00, "T-B": 300_00, "T-DESK": 1_000_00}
    async with AsyncExitStack() as stack:
        tills: dict[str, PosClient] = {}
        for terminal in staff:
            config = gateway_config(tmp_path / terminal, ledger.url, tokens, terminal_id=terminal)
            _gw, pos = await stack.enter_async_context(running_gateway(config))
            await staffed(pos)
            staff_id, pin = staff[terminal]
            await pos.call("POST", "/v1/cashier", {"staff_id": staff_id, "pin": pin})
            await pos.call("POST", "/v1/shifts", {"float": floats[terminal]})
            tills[terminal] = pos
        a, b, desk = tills["T-A"], tills["T-B"], tills["T-DESK"]
        big = await sell(a, [(TART, 4), (CAKE, 1)], 300_00)
        await sell(a, [(TART, 1)], 20_00)
        await sell(b, [(CAKE, 2)], 400_00)
        wrong = await sell(b, [(TART, 2)], 24_00)
        await post(b, "/v1/voids", {"txn_id": wrong["txn_id"], "approval": SUPERVISOR})
        await a.wait_status(lambda s: s["journal"]["pending"] == 0)
        # The cake of till A's sale comes back at the service desk.
        returned = await post(desk, "/v1/refunds", {"txn_id": big["txn_id"], "lines": [{"line": 2, "quantity": 1}]})
        assert returned["sale_terminal"] == "T-A"
        zs: dict[str, dict[str, Any]] = {}
        for terminal, pos in tills.items():
            x = await pos.call("GET", "/v1/shifts/current")
            short = 100 if terminal == "T-DESK" else 0  # the desk counts ¥1 short
            zs[terminal] = await pos.call("POST", "/v1/shifts/current/close", {"counted": x["expected_cash"] - short})
        for pos in tills.values():
            status = await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
            assert status["journal"]["quarantined"] == 0  # the ledger believed every record, Z reports included
    report = json.loads(ledger_cli("staff", "report", "--json", *ledger.store_args()).stdout)
    # Who did what, from the ledger alone.
    assert report["cashiers"]["CA"]["sales"] == 2
    assert report["cashiers"]["CB"]["sales"] == 2
    assert report["cashiers"]["CB"]["voids"] == 1
    assert report["cashiers"]["CD"]["refunds"] == 1
    assert report["cashiers"]["SUP"]["approved"] == 1
    # Every shift, by its till, to the fen: the till's Z report against the ledger's own figures for that till.
    shifts = {s["terminal_id"]: s for s in report["shifts"]}
    for terminal, z in zs.items():
        mine = z["report"]["totals"]
        theirs = report["tills"][terminal]
        for kind in ("sale", "refund", "void"):
            count, fen = mine["kinds"].get(kind, [0, 0])
            assert (theirs.get(f"{kind}s", 0), theirs.get(f"{kind}s_due", 0)) == (count, fen), (terminal, kind)
        assert mine["tenders"].get("cash", 0) == theirs["by_tender"].get("cash", 0)
        assert shifts[terminal]["expected_cash"] == floats[terminal] + theirs["by_tender"].get("cash", 0)
        assert shifts[terminal]["over_short"] == z["over_short"]
        assert shifts[terminal]["state"] == "applied"
    assert shifts["T-DESK"]["over_short"] == -100
    assert zs["T-DESK"]["report"]["totals"]["tenders"]["cash"] == -returned["total_due"]  # paid out at the desk
