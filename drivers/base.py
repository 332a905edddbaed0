"""The interface every device driver implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol, Self

from drivers.events import DriverEvent
from protocols.schema import Fields


class Device(Protocol):
    """An opened-on-demand device.

    ``async with device:`` opens it (raising ``DeviceUnavailableError``) and
    closes it on exit; it may be entered again after a loss. ``events()``
    yields what the device reports and raises ``DeviceLostError`` when the
    device goes away.
    """

    name: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def events(self) -> AsyncIterator[DriverEvent]: ...


class DriverClass(Protocol):
    """What the registry loads: a class that builds a device from its config table."""

    kind: str

    @classmethod
    def from_options(cls, name: str, options: Fields) -> Device: ...
