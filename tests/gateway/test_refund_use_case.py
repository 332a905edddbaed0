"""The refund use case with in-memory collaborators and a journal file: no process, no socket."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import DrainingError, LedgerRefusedError, NotFoundError
from gateway.events import EventHub, RefundRecorded
from gateway.ledger_link.link import LedgerLink
from gateway.members.directory import MemberDirectory
from gateway.payments.desk import PaymentDesk
from gateway.payments.refunding import RefundDesk
from gateway.sale.intake import Intake
from gateway.sale.pricing import Pricer
from gateway.sale.refunds import Refunds
from gateway.staff.desk import CashierDesk
from gateway.staff.roster import Roster
from offline_queue.journal import TransactionJournal
from offline_queue.limits import JournalLimits
from protocols.records import TransactionRecord
from protocols.refunds import RefundRefusedError
from tests.gateway.records import draft

SALE_DAY = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


class NoLedger:
    """These refunds never ask the ledger (a top-up's is tested with a real one, tests/integration)."""

    async def wallet_statement(self, member_id: str, code: str) -> dict[str, Any]:
        raise AssertionError("not asked")

    async def hold_wallet(self, member_id: str, amount: int, ref: str, terminal_id: str, code: str) -> None:
        raise AssertionError("not asked")

    async def release_wallet(self, ref: str) -> None:
        raise AssertionError("not asked")

    async def fetch_sale(self, txn_id: str) -> tuple[TransactionRecord, list[TransactionRecord]]:
        raise LedgerRefusedError(f"the ledger holds no sale {txn_id}")  # as a real ledger answers an unknown one


def refunds_over(journal: TransactionJournal, events: list[object]) -> tuple[Refunds, Intake]:
    hub = EventHub()
    hub.listeners.append(events.append)
    limits = JournalLimits(max_records=1000, max_bytes=10**9, max_pending_age=10**9)
    desk = RefundDesk(PaymentDesk({}, journal, hub, limits, deadline=5.0, currency="CNY"), journal, hub, 0.01)
    directory, intake = MemberDirectory(), Intake()
    pricer = Pricer(directory, "M-1", clock=lambda: SALE_DAY)
    staff = CashierDesk(Roster(Path("/nonexistent/staff.json"), directory.ledger_key), hub)  # no staff list held
    return Refunds("T-1", journal, desk, directory, pricer, LedgerLink(hub), intake, hub, NoLedger(), staff), intake


async def test_a_cash_sale_is_refunded_once_in_full_and_the_refund_is_journaled(
    journal: TransactionJournal,
) -> None:
    sale, _ = await journal.append(draft(amount=2_500))
    events: list[object] = []
    refunds, _ = refunds_over(journal, events)
    done = await refunds.refund(sale.txn_id, None, "refund-key-1")
    assert (done.record.kind, done.record.refund_of, done.record.total_due, done.replayed) == (
        "refund",
        sale.txn_id,
        2_500,
        False,
    )
    assert [t.kind for t in done.record.tenders] == ["cash"]  # back the way it came
    assert done.record.offline is True  # the link never heard from the ledger
    again = await refunds.refund(sale.txn_id, None, "refund-key-1")
    assert (again.replayed, again.record.txn_id) == (True, done.record.txn_id)
    with pytest.raises(RefundRefusedError):
        await refunds.refund(sale.txn_id, None, "refund-key-2")  # nothing is left to give back
    assert [e.refund_of for e in events if isinstance(e, RefundRecorded)] == [sale.txn_id]


async def test_no_refund_of_a_sale_this_journal_does_not_hold_nor_while_draining(
    journal: TransactionJournal,
) -> None:
    refunds, intake = refunds_over(journal, [])
    with pytest.raises(NotFoundError):
        await refunds.refund("01a20b44-d22e-7abc-8def-000000000000", None, "refund-key-1")
    intake.draining = True
    with pytest.raises(DrainingError):
        await refunds.refund("01a20b44-d22e-7abc-8def-000000000000", None, "refund-key-2")
