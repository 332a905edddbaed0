"""Scanner framing: turn a byte stream from a barcode/QR scanner into codes.

Serial scanners send each code as ``[prefix] [AIM id] data suffix``; the suffix
(usually CR or CR LF) ends a frame. Bytes arrive in arbitrary chunks, so the
decoder is incremental: :meth:`ScannerFramer.feed` takes whatever arrived and
returns every complete frame, plus a :class:`RejectedBytes` for each run of
bytes that could not be a code (line noise, a frame without its prefix, a
frame that never ends). Nothing is raised, so one bad frame never hides the
good ones after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# AIM symbology identifiers (ISO/IEC 15424): "]" + code character + modifier.
_AIM_RE = re.compile(r"\][A-Za-z][0-9A-Za-z]")
_AIM_NAMES = {
    "A": "code39",
    "C": "code128",
    "d": "datamatrix",
    "E": "ean-upc",
    "F": "codabar",
    "G": "code93",
    "I": "itf",
    "L": "pdf417",
    "Q": "qr",
    "z": "aztec",
    "e": "gs1-databar",
}
# Printable ASCII only: every code posgw understands is ASCII, and a stray
# control character means line noise, not data.
_PRINTABLE = re.compile(rb"[\x20-\x7e]+")


@dataclass(frozen=True, slots=True)
class ScannedFrame:
    """One code as the scanner sent it, with its AIM identifier parsed."""

    data: str
    symbology: str | None
    aim: str | None


@dataclass(frozen=True, slots=True)
class RejectedBytes:
    """Bytes the framer threw away, and why; for logs and the device status."""

    raw: bytes
    reason: str


FramerOutput = ScannedFrame | RejectedBytes


def symbology_name(aim: str) -> str:
    """Name the symbology behind an AIM identifier such as ``]E0`` or ``]Q1``."""
    name = _AIM_NAMES.get(aim[1], "other")
    if aim[1] == "E" and aim[2] == "4":
        return "ean-8"
    return name


class ScannerFramer:
    """Incremental prefix/suffix framer with optional AIM identifiers."""

    def __init__(
        self,
        *,
        suffix: bytes = b"\r\n",
        prefix: bytes = b"",
        aim: bool = False,
        max_length: int = 1024,
    ) -> None:
        if not suffix:
            raise ValueError("a scanner frame needs a non-empty suffix")
        self.suffix = suffix
        self.prefix = prefix
        self.aim = aim
        self.max_length = max_length
        self._buffer = bytearray()
        # A frame past max_length: its first bytes (for the report) and how long it has run; it is refused
        # whole when its suffix comes, however the bytes were chunked.
        self._overlong: bytearray | None = None
        self._overlong_size = 0

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[FramerOutput]:
        """Every frame ``data`` completes. The same frames and refusals come out however the stream is cut
        into reads: a frame's length is judged without its suffix, and one past ``max_length`` is refused
        whole, never cut into a frame and a tail."""
        self._buffer += data
        out: list[FramerOutput] = []
        while True:
            end = self._buffer.find(self.suffix)
            if end < 0:
                break
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + len(self.suffix)]
            if self._overlong is not None:
                out.append(self._refuse_overlong(raw))
            elif len(raw) > self.max_length:
                self._overlong, self._overlong_size = bytearray(), 0
                out.append(self._refuse_overlong(raw))
            else:
                out.append(self._decode(raw))
        # No suffix in what is held: past max_length plus a suffix cut in two, it cannot be a frame.
        keep = len(self.suffix) - 1  # the start of a suffix split across reads stays, to be found next time
        if len(self._buffer) > self.max_length + keep:
            cut = len(self._buffer) - keep
            if self._overlong is None:
                self._overlong, self._overlong_size = bytearray(), 0
            self._hold_overlong(bytes(self._buffer[:cut]))
            del self._buffer[:cut]
        return [o for o in out if not (isinstance(o, RejectedBytes) and not o.raw)]

    def _hold_overlong(self, chunk: bytes) -> None:
        assert self._overlong is not None
        room = self.max_length - len(self._overlong)
        self._overlong += chunk[: max(room, 0)]
        self._overlong_size += len(chunk)

    def _refuse_overlong(self, rest: bytes) -> RejectedBytes:
        self._hold_overlong(rest)
        assert self._overlong is not None
        raw, size = bytes(self._overlong), self._overlong_size
        self._overlong, self._overlong_size = None, 0
        return RejectedBytes(raw, f"a frame of {size} bytes, longer than {self.max_length}")

    def flush(self) -> list[FramerOutput]:
        """Give up on a partial frame (the scanner went idle or away mid-frame)."""
        if self._overlong is not None:
            self._hold_overlong(bytes(self._buffer))
            self._buffer.clear()
            assert self._overlong is not None
            raw, size = bytes(self._overlong), self._overlong_size
            self._overlong, self._overlong_size = None, 0
            return [RejectedBytes(raw, f"incomplete frame of {size} bytes (no suffix)")]
        if not self._buffer:
            return []
        raw = bytes(self._buffer)
        self._buffer.clear()
        return [RejectedBytes(raw, f"incomplete frame of {len(raw)} bytes (no suffix)")]

    def _decode(self, raw: bytes) -> FramerOutput:
        body = raw
        if self.prefix:
            start = body.rfind(self.prefix)
            if start < 0:
                return RejectedBytes(raw, "frame without the configured prefix")
            # Noise before the prefix is dropped; the code after it is good.
            body = body[start + len(self.prefix) :]
        if not body:
            return RejectedBytes(raw, "empty frame")
        if not _PRINTABLE.fullmatch(body):
            return RejectedBytes(raw, "non-printable bytes in frame")
        text = body.decode("ascii")
        aim: str | None = None
        if self.aim and _AIM_RE.match(text):
            aim, text = text[:3], text[3:]
            if not text:
                return RejectedBytes(raw, "AIM identifier without data")
        return ScannedFrame(text, symbology_name(aim) if aim else None, aim)
