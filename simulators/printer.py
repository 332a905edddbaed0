"""``posgw-sim printer``: an ESC/POS thermal receipt printer, with its cash drawer, on a real pseudo-terminal.

It decodes what the gateway sends (``protocols/escpos.py``) into pages: the
text lines, the QR codes, the cut that ends a receipt; it answers the
real-time status requests (``DLE EOT``) from its state, which a test changes
while it runs: ``paper_out``, ``cover_open``, ``paper_lines`` (lines left on
the roll: it runs out mid-receipt), ``drawer_stuck`` (a kick does not open
the drawer). A kick opens the drawer (its connector reads high) until
:meth:`close_drawer`, as a cashier pushes it shut.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from protocols import escpos
from simulators.scanner import close_linked_pty, open_linked_pty


@dataclass
class Page:
    """One receipt as it came out: its lines, QR codes, and whether it was cut (finished)."""

    lines: list[str] = field(default_factory=list)
    qr: list[str] = field(default_factory=list)
    cut: bool = False


@dataclass
class PtyPrinter:
    link: Path
    paper_out: bool = False
    cover_open: bool = False
    paper_lines: int | None = None  # lines left on the roll (None: plenty)
    drawer_stuck: bool = False
    drawer_open: bool = False
    kicks: int = 0
    pages: list[Page] = field(default_factory=lambda: [Page()])
    _master: int | None = None
    _slave: int | None = None
    _decoder: escpos.EscPosDecoder = field(default_factory=escpos.EscPosDecoder)

    def plug(self) -> Path:
        self._master, self._slave = open_linked_pty(self.link)
        os.set_blocking(self._master, False)
        asyncio.get_running_loop().add_reader(self._master, self._readable)
        return self.link

    def unplug(self) -> None:
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
        close_linked_pty(self.link, self._master, self._slave)
        self._master = self._slave = None

    @property
    def printed(self) -> list[Page]:
        """The receipts finished (cut), oldest first."""
        return [p for p in self.pages if p.cut]

    def close_drawer(self) -> None:
        self.drawer_open = False

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 65536)
        except (BlockingIOError, OSError):
            return
        for element in self._decoder.feed(data):
            self._handle(element)

    def _handle(self, element: escpos.Element) -> None:
        page = self.pages[-1]
        if isinstance(element, escpos.StatusAsked):
            self._write(bytes((self._status(element.n),)))
        elif isinstance(element, escpos.DrawerKick):
            self.kicks += 1
            self.drawer_open = self.drawer_open or not self.drawer_stuck
        elif self.paper_out or self.cover_open:
            return  # nothing comes out: the gateway must see it in the status and print again
        elif isinstance(element, escpos.Printed):
            if self.paper_lines is not None:
                if self.paper_lines <= 0:
                    self.paper_out = True
                    return
                self.paper_lines -= 1
            page.lines.append(element.text)
        elif isinstance(element, escpos.QrPrinted):
            page.qr.append(element.data)
        elif isinstance(element, escpos.Cut):
            page.cut = True
            self.pages.append(Page())

    def _status(self, n: int) -> int:
        byte = escpos.STATUS_FIXED
        if n == escpos.STATUS_PRINTER:
            byte |= (escpos.DRAWER_OPEN if self.drawer_open else 0) | (
                escpos.OFFLINE if self.paper_out or self.cover_open else 0
            )
        elif n == escpos.STATUS_OFFLINE:
            byte |= (escpos.COVER_OPEN if self.cover_open else 0) | (escpos.PAPER_STOP if self.paper_out else 0)
        elif n == escpos.STATUS_PAPER:
            byte |= escpos.PAPER_OUT if self.paper_out else 0
        return byte

    def _write(self, data: bytes) -> None:
        if self._master is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._master, data)


async def serve(link: Path) -> None:
    """Run a printer on ``link`` until interrupted, printing each receipt it cuts to standard output."""
    printer = PtyPrinter(link)
    printer.plug()
    shown = 0
    try:
        while True:
            await asyncio.sleep(0.2)
            for page in printer.printed[shown:]:
                print("\n".join(page.lines))
                print(*(f"[QR {q}]" for q in page.qr), sep="\n")
                print("-" * 8 + " cut " + "-" * 8, flush=True)
            shown = len(printer.printed)
    finally:
        printer.unplug()
