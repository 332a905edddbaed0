"""A card tapped on a reader: verify it, find its member, attach them.

The driver reports what it read; here the reading is checked against the
issuer keys of the rulebook (certificate, challenge signature, expiry), and
the card is looked up in the member cache, or online at the ledger when the
cache does not know it. A UID-only card identifies the member too, flagged
weak. Every outcome reaches the cashier as a ``card`` event.
"""

from __future__ import annotations

from typing import Any

import structlog

from drivers.events import CardEvent, CardEventKind
from gateway.devices.scans import ScanRouter
from gateway.events import EventHub
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

    async def handle(self, event: CardEvent) -> dict[str, Any]:
        result: dict[str, Any] = {
            "device": event.device,
            "reader": event.reader,
            "kind": event.kind,
            "pcsc_ms": round(event.pcsc_seconds * 1000, 3),
            "read_at": event.at,
        }
        if event.kind is CardEventKind.ERROR:
            result["card_error"] = {"code": event.error_code, "message": event.error}
        elif event.kind is CardEventKind.INSERTED and event.reading is not None:
            try:
                match = await self._identify(event)
            except GatewayError as err:
                log.info("card_refused", reader=event.reader, code=err.code, error=str(err))
                result["card_error"] = {"code": err.code, "message": str(err)}
            else:
                result.update(self.scans.attach(match))
        self.hub.publish("card", **result)
        return result

    async def _identify(self, event: CardEvent) -> MemberMatch:
        assert event.reading is not None
        return await self.identification.by_card(event.reading, self.pricer.today().strftime("%Y%m%d"))
