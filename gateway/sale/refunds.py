"""Refund all or part of a sale made at this terminal, or void it, exactly.

The refund is planned from the sale and the refunds before it
(``protocols/refunds.py``), paid back the way the money came
(``gateway/payments/refunding.py``), and journaled as its own record.
"""

from __future__ import annotations

import asyncio

import structlog

from gateway.clock import utc_now
from gateway.errors import ConflictError, NotFoundError
from gateway.events import EventHub, RefundRecorded
from gateway.ledger_link.link import LedgerLink
from gateway.members.directory import MemberDirectory
from gateway.payments.refunding import RefundDesk
from gateway.sale.completion import CompletedSale
from gateway.sale.intake import Intake
from gateway.sale.pricing import Pricer
from offline_queue.ids import uuid7
from offline_queue.journal import TransactionJournal
from protocols.money import format_cny
from protocols.refunds import plan_refund

log = structlog.get_logger("posgw.refunds")


class Refunds:
    def __init__(
        self,
        terminal_id: str,
        journal: TransactionJournal,
        desk: RefundDesk,
        directory: MemberDirectory,
        pricer: Pricer,
        link: LedgerLink,
        intake: Intake,
        hub: EventHub,
    ) -> None:
        self.terminal_id = terminal_id
        self.journal = journal
        self.desk = desk
        self.directory = directory
        self.pricer = pricer
        self.link = link
        self.intake = intake
        self.hub = hub
        self._locks: dict[str, asyncio.Lock] = {}

    async def refund(
        self, txn_id: str, wanted: dict[int, int] | None, idempotency_key: str, *, void: bool = False, digest: str = ""
    ) -> CompletedSale:
        """Refund all or part of a sale made at this terminal, or void it, exactly (``protocols/refunds.py``)."""
        self.intake.refuse_if_draining("takes no refunds")
        fingerprint = f"{'void' if void else 'refund'}:{txn_id}" + (f"#{digest}" if digest else "")
        earlier_reply = await self.journal.replay(idempotency_key, fingerprint)
        if earlier_reply is not None:
            return CompletedSale(earlier_reply, True)
        lock = self._locks.setdefault(txn_id, asyncio.Lock())
        async with lock:  # two refunds of one sale must not both take the same units
            sale = await self.journal.get(txn_id)
            if sale is None:
                raise NotFoundError(f"no sale {txn_id} in this terminal's journal")
            if any(p.basket_id == f"refund:{txn_id}" for p in await self.journal.payments.open_refunds()):
                raise ConflictError("an earlier refund of this sale is still being settled; try again in a minute")
            draft = plan_refund(
                sale,
                await self.journal.lookups.refunds_of(txn_id),
                wanted,
                rulebook=self.directory.rulebook,
                today=self.pricer.today(),
                draft_fields={
                    "txn_id": str(uuid7()),
                    "terminal_id": self.terminal_id,
                    "seq": 0,
                    "created_at": utc_now(),
                    "offline": not self.link.online,
                },
                void=void,
            )
            # Money goes back the way it came; a wallet or card that refuses is paid in cash instead.
            draft, settled = await self.desk.pay_back(draft, idempotency_key, fingerprint)
            record, replayed = await self.journal.append(
                draft, idempotency_key=idempotency_key, fingerprint=fingerprint, payments=settled
            )
        log.info(
            "refund_recorded",
            txn_id=record.txn_id,
            refund_of=txn_id,
            total=format_cny(record.total_due),
            clawback=record.points_clawback,
            returned=record.points_returned,
        )
        self.hub.publish(RefundRecorded(txn_id=record.txn_id, refund_of=txn_id, total_due=record.total_due))
        self.link.records_waiting()
        return CompletedSale(record, replayed)
