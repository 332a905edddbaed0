"""A card tapped on a reader: verify it, find its member, attach them.

The driver reports what it read; here the reading is checked against the
issuer keys of the rulebook (certificate, challenge signature, expiry), and
the card is looked up in the member cache, or online at the ledger when the
cache does not know it. A UID-only card identifies the member too, flagged
weak. Every outcome reaches the cashier as a ``card`` event.
"""

from __future__ import annotations

import structlog

from drivers.events import CardEvent, CardEventKind
from gateway.devices.scans import ScanRouter
from gateway.events import CardRead, EventHub, Refusal
from gateway.members.identify import Identification
from gateway.members.match import MemberMatch
from gateway.sale.pricing import Pricer
from protocols.errors import GatewayError

log = structlog.get_logger("posgw.cards")


class CardRouter:
    def __init__(self, identification: Identification, pricer: Pricer, scans: ScanRouter, hub: EventHub) -> None:
        self.identification = identification
        self.pricer = pricer
        self.scans = scans
        self.hub = hub

    async def handle(self, event: CardEvent) -> CardRead:
        member, basket_id, refusal = None, None, None
        if event.kind is CardEventKind.ERROR:
            refusal = Refusal(
                code=event.error_code or "card-error", message=event.error or "the card could not be read"
            )
        elif event.kind is CardEventKind.INSERTED and event.reading is not None:
            try:
                match = await self._identify(event)
            except GatewayError as err:
                log.info("card_refused", reader=event.reader, code=err.code, error=str(err))
                refusal = Refusal(code=err.code, message=str(err))
            else:
                member, basket_id = self.scans.attach(match)
        read = CardRead(
            device=event.device,
            reader=event.reader,
            kind=event.kind,
            pcsc_ms=round(event.pcsc_seconds * 1000, 3),
            read_at=event.at,
            member=member,
            basket_id=basket_id,
            card_error=refusal,
        )
        self.hub.publish(read)
        return read

    async def _identify(self, event: CardEvent) -> MemberMatch:
        assert event.reading is not None
        return await self.identification.by_card(event.reading, self.pricer.today().strftime("%Y%m%d"))
