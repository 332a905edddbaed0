"""A thermal receipt printer speaking ESC/POS on a serial port, with the cash drawer on its kick-out connector.

UnifiedPOS's POSPrinter and CashDrawer in one plugin (``escpos-printer``):
supervised like every device (opened, reopened with backoff), it polls the
printer's real-time status (``DLE EOT``, ``protocols/escpos.py``) every
``poll_seconds`` and reports a change (paper out, cover open, drawer open) as
a :class:`~drivers.events.PrinterEvent`. A print job checks the status before
and after it is sent: a printer out of paper or open refuses it
(:class:`PrinterNotReadyError`), and paper that ran out during the job is told
too, so the receipt is known unprinted and can be printed again. A drawer kick
is checked by the connector: a drawer that does not open is
:class:`DrawerError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import serial
import serial_asyncio_fast

from drivers.errors import DeviceLostError, DeviceUnavailableError
from drivers.events import DriverEvent, PrinterEvent
from protocols import escpos
from protocols.errors import RetryableError
from protocols.schema import Fields


class PrinterNotReadyError(RetryableError):
    """The printer cannot print now: out of paper, cover open, offline, or not answering."""

    code = "printer-not-ready"


class DrawerError(RetryableError):
    """The cash drawer did not open when kicked (jammed, locked, or not connected)."""

    code = "drawer-not-open"


@dataclass(frozen=True, slots=True)
class PrinterOptions:
    port: str
    baudrate: int = 19200
    width: int = 42  # characters a line (80 mm roll, font A)
    poll_seconds: float = 2.0
    answer_timeout: float = 1.0  # for one status byte
    drawer_seconds: float = 1.0  # how long a kicked drawer has to show open


@dataclass(frozen=True, slots=True)
class PrinterState:
    paper_out: bool
    cover_open: bool
    drawer_open: bool
    offline: bool

    @property
    def problem(self) -> str | None:
        if self.paper_out:
            return "out of paper"
        if self.cover_open:
            return "cover open"
        if self.offline:
            return "offline"
        return None


class _Line(asyncio.Protocol):
    def __init__(self) -> None:
        self.bytes: asyncio.Queue[int | None] = asyncio.Queue()

    def data_received(self, data: bytes) -> None:
        for b in data:
            self.bytes.put_nowait(b)

    def connection_lost(self, exc: Exception | None) -> None:
        self.bytes.put_nowait(None)


class EscPosPrinter:
    kind = "printer"

    def __init__(self, name: str, options: PrinterOptions) -> None:
        self.name = name
        self.options = options
        self._transport: asyncio.Transport | None = None
        self._line: _Line | None = None
        self._lock = asyncio.Lock()  # one exchange at a time: a status byte answers the request before it
        self.state: PrinterState | None = None

    @property
    def width(self) -> int:
        return self.options.width

    @classmethod
    def from_options(cls, name: str, options: Fields) -> EscPosPrinter:
        return cls(
            name,
            PrinterOptions(
                port=options.file_path("port"),
                baudrate=options.integer("baudrate", 19200, minimum=1200, maximum=115200),
                width=options.integer("width", 42, minimum=24, maximum=64),
                poll_seconds=options.number("poll_seconds", 2.0, minimum=0.1, maximum=60.0),
                answer_timeout=options.number("answer_timeout", 1.0, minimum=0.05, maximum=10.0),
                drawer_seconds=options.number("drawer_seconds", 1.0, minimum=0.05, maximum=10.0),
            ),
        )

    async def __aenter__(self) -> Self:
        line = _Line()
        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                asyncio.get_running_loop(), lambda: line, self.options.port, baudrate=self.options.baudrate
            )
        except (serial.SerialException, OSError, ValueError) as err:
            raise DeviceUnavailableError(f"printer {self.name}: cannot open {self.options.port}: {err}") from err
        self._transport, self._line = transport, line
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()
        self._transport = self._line = None
        self.state = None

    async def events(self) -> AsyncIterator[DriverEvent]:
        """A :class:`PrinterEvent` for the first status and every change after; lost if it stops answering."""
        while True:
            try:
                state = await self.status()
            except PrinterNotReadyError as err:
                raise DeviceLostError(f"printer {self.name}: {err}") from err
            if state != self.state:
                self.state = state
                yield PrinterEvent(self.name, state.paper_out, state.cover_open, state.drawer_open, state.problem)
            await asyncio.sleep(self.options.poll_seconds)

    async def status(self) -> PrinterState:
        async with self._lock:
            return await self._status()

    async def print_job(self, data: bytes) -> None:
        """Print ``data`` (ESC/POS); refused before if the printer is not ready, told after if it ran out."""
        async with self._lock:
            before = await self._status()
            if before.problem:
                raise PrinterNotReadyError(f"printer {self.name}: {before.problem}; nothing was printed")
            self._send(data)
            after = await self._status()  # the answer comes once the job before it was taken in
            if after.problem:
                raise PrinterNotReadyError(f"printer {self.name}: {after.problem} during the receipt; print it again")

    async def kick_drawer(self) -> None:
        """Open the cash drawer; :class:`DrawerError` if its connector does not show it open in time."""
        async with self._lock:
            self._send(escpos.drawer_kick())
            deadline = asyncio.get_running_loop().time() + self.options.drawer_seconds
            while True:
                if (await self._status()).drawer_open:
                    return
                if asyncio.get_running_loop().time() > deadline:
                    raise DrawerError(f"the cash drawer on {self.name} did not open; open it with its key")
                await asyncio.sleep(0.05)

    def _send(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise PrinterNotReadyError(f"printer {self.name} is not open")
        self._transport.write(data)

    async def _ask(self, n: int) -> int:
        line = self._line
        if line is None:
            raise PrinterNotReadyError(f"printer {self.name} is not open")
        while not line.bytes.empty():  # noise or a late answer from before: not this request's
            line.bytes.get_nowait()
        self._send(escpos.status_request(n))
        try:
            async with asyncio.timeout(self.options.answer_timeout):
                while True:
                    byte = await line.bytes.get()
                    if byte is None:
                        raise PrinterNotReadyError(f"printer {self.name} went away")
                    if escpos.is_status(byte):
                        return byte
        except TimeoutError:
            raise PrinterNotReadyError(f"printer {self.name} does not answer its status") from None

    async def _status(self) -> PrinterState:
        printer = await self._ask(escpos.STATUS_PRINTER)
        offline = await self._ask(escpos.STATUS_OFFLINE)
        paper = await self._ask(escpos.STATUS_PAPER)
        return PrinterState(
            paper_out=bool(paper & escpos.PAPER_OUT) or bool(offline & escpos.PAPER_STOP),
            cover_open=bool(offline & escpos.COVER_OPEN),
            drawer_open=bool(printer & escpos.DRAWER_OPEN),
            offline=bool(printer & escpos.OFFLINE),
        )
