"""Take scan-to-pay payments for baskets: never charge twice, never lose a charge.

Each payment is written to the journal as an intent *before* the provider is
asked (``offline_queue/payments.py``); the flow then runs in its own task, so
a cashier's request that gives up, or a client that disconnects, never
abandons a payment half way. Every step goes to the till over the WebSocket
(``payment`` events) and the outcome is on disk before the cashier hears it.

The desk knows payments, not baskets (``gateway/sale/paying.py`` ties them).
A paid payment belongs to its basket until the sale that uses it is committed
(in the same commit). A basket that is cancelled gives its payments back
(reverse); so does a restart, which finds the baskets gone: every payment the
journal still lists as open is queried, then completed as paid-and-given-back
or reversed, and anything that cannot be settled is raised as ``attention``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import structlog

from drivers.payment_provider import WALLET_NAMES, PaymentProvider
from gateway.clock import utc_now
from gateway.errors import ConflictError, PaymentCodeError, PaymentUnavailableError
from gateway.events import Alert, EventHub, PaymentStep
from gateway.payments.messages import MESSAGES, message
from gateway.payments.runner import run_flow
from offline_queue.errors import IdempotencyConflictError
from offline_queue.ids import uuid7
from offline_queue.journal import TransactionJournal
from offline_queue.limits import JournalLimitError, JournalLimits
from offline_queue.payments import PaymentIntent
from protocols.codes import payment_provider
from protocols.errors import GatewayError
from protocols.micropay import Answer, MicropayFlow, Outcome, Step
from protocols.money import format_cny

log = structlog.get_logger("posgw.payments")


class PaymentDesk:
    def __init__(
        self,
        providers: dict[str, PaymentProvider],
        journal: TransactionJournal,
        hub: EventHub,
        limits: JournalLimits,
        *,
        deadline: float,
        currency: str,
    ) -> None:
        self.providers = providers  # by wallet: the member wallet (the gateway's own) and the configured ones
        self.deadline = deadline
        self.currency = currency
        self.journal = journal
        self.hub = hub
        self.limits = limits
        self._running: dict[str, asyncio.Task[PaymentIntent]] = {}
        self.resolved: list[PaymentIntent] = []  # settled after a restart, for the till's status
        self.unresolved: list[dict[str, str]] = []  # could not be settled after a restart: for store IT

    def route(self, code: str | None) -> tuple[str, PaymentProvider]:
        """The provider for a scanned payment code, by its wallet's prefix and length; no code: the card terminal."""
        if code is None:
            wallet: str | None = "card"
        elif code.startswith("PW1."):
            wallet = "wallet"  # the member's stored value: the same scan identifies them
        elif code.startswith("GC1."):
            wallet = "giftcard"  # the code on a gift card
        else:
            wallet = payment_provider(code)
        if wallet is None:
            raise PaymentCodeError(
                "not a payment code this till takes (WeChat Pay: 18 digits starting 10-15; "
                "Alipay: 16-24 digits starting 25-30); ask the customer to show the payment code again"
            )
        provider = self.providers.get(wallet)
        if provider is None:
            raise PaymentUnavailableError(
                f"{WALLET_NAMES[wallet]} is not set up on this till; ask for another way to pay"
            )
        return wallet, provider

    async def earlier(
        self, basket_id: str, key: str, code: str | None = None, amount: int | None = None
    ) -> PaymentIntent | None:
        """The payment an earlier request with this key began, if any: the same basket, code and amount only."""
        earlier = await self.journal.payments.payment_by_key(key)
        if earlier is None:
            return None
        if earlier.basket_id != basket_id:
            raise IdempotencyConflictError("this Idempotency-Key was already used for another basket")
        same_code = earlier.code_hint == (code or "")[-4:] and earlier.wallet == self.route(code)[0]
        if not same_code or (amount is not None and amount != earlier.amount):
            raise IdempotencyConflictError("this Idempotency-Key was already used for a different payment")
        return earlier

    async def begin(self, basket_id: str, left: int, code: str | None, amount: int | None, key: str) -> PaymentIntent:
        """Journal a payment of ``amount`` (default: all of ``left``) and start its flow; return it, pending."""
        wallet, provider = self.route(code)
        amount = left if amount is None else amount
        if left <= 0:
            raise ConflictError("nothing is left to pay on this basket")
        if not 0 < amount <= left:
            raise ConflictError(f"a payment must be between ¥0.01 and the {format_cny(left)} left to pay")
        if breaches := self.limits.breaches(await self.journal.stats()):
            raise JournalLimitError(f"non-cash payment refused: {'; '.join(breaches)}. Take cash, call store IT")
        now = utc_now()
        intent = PaymentIntent(
            str(uuid7()),
            basket_id,
            key,
            wallet,
            provider.name,
            (code or "")[-4:],
            amount,
            self.currency,
            Outcome.PENDING,
            (),
            now,
            now,
        )
        await self.journal.payments.begin_payment(intent)  # on disk before the request leaves
        loop = asyncio.get_running_loop()
        task = loop.create_task(
            self._drive(intent, provider, code or "", MicropayFlow(loop.time(), deadline=self.deadline)),
            name=f"payment:{intent.payment_id}",
        )
        self._running[intent.payment_id] = task
        task.add_done_callback(lambda _: self._running.pop(intent.payment_id, None))
        return intent

    async def outcome(self, intent: PaymentIntent) -> PaymentIntent:
        """The payment as it ended; a flow still running is awaited (and goes on if the caller is dropped)."""
        running = self._running.get(intent.payment_id)
        if running is not None:
            return await asyncio.shield(running)
        # Its flow may have ended since ``intent`` was read: the journal has how it ended.
        return await self.journal.payments.payment_by_key(intent.idempotency_key) or intent

    async def _drive(
        self, intent: PaymentIntent, provider: PaymentProvider, code: str, flow: MicropayFlow
    ) -> PaymentIntent:
        detail = await run_flow(provider, intent.payment_id, code, intent.amount, flow, self.reporter(intent))
        return await self._settle_outcome(intent, flow, detail)

    def publish(
        self,
        intent: PaymentIntent,
        *,
        step: Step | None = None,
        answer: Answer | None = None,
        outcome: str | None = None,
        message: str | None = None,
    ) -> None:
        """A ``payment`` event for the till: a provider call and its answer, or the outcome."""
        self.hub.publish(
            PaymentStep(
                basket_id=intent.basket_id,
                payment_id=intent.payment_id,
                wallet=intent.wallet,
                amount=intent.amount,
                step=None if step is None else step.value,
                answer=None if answer is None else answer.value,
                outcome=outcome,
                message=message,
            )
        )

    def reporter(self, intent: PaymentIntent) -> Callable[[Step, Answer], None]:
        return lambda step, answer: self.publish(intent, step=step, answer=answer)

    async def _settle_outcome(
        self, intent: PaymentIntent, flow: MicropayFlow, detail: dict[str, str] | None = None
    ) -> PaymentIntent:
        history = (*intent.history, *(what for _, what in flow.history))
        done = dataclasses.replace(
            intent,
            state=flow.outcome,
            history=history,
            updated_at=utc_now(),
            detail={**intent.detail, **(detail or {})},
        )
        await self.journal.payments.payment_outcome(done)
        log.info(
            "payment_outcome",
            payment_id=done.payment_id,
            basket_id=done.basket_id,
            wallet=done.wallet,
            amount=format_cny(done.amount),
            outcome=done.state,
        )
        self.publish(done, outcome=done.state, message=message(done))
        if flow.outcome is Outcome.ATTENTION:
            self.hub.publish(Alert(code="payment-attention", message=MESSAGES[Outcome.ATTENTION]))
        return done

    async def give_back(self, intent: PaymentIntent) -> PaymentIntent:
        """Reverse a paid payment whose sale will not be made."""
        provider = self.providers.get(intent.wallet)
        if provider is None:
            raise PaymentUnavailableError(
                f"{intent.wallet} is no longer set up here; settle payment {intent.payment_id} by hand"
            )
        flow = MicropayFlow.paid(asyncio.get_running_loop().time(), self.deadline)
        flow.unwind(asyncio.get_running_loop().time())
        await run_flow(provider, intent.payment_id, "", intent.amount, flow, self.reporter(intent))
        return await self._settle_outcome(intent, flow)

    async def give_back_held(self, intent: PaymentIntent) -> PaymentIntent:
        """A payment of a basket given up: a flow still running ends first, then a paid one is given back."""
        intent = await self.outcome(intent)
        return await self.give_back(intent) if intent.state == Outcome.PAID else intent

    async def resolve(self, leftovers: list[PaymentIntent]) -> list[PaymentIntent]:
        """At start: settle the payments a previous run left open; their baskets are gone, so paid means give back."""
        resolved = []
        for intent in leftovers:
            try:
                settled = await self._resolve_one(intent)
            except GatewayError as err:  # one payment that cannot be settled must not stop the till
                log.error("payment_unresolvable", payment_id=intent.payment_id, wallet=intent.wallet, error=str(err))
                self.hub.publish(Alert(code="payment-unresolved", message=f"payment {intent.payment_id}: {err}"))
                self.unresolved.append({"payment_id": intent.payment_id, "wallet": intent.wallet, "reason": str(err)})
                continue
            log.warning("payment_resolved_after_restart", payment_id=settled.payment_id, outcome=settled.state)
            resolved.append(settled)
            self.resolved = [*self.resolved[-19:], settled]
        return resolved

    async def _resolve_one(self, intent: PaymentIntent) -> PaymentIntent:
        if intent.state == Outcome.PENDING:
            provider = self.providers.get(intent.wallet)
            if provider is None:
                raise PaymentUnavailableError(f"{intent.wallet} is no longer set up here; settle it by hand")
            now = asyncio.get_running_loop().time()
            flow = MicropayFlow(now, deadline=self.deadline)
            flow.on_restart(now)  # the pay request may have left: ask before anything else
            detail = await run_flow(provider, intent.payment_id, "", intent.amount, flow, self.reporter(intent))
            intent = await self._settle_outcome(intent, flow, detail)
        if intent.state == Outcome.PAID:
            intent = await self.give_back(intent)
        return intent

    @property
    def running(self) -> int:
        """Payment flows under way now."""
        return len(self._running)

    async def wait_idle(self) -> None:
        """Until no payment flow is running (at shutdown: a payment is never cut off half way)."""
        while self._running:
            await asyncio.wait(list(self._running.values()))

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.close()
