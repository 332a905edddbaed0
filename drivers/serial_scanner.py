"""Barcode/QR scanners on a serial port (RS-232, USB-serial CDC/ACM).

The port is an asyncio transport on its file descriptor (pyserial-asyncio-fast),
opened in an executor, so nothing blocks the loop. Bytes go through the
sans-I/O :class:`protocols.framing.ScannerFramer`. A partial frame left idle
for ``idle_flush`` seconds is discarded and reported (the scanner was cut off
mid-frame), so it can never glue itself onto the next scan.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import serial
import serial_asyncio_fast

from drivers.errors import DeviceLostError, DeviceUnavailableError
from drivers.events import DriverEvent, ScanEvent, ScanRejected
from protocols.framing import RejectedBytes, ScannedFrame, ScannerFramer
from protocols.schema import Fields

BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


@dataclass(frozen=True, slots=True)
class SerialScannerOptions:
    port: str
    baudrate: int = 9600
    prefix: bytes = b""
    suffix: bytes = b"\r\n"
    aim: bool = False
    max_length: int = 1024
    idle_flush: float = 0.5


def _escape_bytes(f: Fields, key: str, default: str) -> bytes:
    text = f.text(key, default, max_len=8)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        f.problems.add(f"{f.path}.{key}", "must be bytes 0x00-0xff (use TOML escapes like \\r\\n)")
        return b""


_Item = tuple[float, bytes] | BaseException | None


class _ScannerProtocol(asyncio.Protocol):
    def __init__(self, queue: asyncio.Queue[_Item]) -> None:
        self.queue = queue

    def data_received(self, data: bytes) -> None:
        # Stamped on arrival: the idle gap is between bytes on the wire, not
        # between reads, which may lag behind when the loop is busy.
        self.queue.put_nowait((time.monotonic(), data))

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(exc if exc is not None else None)


class SerialScanner:
    """A scanner that sends framed codes over a serial line."""

    kind = "scanner"

    def __init__(self, name: str, options: SerialScannerOptions) -> None:
        self.name = name
        self.options = options
        self._transport: asyncio.Transport | None = None
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()

    @classmethod
    def from_options(cls, name: str, options: Fields) -> SerialScanner:
        opts = SerialScannerOptions(
            port=options.file_path("port"),
            baudrate=options.integer("baudrate", 9600),
            prefix=_escape_bytes(options, "prefix", ""),
            suffix=_escape_bytes(options, "suffix", "\r\n"),
            aim=options.flag("aim", False),
            max_length=options.integer("max_length", 1024, minimum=16, maximum=65536),
            idle_flush=options.number("idle_flush", 0.5, minimum=0.05, maximum=60),
        )
        if opts.baudrate not in BAUD_RATES:
            options.problems.add(f"{options.path}.baudrate", f"expected one of {BAUD_RATES}")
        if not opts.suffix and options.has("suffix"):
            options.problems.add(f"{options.path}.suffix", "must not be empty: it ends each frame")
        return cls(name, opts)

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        queue = self._queue
        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                loop, lambda: _ScannerProtocol(queue), self.options.port, baudrate=self.options.baudrate
            )
        except (serial.SerialException, OSError, ValueError) as err:
            raise DeviceUnavailableError(f"scanner {self.name}: cannot open {self.options.port}: {err}") from err
        self._transport = transport
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A transport that failed is already closing itself; aborting it again
        # would run its teardown twice.
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()
        self._transport = None

    async def events(self) -> AsyncIterator[DriverEvent]:
        o = self.options
        framer = ScannerFramer(suffix=o.suffix, prefix=o.prefix, aim=o.aim, max_length=o.max_length)
        last_arrival = 0.0
        while True:
            try:
                # Not wait_for: on 3.11 a chunk arriving as the driver is stopped would drop the stop.
                async with asyncio.timeout(o.idle_flush if framer.pending else None):
                    item = await self._queue.get()
            except TimeoutError:
                for out in framer.flush():
                    yield self._event(out)
                continue
            if isinstance(item, tuple):
                arrived, data = item
                if framer.pending and arrived - last_arrival > o.idle_flush:
                    for out in framer.flush():
                        yield self._event(out)
                last_arrival = arrived
                for out in framer.feed(data):
                    yield self._event(out)
                continue
            for out in framer.flush():
                yield self._event(out)
            raise DeviceLostError(f"scanner {self.name} on {o.port} went away: {item or 'port closed'}")

    def _event(self, out: ScannedFrame | RejectedBytes) -> DriverEvent:
        now = time.time()
        if isinstance(out, ScannedFrame):
            return ScanEvent(self.name, out.data, out.symbology, out.aim, now)
        return ScanRejected(self.name, out.reason, len(out.raw), now)
