"""ESC/POS, the command set of thermal receipt printers (Epson's, and every compatible one). Sans I/O.

What posgw sends: ``ESC @`` (initialise), ``FS &`` (double-byte mode: text is
GB18030, as Chinese printers take it), ``ESC a n`` (align), ``ESC E n``
(bold), ``GS ! n`` (size), text lines ending in LF, a QR code (``GS ( k``:
model 2, module size, error correction M, store, print), ``GS V 66 0`` (feed
and cut), ``ESC p 0 t1 t2`` (a pulse on the drawer kick-out connector: the
cash drawer opens) and the real-time status requests ``DLE EOT n``, which a
printer answers with one byte even while it is out of paper:

- ``n = 1`` printer: bit 2 (0x04) the drawer connector's pin 3 is high (the
  drawer is open), bit 3 (0x08) offline;
- ``n = 2`` offline cause: bit 2 (0x04) the cover is open, bit 5 (0x20) it
  stopped for want of paper;
- ``n = 4`` roll paper: bits 2-3 (0x0C) near its end, bits 5-6 (0x60) out.

Bits 1 and 4 of every answer are 1 (0x12): what tells a status byte from
noise. :class:`EscPosDecoder` reads a stream back into what a printer would
have printed (the printer simulator uses it; the tests compare its page with
the receipt document).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

ESC, GS, FS, DLE, EOT, LF = 0x1B, 0x1D, 0x1C, 0x10, 0x04, 0x0A
INIT = b"\x1b@"
CHINESE_ON = b"\x1c&"
CUT = b"\x1dVB\x00"  # feed to the cutter and cut (function B, 0 lines)
ENCODING = "gb18030"
STATUS_FIXED = 0x12  # bits 1 and 4: always 1 in a DLE EOT answer
STATUS_PRINTER, STATUS_OFFLINE, STATUS_PAPER = 1, 2, 4
DRAWER_OPEN = 0x04  # n=1, bit 2
OFFLINE = 0x08  # n=1, bit 3
COVER_OPEN = 0x04  # n=2, bit 2
PAPER_STOP = 0x20  # n=2, bit 5
PAPER_OUT = 0x60  # n=4, bits 5-6
MAX_QR = 7089  # the most a model 2 QR code holds (numeric); posgw's are far shorter


def status_request(n: int) -> bytes:
    return bytes((DLE, EOT, n))


def is_status(byte: int) -> bool:
    return byte & 0x93 == STATUS_FIXED  # bits 0 and 7 clear, bits 1 and 4 set


def align(where: str) -> bytes:
    return bytes((ESC, ord("a"), {"left": 0, "center": 1, "right": 2}[where]))


def bold(on: bool) -> bytes:
    return bytes((ESC, ord("E"), int(on)))


def size(double: bool) -> bytes:
    return bytes((GS, ord("!"), 0x11 if double else 0x00))


def text_line(text: str) -> bytes:
    """One line of text; a character GB18030 cannot hold becomes ``?`` (a receipt never fails on a name), and a
    control character a space: an item name carrying ``ESC p`` must not open the drawer, nor ``GS V`` cut."""
    clean = "".join(" " if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 else c for c in text)
    return clean.encode(ENCODING, errors="replace") + b"\n"


def qr_code(data: str, module: int = 6) -> bytes:
    """A QR code (model 2, error correction M) holding ``data`` (ASCII)."""
    payload = data.encode("ascii")
    if len(payload) > MAX_QR:
        raise ValueError(f"a QR code holds at most {MAX_QR} bytes")
    store = len(payload) + 3
    return b"".join(
        (
            b"\x1d(k\x04\x001A2\x00",  # model 2
            b"\x1d(k\x03\x001C" + bytes((module,)),  # module size
            b"\x1d(k\x03\x001E1",  # error correction M
            b"\x1d(k" + bytes((store & 0xFF, store >> 8)) + b"1P0" + payload,  # store the data
            b"\x1d(k\x03\x001Q0",  # print it
        )
    )


def drawer_kick(pin: int = 0, on_ms: int = 50, off_ms: int = 500) -> bytes:
    """``ESC p m t1 t2``: a pulse on pin 2 (m=0) or 5 (m=1), on for t1×2 ms, off for t2×2 ms."""
    return bytes((ESC, ord("p"), pin, min(255, on_ms // 2), min(255, off_ms // 2)))


@dataclass(frozen=True, slots=True)
class Printed:
    """A text line, as it came out."""

    text: str


@dataclass(frozen=True, slots=True)
class QrPrinted:
    data: str


@dataclass(frozen=True, slots=True)
class Cut:
    pass


@dataclass(frozen=True, slots=True)
class DrawerKick:
    pin: int


@dataclass(frozen=True, slots=True)
class StatusAsked:
    n: int


Element = Printed | QrPrinted | Cut | DrawerKick | StatusAsked


class EscPosDecoder:
    """Feed bytes as they come; get what each finished command or line did. Unknown ``ESC``/``GS`` commands of
    known length are skipped; a partial command waits for its bytes."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._text = bytearray()
        self._qr = b""

    def feed(self, data: bytes) -> Iterator[Element]:
        self._buf += data
        while self._buf:
            took, element = self._one()
            if took == 0:
                return  # wait for more bytes
            del self._buf[:took]
            if element is not None:
                yield element

    def _one(self) -> tuple[int, Element | None]:
        b = self._buf
        first = b[0]
        if first == LF:
            line = self._text.decode(ENCODING, errors="replace")
            self._text.clear()
            return 1, Printed(line)
        if first == DLE:
            return (0, None) if len(b) < 3 else (3, StatusAsked(b[2]) if b[1] == EOT else None)
        if first == ESC:
            return self._esc()
        if first == GS:
            return self._gs()
        if first == FS:
            return (0, None) if len(b) < 2 else (2, None)  # FS & / FS . : double-byte mode on, off
        if first < 0x20:
            return 1, None  # CR and other controls: nothing on paper
        self._text.append(first)
        return 1, None

    def _esc(self) -> tuple[int, Element | None]:
        b = self._buf
        if len(b) < 2:
            return 0, None
        lengths = {ord("@"): 2, ord("a"): 3, ord("E"): 3, ord("d"): 3, ord("!"): 3, ord("-"): 3, ord("p"): 5}
        n = lengths.get(b[1], 2)
        if len(b) < n:
            return 0, None
        if b[1] == ord("p"):
            return n, DrawerKick(b[2])
        return n, None

    def _gs(self) -> tuple[int, Element | None]:
        b = self._buf
        if len(b) < 2:
            return 0, None
        if b[1] == ord("V"):  # GS V m [n]: function B (65, 66) takes n
            if len(b) < 3:
                return 0, None
            n = 4 if b[2] in (65, 66) else 3
            return (0, None) if len(b) < n else (n, Cut())
        if b[1] == ord("(") and len(b) >= 5 and b[2] == ord("k"):
            n = 5 + b[3] + (b[4] << 8)
            if len(b) < n:
                return 0, None
            fn = bytes(b[5:n])
            if fn[:3] == b"1P0":
                self._qr = fn[3:]
            elif fn[:3] == b"1Q0":
                return n, QrPrinted(self._qr.decode("ascii", errors="replace"))
            return n, None
        if b[1] == ord("("):
            return 0, None
        return (0, None) if len(b) < 3 else (3, None)  # GS ! n and the like
