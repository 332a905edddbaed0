"""Receipts and the cash drawer through a real ESC/POS printer on a pty: what the printer simulator decodes
is the receipt document's text, line for line, with its return code as a QR; a printer out of paper
mid-receipt leaves the sale standing and the receipt printable again; a drawer that does not open is said."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simulators.pos_client import PosClient
from simulators.printer import PtyPrinter
from tests.harness import LedgerHandle, add_staff, gateway_config, running_gateway, until
from tests.integration.test_cashiers import staffed
from tests.integration.test_checkout import online_with_rules

pytestmark = [pytest.mark.ledger]

TART = {"sku": "6901234567892", "name": "Egg tart 蛋挞", "category": "bakery", "unit_price": 12_50}


@pytest.fixture
async def printer(tmp_path: Path) -> AsyncIterator[PtyPrinter]:
    sim = PtyPrinter(tmp_path / "printer")
    sim.plug()
    yield sim
    sim.unplug()


def printer_ready(s: dict[str, object]) -> bool:
    return online_with_rules(s) and any(d["device"] == "printer" and d["state"] == "idle" for d in s["devices"])  # type: ignore[attr-defined]


async def sell(pos: PosClient, quantity: int, cash: int) -> dict[str, object]:
    basket = (await pos.new_basket())["basket_id"]
    await pos.add_line(basket, **TART, quantity=quantity)
    return (await pos.complete_cash(basket, cash))["record"]  # type: ignore[no-any-return]


async def test_each_sale_prints_its_receipt_and_opens_the_drawer_for_cash(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], printer: PtyPrinter
) -> None:
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, printer=printer.link)
    async with running_gateway(config) as (_gw, pos):
        await pos.wait_status(printer_ready)
        record = await sell(pos, 2, 30_00)
        await until(lambda: len(printer.printed) == 1 and printer.kicks == 1, within=20)
        receipt = await pos.call("GET", f"/v1/receipts/{record['txn_id']}")
        page = printer.printed[0]
        assert page.lines[: len(receipt["text"])] == receipt["text"]  # what came out is the document, line for line
        assert page.qr == [receipt["return_code"]]
        assert receipt["return_code"] == f"RC1.T-TEST-01.{record['seq']}.{record['txn_id']}"
        assert "Egg tart 蛋挞" in receipt["text"][4]
        assert any(line.startswith("change") and line.endswith("¥5.00") for line in receipt["text"])
        assert "蛋挞".encode("gb18030") in base64.b64decode(receipt["escpos_base64"])
        assert "Egg tart 蛋挞" in receipt["html"]
        assert printer.drawer_open
        # Out of paper three lines into the next receipt: the sale stands, the alert names it, it prints again.
        printer.close_drawer()
        printer.paper_lines = 3
        second = await sell(pos, 1, 12_50)
        assert second["kind"] == "sale"
        await until(lambda: printer.paper_out, within=20)
        status = await pos.wait_status(lambda s: any(d["device"] == "printer" for d in s["devices"]))
        assert status["journal"]["total"] >= 2
        refused = await pos.call_problem("POST", f"/v1/receipts/{second['txn_id']}/print")
        assert (refused["status"], refused["type"]) == (503, "urn:posgw:problem:printer-not-ready")
        assert "out of paper" in refused["detail"]
        printer.paper_out, printer.paper_lines = False, None  # a new roll
        printer.pages[-1].lines.clear()
        again = await pos.call("POST", f"/v1/receipts/{second['txn_id']}/print")
        assert again["printed"]
        assert printer.printed[-1].lines[: len(again["text"])] == again["text"]


async def test_a_drawer_opened_without_a_sale_is_recorded_and_approved(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], printer: PtyPrinter
) -> None:
    add_staff(ledger, "C010", "1111")
    add_staff(ledger, "S010", "2222", role="supervisor")
    config = gateway_config(tmp_path / "gw", ledger.url, tokens, printer=printer.link)
    async with running_gateway(config) as (_gw, pos):
        await staffed(pos)
        await pos.call("POST", "/v1/cashier", {"staff_id": "C010", "pin": "1111"})
        refused = await pos.call_problem("POST", "/v1/drawer", {})
        assert refused["type"] == "urn:posgw:problem:approval-required"
        assert printer.kicks == 0
        opened = await pos.call("POST", "/v1/drawer", {"approval": {"staff_id": "S010", "pin": "2222"}})
        record = opened["record"]
        assert (record["kind"], record["cashier"], record["approved_by"]) == ("no_sale", "C010", "S010")
        assert printer.drawer_open
        # A jammed drawer: the attempt is recorded, the cashier hears it did not open.
        printer.close_drawer()
        printer.drawer_stuck = True
        stuck = await pos.call_problem("POST", "/v1/drawer", {"approval": {"staff_id": "S010", "pin": "2222"}})
        assert (stuck["status"], stuck["type"]) == (503, "urn:posgw:problem:drawer-not-open")
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        assert (await pos.status())["journal"]["quarantined"] == 0  # the ledger believes both
