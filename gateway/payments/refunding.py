"""Refunds paid back the way the money came: to the wallet or card that paid.

A refund's tenders are planned by ``gateway/refunds.py`` (non-cash first, in
the order the sale was paid, then cash). Parts a provider must pay back
(WeChat Pay, Alipay, the card terminal) are written to the journal as refund
intents, all in one commit, *before* any is asked; each intent carries the
planned refund record. Then each part runs its refund flow
(``protocols/refund.py``): refunded, refused (the cashier pays that part in
cash instead, and the record says so), or unknown after every retry (kept as
asked, raised for store IT). The refund record is then journaled with the
tenders as they really went, settling its intents in the same commit.

Stored-value parts need no provider: the refund record's ``wallet`` tender
credits the member's wallet at the ledger when it syncs.

After a crash, intents without a record are finished at start: pending parts
are asked again (the same reference is the same refund at the provider, never
a second one), and the record is written from the plan the intents carry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import defaultdict

import structlog

from gateway.clock import utc_now
from gateway.errors import ConflictError
from gateway.events import Alert, EventHub
from gateway.payments.desk import PaymentDesk
from gateway.payments.messages import message
from gateway.payments.runner import run_refund
from offline_queue.ids import uuid7
from offline_queue.journal import TransactionJournal
from offline_queue.payments import PaymentIntent
from protocols.errors import GatewayError
from protocols.money import format_cny
from protocols.records import Tender, TransactionRecord
from protocols.refund import RefundFlow, RefundOutcome

log = structlog.get_logger("posgw.refunds")

PROVIDER_KINDS = ("wechat", "alipay", "card")  # paid back by a provider; wallet by the record, cash by the cashier


class RefundDesk:
    def __init__(self, desk: PaymentDesk, journal: TransactionJournal, hub: EventHub, retry_seconds: float) -> None:
        self.desk = desk
        self.delays = tuple(retry_seconds * 2**n for n in range(4))
        self.journal = journal
        self.hub = hub

    async def pay_back(
        self, draft: TransactionRecord, key: str, fingerprint: str
    ) -> tuple[TransactionRecord, tuple[str, ...]]:
        """Pay back the draft's provider parts; return the record as it went and the intents it settles."""
        parts = [(i, t) for i, t in enumerate(draft.tenders) if t.kind in PROVIDER_KINDS]
        if not parts:
            return draft, ()
        if await self.journal.payments.payment_by_key(f"{key}#0") is not None:
            raise ConflictError("this refund is still being settled after a restart; try again in a minute")
        now = utc_now()
        # seq 1 is a placeholder the record schema accepts; the journal numbers the record when it is written.
        plan = json.dumps({**draft.to_wire(), "seq": 1})
        intents = [
            PaymentIntent(
                str(uuid7()),
                f"refund:{draft.refund_of}",
                f"{key}#{n}",
                t.kind,
                t.kind,
                "",
                t.amount,
                draft.currency,
                RefundOutcome.PENDING,
                (),
                now,
                now,
                detail={"original": t.ref or "", "part": str(i), "key": key, "fingerprint": fingerprint, "plan": plan},
            )
            for n, (i, t) in enumerate(parts)
        ]
        await self.journal.payments.begin_refunds(intents)  # on disk before any provider hears of them
        done = [await self._run(intent) for intent in intents]
        return _as_paid(draft, done), tuple(p.payment_id for p in done)

    async def _run(self, intent: PaymentIntent) -> PaymentIntent:
        provider = self.desk.providers.get(intent.wallet)
        flow = RefundFlow(asyncio.get_running_loop().time(), self.delays)
        if provider is None:  # no longer set up here: that part is paid in cash
            flow.outcome = RefundOutcome.REFUSED
        else:
            original = intent.detail["original"]
            await run_refund(provider, intent.payment_id, original, intent.amount, flow, self.desk.reporter(intent))
        history = (*intent.history, *(what for _, what in flow.history))
        done = dataclasses.replace(intent, state=flow.outcome, history=history, updated_at=utc_now())
        await self.journal.payments.payment_outcome(done)
        log.info(
            "refund_part",
            payment_id=done.payment_id,
            wallet=done.wallet,
            amount=format_cny(done.amount),
            outcome=done.state,
        )
        self.desk.publish(done, outcome=done.state, message=message(done))
        if flow.outcome is RefundOutcome.UNKNOWN:
            self.hub.publish(Alert(code="refund-unknown", message=message(done)))
        return done

    async def finish(self, leftovers: list[PaymentIntent]) -> list[TransactionRecord]:
        """At start: complete the refunds a previous run left without their record."""
        groups: dict[str, list[PaymentIntent]] = defaultdict(list)
        for intent in leftovers:
            groups[intent.detail.get("plan", "")].append(intent)
        written = []
        for plan, parts in groups.items():
            try:
                draft = dataclasses.replace(TransactionRecord.from_wire(json.loads(plan)), seq=0)
                done = [p if p.state != RefundOutcome.PENDING else await self._run(p) for p in parts]
                record, _ = await self.journal.append(
                    _as_paid(draft, done),
                    idempotency_key=parts[0].detail["key"],
                    fingerprint=parts[0].detail["fingerprint"],
                    payments=tuple(p.payment_id for p in done),
                )
            except (GatewayError, ValueError, KeyError) as err:
                log.error("refund_unfinished", parts=[p.payment_id for p in parts], error=str(err))
                self.hub.publish(Alert(code="refund-unfinished", message=f"a refund could not be completed: {err}"))
                continue
            log.warning("refund_finished_after_restart", txn_id=record.txn_id, refund_of=record.refund_of)
            written.append(record)
        return written


def _as_paid(draft: TransactionRecord, done: list[PaymentIntent]) -> TransactionRecord:
    """The planned tenders as they went: a refused part is paid in cash instead."""
    refused = {int(p.detail["part"]) for p in done if p.state == RefundOutcome.REFUSED}
    tenders = tuple(Tender("cash", t.amount) if i in refused else t for i, t in enumerate(draft.tenders))
    return dataclasses.replace(draft, tenders=tenders)
