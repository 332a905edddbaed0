"""Refund all or part of a sale, or void it, exactly: a sale of this till, or (online) of any till of the mall.

The refund is planned from the sale and the refunds before it
(``protocols/refunds.py``), paid back the way the money came
(``gateway/payments/refunding.py``), and journaled as its own record.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any, Protocol

import structlog

from gateway.clock import utc_now
from gateway.errors import ConflictError, LedgerError, LedgerRefusedError, NotFoundError
from gateway.events import EventHub, RefundRecorded
from gateway.ledger_link.link import LedgerLink
from gateway.members.directory import MemberDirectory
from gateway.payments.refunding import RefundDesk
from gateway.sale.completion import CompletedSale
from gateway.sale.intake import Intake
from gateway.sale.pricing import Pricer
from gateway.staff.desk import Approval, CashierDesk
from offline_queue.ids import uuid7
from offline_queue.journal import TransactionJournal
from protocols.errors import GatewayError
from protocols.money import format_cny
from protocols.records import TransactionRecord
from protocols.refunds import plan_refund, plan_topup_refund

log = structlog.get_logger("posgw.refunds")


class RefundLedger(Protocol):
    """What giving a top-up back, and a return of another till's sale, ask of the ledger (``LedgerClient``)."""

    async def fetch_sale(self, txn_id: str) -> tuple[TransactionRecord, list[TransactionRecord]]: ...

    async def wallet_statement(self, member_id: str, code: str) -> dict[str, Any]: ...

    async def hold_wallet(self, member_id: str, amount: int, ref: str, terminal_id: str, code: str) -> None: ...

    async def release_wallet(self, ref: str) -> None: ...


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
        ledger: RefundLedger,
        staff: CashierDesk,
    ) -> None:
        self.terminal_id = terminal_id
        self.journal = journal
        self.desk = desk
        self.directory = directory
        self.pricer = pricer
        self.link = link
        self.intake = intake
        self.hub = hub
        self.ledger = ledger
        self.staff = staff
        self._locks: dict[str, asyncio.Lock] = {}

    async def refund(
        self,
        txn_id: str,
        wanted: dict[int, int] | None,
        idempotency_key: str,
        *,
        void: bool = False,
        digest: str = "",
        code: str | None = None,
        approval: Approval | None = None,
    ) -> CompletedSale:
        """Refund all or part of a sale of this till or (online, a return at another till) of any till of the mall,
        or void it, exactly (``protocols/refunds.py``);
        give a top-up back with the member's wallet ``code`` (:meth:`_topup_draft`). Where the till holds staff,
        the cashier signed in makes it, a supervisor approves it as the policy asks (``approval``, checked
        before any money moves), and it belongs to the shift open."""
        self.intake.refuse_if_draining("takes no refunds")
        fingerprint = f"{'void' if void else 'refund'}:{txn_id}" + (f"#{digest}" if digest else "")
        earlier_reply = await self.journal.replay(idempotency_key, fingerprint)
        if earlier_reply is not None:
            return CompletedSale(earlier_reply, True)
        lock = self._locks.setdefault(txn_id, asyncio.Lock())
        async with lock:  # two refunds of one sale must not both take the same units
            self.intake.on_duty()
            sale = await self.journal.get(txn_id)
            earlier = await self.journal.lookups.refunds_of(txn_id)
            if sale is None:  # a return at another till: the ledger has it, with its refunds at every till
                sale, earlier = await self._from_ledger(txn_id, earlier)
            elif self.link.online and sale.kind == "sale":  # returned elsewhere already, in part? the ledger knows
                with contextlib.suppress(LedgerError, LedgerRefusedError):  # offline or not synced yet: ours alone
                    earlier = _merged((await self.ledger.fetch_sale(txn_id))[1], earlier)
            if any(p.basket_id == f"refund:{txn_id}" for p in await self.journal.payments.open_refunds()):
                raise ConflictError("an earlier refund of this sale is still being settled; try again in a minute")
            fields = {
                "txn_id": str(uuid7()),
                "terminal_id": self.terminal_id,
                "seq": 0,
                "created_at": utc_now(),
                "offline": not self.link.online,
                "sale_terminal": sale.terminal_id if sale.terminal_id != self.terminal_id else None,
            }
            if sale.kind == "topup" and not void:
                draft = await self._topup_draft(sale, earlier, wanted, code, fields)
            else:
                today = self.pricer.today()
                draft = plan_refund(
                    sale, earlier, wanted, rulebook=self.directory.rulebook, today=today, draft_fields=fields, void=void
                )
            try:
                approved_by = await self.staff.approve("void" if void else "refund", draft.total_due, approval)
                draft = dataclasses.replace(draft, cashier=self.staff.who(), approved_by=approved_by)
                # Money goes back the way it came; a wallet or card that refuses is paid in cash instead.
                draft, settled = await self.desk.pay_back(draft, idempotency_key, fingerprint)
                record, replayed = await self.journal.append(
                    draft, idempotency_key=idempotency_key, fingerprint=fingerprint, payments=settled
                )
            except BaseException:
                if draft.reservation and sale.kind == "topup":  # nothing was given back: the stored value stays
                    with contextlib.suppress(GatewayError):
                        await self.ledger.release_wallet(draft.reservation)
                raise
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

    async def _from_ledger(
        self, txn_id: str, here: list[TransactionRecord]
    ) -> tuple[TransactionRecord, list[TransactionRecord]]:
        """Another till's sale and its refunds, from the ledger; with the refunds of it made here and not synced
        yet. Offline, refused: what is left to give back is known at the ledger alone."""
        try:
            sale, refunds = await self.ledger.fetch_sale(txn_id)
        except LedgerRefusedError as err:
            raise NotFoundError(f"sale {txn_id} is not in this till's journal, and the ledger says: {err}") from err
        except LedgerError as err:
            raise ConflictError(
                f"sale {txn_id} was not made at this till, and the ledger is out of reach ({err}): a return of "
                "another till's sale needs the ledger; take it at the till that made it, or when the ledger is back"
            ) from err
        earlier = _merged(refunds, here)
        log.info("return_of_another_till", txn_id=txn_id, sale_terminal=sale.terminal_id, refunds=len(earlier))
        return sale, earlier

    async def _topup_draft(
        self,
        topup: TransactionRecord,
        earlier: list[TransactionRecord],
        wanted: dict[int, int] | None,
        code: str | None,
        fields: dict[str, object],
    ) -> TransactionRecord:
        """A top-up given back: all that is left of it that the member still holds as their own money (never
        a bonus as money), taken from their wallet on a hold the ledger makes with their wallet code."""
        if wanted is not None:
            raise ConflictError("a top-up is given back whole (what is left of it): name no lines")
        if code is None or not code.startswith("PW1."):
            raise ConflictError("the member shows their wallet pay code: the stored value is taken back from it")
        if not self.link.online:
            raise ConflictError("a top-up is given back online only: the ledger takes the stored value back")
        assert topup.member_id is not None
        statement = await self.ledger.wallet_statement(topup.member_id, code)
        own = int(statement["balance"]) - sum(int(b["remaining"]) for b in statement["bonus"])
        left = topup.total_due - sum(r.total_due for r in earlier)
        give = min(left, own)
        if give <= 0:
            raise ConflictError(
                f"nothing of this top-up can be given back: {format_cny(max(left, 0))} of it is left, and the member "
                f"holds {format_cny(max(own, 0))} of their own stored value (bonuses are not given back as money)"
            )
        ref = uuid7().hex
        await self.ledger.hold_wallet(topup.member_id, give, ref, self.terminal_id, code)
        return plan_topup_refund(
            topup, earlier, give, ref, rulebook_version=self.directory.rulebook.version, draft_fields=fields
        )


def _merged(at_ledger: list[TransactionRecord], here: list[TransactionRecord]) -> list[TransactionRecord]:
    """A sale's refunds the ledger applied (at every till) and those made here not synced yet, oldest first."""
    known = {r.txn_id for r in at_ledger}
    return sorted([*at_ledger, *(r for r in here if r.txn_id not in known)], key=lambda r: r.created_at)
