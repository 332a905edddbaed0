"""The till's shift (``protocols/shifts.py``): opened with a float, read any time, closed with the cash counted.

A shift's open and close are journal records like any other: signed, chained,
synced, and re-checked by the ledger, which works out the Z report again from
the same chain. The shift open now is found again from the journal after a
restart. The close sums the shift's records in the same journal write that
commits it, so no sale falls between the report and its record.
"""

from __future__ import annotations

import asyncio

import structlog

from gateway.clock import utc_now
from gateway.config import TerminalConfig
from gateway.errors import ShiftRequiredError
from gateway.events import EventHub, ShiftChanged
from gateway.ledger_link.link import LedgerLink
from gateway.members.directory import MemberDirectory
from gateway.staff.desk import CashierDesk
from offline_queue.ids import uuid7
from offline_queue.journal import TransactionJournal
from protocols.money import format_cny
from protocols.records import RECORD_VERSION, TransactionRecord
from protocols.shift_totals import shift_totals
from protocols.shifts import ShiftReport

log = structlog.get_logger("posgw.shifts")


class Shifts:
    def __init__(
        self,
        terminal: TerminalConfig,
        journal: TransactionJournal,
        desk: CashierDesk,
        directory: MemberDirectory,
        link: LedgerLink,
        hub: EventHub,
    ) -> None:
        self.terminal = terminal
        self.journal = journal
        self.desk = desk
        self.directory = directory
        self.link = link
        self.hub = hub
        self.opened: TransactionRecord | None = None  # the open record of the shift open now
        self._lock = asyncio.Lock()

    async def restore(self) -> None:
        """After a restart: the shift open in the journal, if its last shift record is an open."""
        last = await self.journal.lookups.last_shift_event()
        self.opened = last if last is not None and last.kind == "shift_open" else None
        self.desk.shift = self.opened.shift if self.opened else None

    def require(self) -> None:
        """Refused while the till needs a cashier (it holds staff) and no shift is open."""
        if self.desk.required and self.opened is None:
            raise ShiftRequiredError("no shift is open on this till: open one with the drawer's float")

    def _event(self, kind: str, shift: str, report: ShiftReport, cashier: str) -> TransactionRecord:
        term = self.terminal
        return TransactionRecord(
            str(uuid7()), term.terminal_id, 0, kind, utc_now(), term.store_id, term.merchant_id, term.currency,
            (), 0, 0, 0, (), 0, None, None, 0, self.directory.rulebook.version, not self.link.online,
            version=RECORD_VERSION, cashier=cashier, shift=shift, shift_report=report,
        )  # fmt: skip

    async def open(self, float_amount: int) -> TransactionRecord:
        cashier = self.desk.who()
        if cashier is None:
            raise ShiftRequiredError("shifts are kept where the till holds the mall's staff: none is held yet")
        async with self._lock:
            if self.opened is not None:
                raise ShiftRequiredError(f"shift {self.opened.shift} is open already: close it (Z report) first")
            shift = uuid7().hex
            # Named before the open is committed: a record the writer commits after it (a join, say, whose
            # caller resumes first) names the shift, as the ledger's check of the Z report will want.
            self.desk.shift = shift
            try:
                record, _ = await self.journal.append(
                    self._event("shift_open", shift, ShiftReport(float_amount), cashier)
                )
            except BaseException:
                self.desk.shift = None
                raise
            self.opened = record
        log.info("shift_opened", shift=shift, seq=record.seq, cashier=cashier, float=format_cny(float_amount))
        self.hub.publish(ShiftChanged(shift=shift, state="open", seq=record.seq))
        self.link.records_waiting()
        return record

    async def x_report(self) -> ShiftReport:
        """The open shift's totals so far (nothing is recorded)."""
        opened = self._open()
        records = await self.journal.lookups.records_after(opened.seq)
        assert opened.shift_report is not None
        return ShiftReport(opened.shift_report.float_amount, opened.seq, None, shift_totals(records))

    async def close(self, counted: int) -> TransactionRecord:
        """The Z report: the open shift's totals and the cash counted, recorded; the till has no shift after."""
        async with self._lock:
            opened = self._open()
            cashier = self.desk.who()
            assert cashier is not None  # a shift opens only where staff is held
            assert opened.shift_report is not None
            assert opened.shift is not None
            shift, float_amount = opened.shift, opened.shift_report.float_amount

            def build(records: list[TransactionRecord]) -> TransactionRecord:
                report = ShiftReport(float_amount, opened.seq, counted, shift_totals(records))
                self.desk.shift = None  # in the writer: a record committed after the close names no shift
                return self._event("shift_close", shift, report, cashier)

            try:
                record = await self.journal.append_closing(opened.seq, build)
            except BaseException:
                self.desk.shift = shift
                raise
            self.opened = None
        report = record.shift_report
        assert report is not None
        log.info("shift_closed", shift=shift, seq=record.seq, cashier=cashier, over_short=format_cny(report.over_short))
        self.hub.publish(ShiftChanged(shift=shift, state="closed", seq=record.seq, over_short=report.over_short))
        self.link.records_waiting()
        return record

    def _open(self) -> TransactionRecord:
        if self.opened is None:
            raise ShiftRequiredError("no shift is open on this till (its Z report was taken, or none was opened)")
        self.desk.who()
        return self.opened
