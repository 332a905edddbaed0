"""What a device reported, sent where it belongs: scans to the scan router, cards to the card router, a
printer's state to the event stream."""

from __future__ import annotations

import asyncio
from typing import Any

from drivers.events import CardEvent, DeviceStatus, DriverEvent, PrinterEvent, ReaderEvent, ScanEvent, ScanRejected
from gateway.devices.cards import CardRouter
from gateway.devices.scans import ScanRouter
from gateway.events import Alert, DeviceChanged, EventHub, PrinterChanged, ReaderChanged, ScanNotUnderstood


class DeviceEvents:
    def __init__(self, scans: ScanRouter, cards: CardRouter, hub: EventHub) -> None:
        self.scans = scans
        self.cards = cards
        self.hub = hub
        self._card_tasks: set[asyncio.Task[Any]] = set()

    def on_event(self, event: DriverEvent | DeviceStatus) -> None:
        if isinstance(event, ScanEvent):
            self.scans.submit(event.device, event.data, event.symbology, event.at)
        elif isinstance(event, CardEvent):
            # Identifying a card may ask the ledger, so it runs beside the driver, not in it.
            task = asyncio.get_running_loop().create_task(self.cards.handle(event), name=f"card:{event.reader}")
            self._card_tasks.add(task)
            task.add_done_callback(self._card_tasks.discard)
        elif isinstance(event, ReaderEvent):
            self.hub.publish(ReaderChanged(device=event.device, reader=event.reader, present=event.present))
        elif isinstance(event, PrinterEvent):
            self.hub.publish(
                PrinterChanged(
                    device=event.device,
                    paper_out=event.paper_out,
                    cover_open=event.cover_open,
                    drawer_open=event.drawer_open,
                    problem=event.problem,
                )
            )
            if event.problem:
                self.hub.publish(Alert(code="printer-not-ready", message=f"printer {event.device}: {event.problem}"))
        elif isinstance(event, ScanRejected):
            self.hub.publish(ScanNotUnderstood(device=event.device, reason=event.reason, length=event.length))
        else:
            self.hub.publish(
                DeviceChanged(device=event.device, state=event.state, error=event.error, retry_in=event.retry_in)
            )
