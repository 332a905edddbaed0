"""Route what the scanner (or the cashier's keyboard) read to where it belongs.

Product codes and unknown codes go to the POS application as they are; member
tokens identify the customer on the active basket (or on the next basket, if
the customer shows the code before the cashier starts one). Payment codes are
announced with their provider but never echoed in full, and pay what is left
on the active basket (scan-to-pay; ``payment`` events tell the till how it goes).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine
from typing import Any

import structlog

from gateway.events import (
    CouponHeld,
    CouponRefused,
    EventHub,
    MemberSeen,
    PaymentRefused,
    Refusal,
    ScanSeen,
)
from gateway.members.identify import Identification
from gateway.members.match import MemberMatch
from gateway.sale.basket import BasketStore
from gateway.sale.building import Building
from gateway.sale.paying import Paying
from protocols.codes import CodeKind, classify
from protocols.errors import GatewayError

log = structlog.get_logger("posgw.scans")

PENDING_MEMBER_TTL = 120.0
_SECRET_KINDS = {CodeKind.MEMBER_TOKEN, CodeKind.COUPON_TOKEN, CodeKind.WALLET_CODE, CodeKind.PAYMENT_CODE}


class ScanRouter:
    def __init__(
        self,
        baskets: BasketStore,
        building: Building,
        identification: Identification,
        paying: Paying,
        hub: EventHub,
    ) -> None:
        self.baskets = baskets
        self.building = building
        self.identification = identification
        self.paying = paying
        self.hub = hub
        self._pending: tuple[MemberMatch, float] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[tuple[str, str, str | None, float]] = asyncio.Queue()

    def take_pending_member(self) -> MemberMatch | None:
        """A member identified before any basket was open, if still fresh."""
        pending, self._pending = self._pending, None
        if pending is None or time.monotonic() - pending[1] > PENDING_MEMBER_TTL:
            return None
        return pending[0]

    def submit(self, device: str, data: str, symbology: str | None, at: float) -> None:
        """Queue a scan from a device; :meth:`run` handles them one by one, in order."""
        self._queue.put_nowait((device, data, symbology, at))

    async def run(self) -> None:
        while True:
            device, data, symbology, at = await self._queue.get()
            try:
                await self.handle(device, data, symbology, at)
            except GatewayError as err:  # a journal hiccup must not stop the scanner
                log.error("scan_failed", device=device, error=str(err))

    async def handle(self, device: str, data: str, symbology: str | None = None, at: float | None = None) -> ScanSeen:
        code = classify(data)
        member, basket_id, refusal = None, None, None
        if code.kind in (CodeKind.MEMBER_TOKEN, CodeKind.WALLET_CODE):
            member, basket_id, refusal = await self._identify(code.data)
        seen = ScanSeen(
            device=device,
            kind=code.kind,
            data=None if code.kind in _SECRET_KINDS else code.data,
            detail=code.detail,
            symbology=symbology,
            problem=code.problem,
            scanned_at=at,
            basket_id=basket_id,
            member=member,
            member_error=refusal,
        )
        self.hub.publish(seen)
        if code.kind is CodeKind.PROMO_CODE:
            self._promo_code(code.data)
        elif code.kind is CodeKind.COUPON_TOKEN:
            # Checking a coupon reads the journal, so it finishes beside the scan; a
            # ``coupon`` event tells the till the outcome.
            self._beside(self._coupon(code.data), "coupon-scan")
        elif code.kind is CodeKind.PAYMENT_CODE or (code.kind is CodeKind.WALLET_CODE and member is not None):
            # A payment may wait for the customer's password: later scans must not wait for it.
            # A member wallet code identified its member above, and pays too ("pay = member").
            self._beside(self._pay(code.data), "payment-scan")
        return seen

    def _beside(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pay(self, code: str) -> None:
        basket = self.baskets.active()
        if basket is None:
            self.hub.publish(
                PaymentRefused(error=Refusal(code="no-basket", message="start a basket before the payment"))
            )
            return
        try:
            # Each scan is one request: its own key (a second scan of the same code is the provider's to refuse).
            await self.paying.pay(basket, code, None, f"scan:{uuid.uuid4().hex}")
        except GatewayError as err:
            log.info("payment_refused", code=err.code, error=str(err))
            self.hub.publish(PaymentRefused(basket_id=basket.basket_id, error=Refusal(code=err.code, message=str(err))))

    def _promo_code(self, code: str) -> None:
        """A promo code scanned from a flyer: given to the active basket; a refusal is a ``coupon`` event."""
        basket = self.baskets.active()
        if basket is None:
            self.hub.publish(CouponRefused(error=Refusal(code="no-basket", message="start a basket before the code")))
            return
        try:
            self.building.add_promo_code(basket, code)
        except GatewayError as err:
            log.info("promo_code_refused", code=err.code, error=str(err))
            self.hub.publish(CouponRefused(basket_id=basket.basket_id, error=Refusal(code=err.code, message=str(err))))

    async def _coupon(self, token: str) -> None:
        basket = self.baskets.active()
        if basket is None:
            self.hub.publish(CouponRefused(error=Refusal(code="no-basket", message="start a basket before the coupon")))
            return
        try:
            coupon = await self.building.add_coupon(basket, token)
        except GatewayError as err:
            log.info("coupon_refused", code=err.code, error=str(err))
            self.hub.publish(CouponRefused(basket_id=basket.basket_id, error=Refusal(code=err.code, message=str(err))))
            return
        definition = coupon.definition
        self.hub.publish(CouponHeld(basket_id=basket.basket_id, coupon_id=definition.coupon_id, name=definition.name))

    async def _identify(self, token: str) -> tuple[MemberSeen | None, str | None, Refusal | None]:
        try:
            match = await self.identification.by_token(token)
        except GatewayError as err:
            log.info("member_refused", error=str(err), code=err.code)
            return None, None, Refusal(code=err.code, message=str(err))
        return *self.attach(match), None

    def attach(self, match: MemberMatch) -> tuple[MemberSeen, str | None]:
        """Put an identified member on the active basket, or hold them for the next one; return who, and where."""
        basket = self.baskets.active()
        if basket is None:
            self._pending = (match, time.monotonic())
            target = None
        else:
            self.building.attach_member(basket, match)
            target = basket.basket_id
        log.info("member_identified", member=match.member.member_id, via=match.via, basket=target)
        member = match.member
        return MemberSeen(member_id=member.member_id, tier=member.tier, via=match.via, weak=match.weak), target
