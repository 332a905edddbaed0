"""Keep one device open: report its state, reopen it with backoff when lost.

A missing or unplugged device degrades the till, it never stops it: the
supervisor runs until cancelled, whatever the driver raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from drivers.base import Device
from drivers.events import DeviceState, DeviceStatus, DriverEvent
from protocols.backoff import Backoff
from protocols.errors import GatewayError

log = structlog.get_logger("posgw.devices")


class DeviceSupervisor:
    def __init__(
        self,
        device: Device,
        publish: Callable[[DriverEvent | DeviceStatus], None],
        backoff: Backoff | None = None,
    ) -> None:
        self.device = device
        self.publish = publish
        self.backoff = backoff or Backoff(base=0.2, cap=10.0)
        self.status = DeviceStatus(device.name, DeviceState.CLOSED)

    def _set(self, state: DeviceState, error: str | None = None, retry_in: float | None = None) -> None:
        self.status = DeviceStatus(self.device.name, state, error, retry_in)
        self.publish(self.status)

    async def run(self) -> None:
        name = self.device.name
        while True:
            self._set(DeviceState.OPENING)
            try:
                async with self.device:
                    self._set(DeviceState.IDLE)
                    log.info("device_open", device=name)
                    self.backoff.reset()
                    async for event in self.device.events():
                        self.publish(event)
                error = "device stopped reporting"
            except GatewayError as err:
                error = str(err)
            except Exception as err:  # a driver bug must not stop the till
                log.exception("driver_crashed", device=name)
                error = f"driver error: {err!r}"
            delay = self.backoff.next_delay()
            log.warning("device_unavailable", device=name, error=error, retry_in=round(delay, 2))
            self._set(DeviceState.RETRYING, error, round(delay, 3))
            await asyncio.sleep(delay)
