"""Receipts printed and the cash drawer opened, on the till's ESC/POS printer (``drivers/receipt_printer.py``).

Every sale and refund is printed once it is journaled (its record is the
receipt's only source, ``protocols/receipts.py``), and the drawer kicked when
cash moved. Printing never undoes anything: a printer out of paper, open, or
gone leaves the sale standing, raises a ``receipt-not-printed`` alert naming
the sale, and the receipt is printed again with ``POST
/v1/receipts/{txn_id}/print`` (from the journal, after a restart too). A
drawer opened without a sale is a ``no_sale`` record, approved by a
supervisor where the till holds staff, journaled before the kick.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import structlog

from drivers.supervisor import DeviceSupervisor
from gateway.clock import utc_now
from gateway.config import TerminalConfig
from gateway.errors import ConflictError, NotFoundError
from gateway.events import Alert, Event, EventHub, RefundRecorded, SaleRecorded
from gateway.ledger_link.link import LedgerLink
from gateway.members.directory import MemberDirectory
from gateway.members.points import PointsSpending
from gateway.staff.desk import Approval, CashierDesk
from offline_queue.ids import uuid7
from offline_queue.journal import TransactionJournal
from protocols.errors import GatewayError
from protocols.receipts import Receipt, receipt_of, render_escpos
from protocols.records import RECORD_VERSION, TransactionRecord

log = structlog.get_logger("posgw.receipts")


class Printer(Protocol):
    """A device that prints ESC/POS and kicks a drawer (``drivers/receipt_printer.py``)."""

    name: str

    @property
    def width(self) -> int: ...

    async def print_job(self, data: bytes) -> None: ...

    async def kick_drawer(self) -> None: ...


class ReceiptDesk:
    def __init__(
        self,
        terminal: TerminalConfig,
        journal: TransactionJournal,
        directory: MemberDirectory,
        points: PointsSpending,
        staff: CashierDesk,
        link: LedgerLink,
        hub: EventHub,
    ) -> None:
        self.terminal = terminal
        self.journal = journal
        self.directory = directory
        self.points = points
        self.staff = staff
        self.link = link
        self.hub = hub
        self.supervisors: list[DeviceSupervisor] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def printer(self) -> Printer | None:
        for s in self.supervisors:
            device: Any = s.device
            if getattr(device, "kind", None) == "printer" and hasattr(device, "print_job"):
                return device  # type: ignore[no-any-return]
        return None

    async def receipt(self, txn_id: str) -> Receipt:
        record = await self.journal.get(txn_id)
        if record is None or record.kind not in ("sale", "refund", "void", "topup"):
            raise NotFoundError(f"no sale or refund {txn_id} in this terminal's journal")
        balance = None
        if record.member_id:
            try:
                balance = await self.points.available(self.directory.lookup(record.member_id))
            except GatewayError:  # a member this till does not hold: no balance shown
                balance = None
            else:
                balance += record.points_earned + record.points_returned
        return receipt_of(record, self.directory.rulebook.zone, self.terminal.store_id, balance)

    async def print(self, txn_id: str) -> Receipt:
        """Print (or print again) the receipt of a sale or refund of this till."""
        printer = self.printer()
        if printer is None:
            raise ConflictError("no receipt printer is configured at this till ([[devices]] driver escpos-printer)")
        receipt = await self.receipt(txn_id)
        await printer.print_job(render_escpos(receipt, printer.width))
        log.info("receipt_printed", txn_id=txn_id, printer=printer.name)
        return receipt

    async def open_drawer(self, approval: Approval | None) -> TransactionRecord:
        """A drawer opened without a sale: recorded (``no_sale``, who and who approved), then kicked."""
        printer = self.printer()
        if printer is None:
            raise ConflictError("no cash drawer is configured at this till (it opens through the receipt printer)")
        approved_by = await self.staff.approve("no_sale", 0, approval)
        term = self.terminal
        draft = TransactionRecord(
            str(uuid7()), term.terminal_id, 0, "no_sale", utc_now(), term.store_id, term.merchant_id, term.currency,
            (), 0, 0, 0, (), 0, None, None, 0, self.directory.rulebook.version, not self.link.online,
            version=RECORD_VERSION, cashier=self.staff.who(), approved_by=approved_by,
        )  # fmt: skip
        record, _ = await self.journal.append(draft)
        self.link.records_waiting()
        await printer.kick_drawer()
        log.info("drawer_opened", txn_id=record.txn_id, cashier=record.cashier, approved_by=approved_by)
        return record

    def on_event(self, event: Event) -> None:
        """A hub listener: each sale and refund journaled is printed, off the caller's path."""
        if isinstance(event, SaleRecorded | RefundRecorded) and self.printer() is not None:
            task = asyncio.get_running_loop().create_task(self._print_after(event.txn_id), name="receipt")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _print_after(self, txn_id: str) -> None:
        try:
            await self.print(txn_id)
        except GatewayError as err:  # the sale stands: the cashier prints it again
            log.warning("receipt_not_printed", txn_id=txn_id, error=str(err))
            message = f"the receipt of {txn_id} was not printed ({err}): print it again"
            self.hub.publish(Alert(code="receipt-not-printed", message=message))
        try:
            record = await self.journal.get(txn_id)
            printer = self.printer()
            if record is None or printer is None or not any(t.kind == "cash" for t in record.tenders):
                return
            await printer.kick_drawer()
        except GatewayError as err:
            log.warning("drawer_not_opened", txn_id=txn_id, error=str(err))
            self.hub.publish(Alert(code="drawer-not-open", message=f"{err} (sale {txn_id})"))
